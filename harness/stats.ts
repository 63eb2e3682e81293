/**
 * Small-sample statistics for comparing runs across seeds: summaries with Student-t confidence
 * intervals and Welch's two-sample t-test. Pure functions over plain number arrays; the t
 * distribution itself comes from stdlib-js rather than hand-written numerics.
 */
import tQuantileUntyped from "@stdlib/stats-base-dists-t-quantile";
import tCdfUntyped from "@stdlib/stats-base-dists-t-cdf";

// Pin the call signatures we rely on, independent of how the packages declare their overloads.
const tQuantile: (p: number, df: number) => number = tQuantileUntyped;
const tCdf: (x: number, df: number) => number = tCdfUntyped;

/** Mean, spread and a 95% confidence interval for the mean of one sample. */
export interface Summary {
  n: number;
  mean: number;
  /** Sample standard deviation (n − 1 denominator); 0 when n = 1, where no spread is observable. */
  std: number;
  /** 95% Student-t interval for the mean; null when n = 1 (one value gives no interval). */
  ci95: [number, number] | null;
  min: number;
  max: number;
}

/** Welch's unequal-variance comparison of two samples a and b. */
export interface WelchResult {
  /** mean(b) − mean(a). */
  diff: number;
  /** 95% interval for mean(b) − mean(a) using the Welch–Satterthwaite df. */
  ci95: [number, number];
  /** diff / standard error. */
  t: number;
  /** Welch–Satterthwaite degrees of freedom. */
  df: number;
  /** Two-sided p-value. */
  p: number;
  /** Cohen's d: diff over the pooled standard deviation. */
  cohenD: number;
}

function requireValues(values: readonly number[], what: string, min: number): void {
  if (values.length < min) {
    throw new RangeError(`${what} needs at least ${min} value(s), got ${values.length}`);
  }
  for (const v of values) {
    if (!Number.isFinite(v)) throw new RangeError(`${what}: non-finite value ${v}`);
  }
}

/** Arithmetic mean; throws RangeError on an empty or non-finite sample. */
export function mean(values: readonly number[]): number {
  requireValues(values, "mean", 1);
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** Sample variance with the n − 1 denominator; throws RangeError when n < 2. */
export function sampleVariance(values: readonly number[]): number {
  requireValues(values, "sample variance", 2);
  const m = mean(values);
  // Two-pass sum of squared deviations: no catastrophic cancellation for losses near 2.5.
  let ss = 0;
  for (const v of values) ss += (v - m) * (v - m);
  return ss / (values.length - 1);
}

/** Sample standard deviation (n − 1 denominator); throws RangeError when n < 2. */
export function sampleStd(values: readonly number[]): number {
  return Math.sqrt(sampleVariance(values));
}

/** Two-sided Student-t critical value for a (1 − alpha) interval with `df` degrees of freedom. */
export function tCritical(df: number, alpha = 0.05): number {
  return tQuantile(1 - alpha / 2, df);
}

/** n, mean, sample std, 95% t interval for the mean (null when n = 1), min and max. */
export function summarize(values: readonly number[]): Summary {
  requireValues(values, "summarize", 1);
  const n = values.length;
  const m = mean(values);
  const min = Math.min(...values);
  const max = Math.max(...values);
  if (n === 1) return { n, mean: m, std: 0, ci95: null, min, max };
  const std = sampleStd(values);
  const half = tCritical(n - 1) * std / Math.sqrt(n);
  return { n, mean: m, std, ci95: [m - half, m + half], min, max };
}

/** Welch's t-test of mean(b) − mean(a), with its 95% CI and Cohen's d; each sample needs n ≥ 2. */
export function welch(a: readonly number[], b: readonly number[]): WelchResult {
  requireValues(a, "welch (first sample)", 2);
  requireValues(b, "welch (second sample)", 2);
  const na = a.length, nb = b.length;
  const va = sampleVariance(a), vb = sampleVariance(b);
  const diff = mean(b) - mean(a);
  const qa = va / na, qb = vb / nb;
  const se = Math.sqrt(qa + qb);
  const pooledSd = Math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2));
  const cohenD = pooledSd > 0 ? diff / pooledSd : diff === 0 ? 0 : Math.sign(diff) * Infinity;
  if (se === 0) {
    // Both samples constant (e.g. bit-identical deterministic runs): the difference is exact,
    // so the interval collapses and the test is decided by whether the means differ at all.
    return {
      diff,
      ci95: [diff, diff],
      t: diff === 0 ? 0 : Math.sign(diff) * Infinity,
      df: na + nb - 2,
      p: diff === 0 ? 1 : 0,
      cohenD,
    };
  }
  const df = (qa + qb) ** 2 / (qa * qa / (na - 1) + qb * qb / (nb - 1));
  const t = diff / se;
  const p = Math.min(1, 2 * tCdf(-Math.abs(t), df));
  const half = tCritical(df) * se;
  return { diff, ci95: [diff - half, diff + half], t, df, p, cohenD };
}
