/**
 * Where a training step's wall time goes, measured so that the figures add up and a user could
 * check each one: every kernel's dispatches of one step are replayed on their own (N steps' worth
 * in one submit, timed to a readback), then the whole step the same way. The table lists each
 * kernel's isolated time, the remainder between the full-step replay and the sum of the kernels
 * (kernels interact through caches and barriers), and the remainder between the run's measured
 * step wall time and the full-step replay (host encoding and loss readbacks the device does not
 * hide), so its rows sum to the step's wall time by construction; every remainder is printed,
 * signed, rather than spread over the kernels. Separately, the cost of a near-empty dispatch on
 * this adapter times the dispatches per step gives the share of the step that is launch overhead
 * (already inside each kernel's row).
 *
 * Replaying one kernel alone overwrites the state it writes (parameters, moments, counters), so
 * this runs only after the training run has produced its result, on a plan it will not replay.
 */
import type { Gpu } from "../kernels/device.ts";
import type { Dispatch, Plan } from "../kernels/program.ts";
import {
  createFence,
  emptyDispatch,
  readbackFloorMs,
  type ReplayTimingOptions,
  timeReplaysInTurn,
} from "./replay_timing.ts";

/** One kernel's share of a step, measured by replaying only its dispatches. */
export interface KernelStepTime {
  kernel: string;
  dispatchesPerStep: number;
  /** Milliseconds per step of this kernel's dispatches replayed on their own. */
  msPerStep: number;
  /** Replays per timed submission. */
  replays: number;
}

/** The measured parts of a step (all milliseconds per step unless named otherwise). */
export interface StepProfile {
  dispatchesPerStep: number;
  kernels: KernelStepTime[];
  /** The whole step's dispatches replayed back to back. */
  fullReplayMs: number;
  fullReplays: number;
  /** One near-empty dispatch, in microseconds. */
  emptyDispatchUs: number;
  /** The readback latency subtracted from every timed submission. */
  readbackFloorMs: number;
  /** Timed submissions per figure (the median is kept). */
  trials: number;
  /**
   * Per kernel, milliseconds per step that timestamp queries report for the same replays (each
   * dispatch in its own timed pass), where the adapter supports them: shown beside the replay
   * figures because they miss the launch cost between passes.
   */
  timestampMsPerStep?: Record<string, number>;
}

/** Groups a plan's dispatches by kernel name, in order of first appearance. */
export function dispatchesByKernel(dispatches: readonly Dispatch[]): Map<string, Dispatch[]> {
  const groups = new Map<string, Dispatch[]>();
  for (const d of dispatches) {
    const group = groups.get(d.kernel);
    if (group) group.push(d);
    else groups.set(d.kernel, [d]);
  }
  return groups;
}

/** Measures a step plan: each kernel alone, the whole step, and an empty dispatch. */
export async function profileStep(
  gpu: Gpu,
  plan: Plan,
  opts: ReplayTimingOptions = {},
): Promise<StepProfile> {
  const fence = createFence(gpu);
  try {
    const floorMs = await readbackFloorMs(gpu, fence);
    const groups = [...dispatchesByKernel(plan.dispatches)];
    // The whole step and an empty dispatch take turns with the kernels, so that a change in
    // the machine's load reaches every figure alike.
    const times = await timeReplaysInTurn(
      gpu,
      floorMs,
      fence,
      [...groups.map(([, dispatches]) => dispatches), plan.dispatches, [emptyDispatch(gpu, fence)]],
      opts,
    );
    const empty = times.pop()!;
    const full = times.pop()!;
    const kernels: KernelStepTime[] = groups.map(([kernel, dispatches], i) => ({
      kernel,
      dispatchesPerStep: dispatches.length,
      msPerStep: times[i].msPerReplay,
      replays: times[i].replays,
    }));
    kernels.sort((a, b) => b.msPerStep - a.msPerStep || a.kernel.localeCompare(b.kernel));
    return {
      dispatchesPerStep: plan.dispatches.length,
      kernels,
      fullReplayMs: full.msPerReplay,
      fullReplays: full.replays,
      emptyDispatchUs: 1000 * empty.msPerReplay,
      readbackFloorMs: floorMs,
      trials: opts.trials ?? 3,
    };
  } finally {
    fence.destroy();
  }
}

/** The share of a step's wall time that launching its dispatches costs. */
export function dispatchOverheadShare(
  dispatchesPerStep: number,
  emptyDispatchUs: number,
  stepWallMs: number,
): number {
  return stepWallMs > 0 ? (dispatchesPerStep * emptyDispatchUs) / 1000 / stepWallMs : 0;
}

/**
 * The step table: each kernel's isolated time, then the two remainders, summing to
 * `stepWallMs` (the run's training-loop time per step); then dispatches and launch overhead.
 */
export function formatStepProfile(p: StepProfile, stepWallMs: number): string {
  const share = (ms: number) => `${(stepWallMs > 0 ? (100 * ms) / stepWallMs : 0).toFixed(1)}%`;
  const stamps = p.timestampMsPerStep;
  const stamp = (kernel: string) => stamps?.[kernel]?.toFixed(3) ?? "";
  const sum = p.kernels.reduce((s, k) => s + k.msPerStep, 0);
  const stampSum = stamps ? Object.values(stamps).reduce((s, ms) => s + ms, 0) : 0;
  const row = (name: string, n: string, ms: string, perDispatch: string, of: number, ts = "") =>
    stamps ? [name, n, ms, perDispatch, share(of), ts] : [name, n, ms, perDispatch, share(of)];
  const rows: string[][] = [
    ...p.kernels.map((k) =>
      row(
        k.kernel,
        String(k.dispatchesPerStep),
        k.msPerStep.toFixed(3),
        ((1000 * k.msPerStep) / k.dispatchesPerStep).toFixed(1),
        k.msPerStep,
        stamp(k.kernel),
      )
    ),
    row(
      "sum of kernels replayed alone",
      String(p.dispatchesPerStep),
      sum.toFixed(3),
      "",
      sum,
      stamps ? stampSum.toFixed(3) : "",
    ),
    row(
      "kernels together vs alone (full-step replay − sum)",
      "",
      signed(p.fullReplayMs - sum),
      "",
      p.fullReplayMs - sum,
    ),
    row(
      "host: encode, submit, loss readbacks (wall − replay)",
      "",
      signed(stepWallMs - p.fullReplayMs),
      "",
      stepWallMs - p.fullReplayMs,
    ),
    row("step wall time in the run", "", stepWallMs.toFixed(3), "", stepWallMs),
  ];
  const header = ["kernel (replayed alone)", "dispatches/step", "ms/step", "µs/dispatch", "share"];
  if (stamps) header.push("timestamps ms/step");
  const overheadMs = (p.dispatchesPerStep * p.emptyDispatchUs) / 1000;
  const overhead = dispatchOverheadShare(p.dispatchesPerStep, p.emptyDispatchUs, stepWallMs);
  const lines = [
    textTable(header, rows),
    "",
    `dispatches per step: ${p.dispatchesPerStep}; an empty dispatch costs ` +
    `${p.emptyDispatchUs.toFixed(1)} µs here, so launching them takes ${overheadMs.toFixed(3)} ` +
    `ms/step = ${(100 * overhead).toFixed(1)}% of the step's wall time (inside the kernel rows).`,
    `full-step replay: ${p.fullReplayMs.toFixed(3)} ms/step (${p.fullReplays} steps per submit).`,
    "Method: a row replays only that kernel's dispatches of one step, N steps' worth in one " +
    "submit, timed from submit to a 4-byte readback less the readback latency " +
    `(${p.readbackFloorMs.toFixed(1)} ms), median of ${p.trials}; the remainders are measured ` +
    "differences, not estimates. The replays run after the training run, on its final state.",
  ];
  if (stamps) {
    lines.push(
      `Timestamp queries over the same step (each dispatch in its own timed pass) sum to ` +
        `${stampSum.toFixed(3)} ms/step, ${share(stampSum)} of the wall: they time the passes, ` +
        "not the launches between them, so they neither add up nor split the step reliably.",
    );
  }
  return lines.join("\n");
}

function signed(ms: number): string {
  return `${ms >= 0 ? "+" : "−"}${Math.abs(ms).toFixed(3)}`;
}

/** An aligned text table: first column left-aligned, the rest right-aligned. */
export function textTable(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r.map((cell, c) => c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
