/** Loss curves across seeds: aligned by step, with mean, std, min and max at each step. */
import type { RunResult } from "./result_schema.ts";
import { sampleStd } from "./stats.ts";

/** Statistics of one loss across runs at one step. */
export interface PointStat {
  n: number;
  mean: number;
  /** Sample std; null when only one run has a value here. */
  std: number | null;
  min: number;
  max: number;
}

/** Train and val statistics at one eval step. */
export interface CurveRow {
  step: number;
  train: PointStat | null;
  val: PointStat | null;
}

function pointStat(values: number[]): PointStat | null {
  if (values.length === 0) return null;
  let sum = 0;
  for (const v of values) sum += v;
  return {
    n: values.length,
    mean: sum / values.length,
    std: values.length > 1 ? sampleStd(values) : null,
    min: Math.min(...values),
    max: Math.max(...values),
  };
}

/** Aligns the runs' loss curves by step: mean, std, min and max of train and val at each step. */
export function alignCurves(results: readonly RunResult[]): CurveRow[] {
  const byStep = new Map<number, { train: number[]; val: number[] }>();
  for (const r of results) {
    for (const point of r.curve) {
      let slot = byStep.get(point.step);
      if (!slot) byStep.set(point.step, slot = { train: [], val: [] });
      // Null marks a NaN/Infinity loss; it has no place in a mean.
      if (point.train !== null && Number.isFinite(point.train)) slot.train.push(point.train);
      if (typeof point.val === "number" && Number.isFinite(point.val)) slot.val.push(point.val);
    }
  }
  return [...byStep.entries()].sort((a, b) => a[0] - b[0]).map(([step, slot]) => ({
    step,
    train: pointStat(slot.train),
    val: pointStat(slot.val),
  }));
}
