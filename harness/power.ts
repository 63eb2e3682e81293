/**
 * Statistical power of the two-sided two-sample t-test, for "how many seeds would it take".
 *
 * The power of Welch's test at n runs per group is computed as the power of a t-test whose
 * statistic follows a noncentral t distribution with the Welch–Satterthwaite degrees of freedom
 * for those n and the observed standard deviations, and noncentrality δ / √((s_a² + s_b²)/n).
 * With equal standard deviations that is exactly the power of Student's two-sample t-test
 * (df = 2n − 2), as R's `power.t.test` and G*Power compute it; with unequal ones it is the usual
 * approximation (the df is treated as known). The noncentral t probability is integrated
 * numerically over the chi distribution of the standard-error estimate.
 */
import normalCdfUntyped from "@stdlib/stats-base-dists-normal-cdf";
import chisquarePdfUntyped from "@stdlib/stats-base-dists-chisquare-pdf";
import { tCritical } from "./stats.ts";

const normalCdf: (x: number, mu: number, sigma: number) => number = normalCdfUntyped;
const chisquarePdf: (x: number, k: number) => number = chisquarePdfUntyped;

/** The most runs per group a power figure reports; beyond it the answer is "more than this". */
export const MAX_POWER_N = 1_000_000;

/** What the power of a two-sample comparison depends on. */
export interface PowerInputs {
  /** Standard deviation of each group (equal for Student's test). */
  sdA: number;
  sdB: number;
  /** Two-sided significance level. */
  alpha: number;
  /** Count only rejections in the true direction (R's power.t.test default); default false. */
  upperOnly?: boolean;
}

/**
 * P(|T| > t) for T noncentral t with `df` degrees of freedom and noncentrality `lambda`:
 * E over U ~ chi(df) of Φ(λ − t·U/√df) + Φ(−λ − t·U/√df), by Simpson's rule in U. With
 * `upperOnly` the second term (rejecting in the wrong direction) is left out, as R's
 * `power.t.test` does unless `strict = TRUE`.
 */
export function noncentralTwoSidedTail(
  t: number,
  df: number,
  lambda: number,
  upperOnly = false,
): number {
  const tail = (w: number) =>
    normalCdf(lambda - t * w, 0, 1) + (upperOnly ? 0 : normalCdf(-lambda - t * w, 0, 1));
  if (!Number.isFinite(df)) return tail(1);
  // U = √V, V ~ χ²(df): density 2u·f_χ²(u²). chi(df) has sd < 0.75, so ±12 around its
  // mode holds everything a double can see; starting at 0 keeps small df exact.
  const centre = Math.sqrt(Math.max(df - 1, 0));
  const lo = Math.max(0, centre - 12);
  const hi = centre + 12;
  const steps = 2000;
  const h = (hi - lo) / steps;
  const f = (u: number) => {
    if (u <= 0) return 0;
    return tail(u / Math.sqrt(df)) * 2 * u * chisquarePdf(u * u, df);
  };
  let sum = f(lo) + f(hi);
  for (let i = 1; i < steps; i++) sum += (i % 2 === 1 ? 4 : 2) * f(lo + i * h);
  return sum * h / 3;
}

/** Welch–Satterthwaite degrees of freedom for n runs per group with these standard deviations. */
export function welchDf(n: number, sdA: number, sdB: number): number {
  const a = sdA * sdA, b = sdB * sdB;
  if (a + b === 0) return 2 * (n - 1);
  return (a + b) ** 2 * (n - 1) / (a * a + b * b);
}

/** Power of the two-sided test to detect a true difference `diff` with n runs per group. */
export function twoSamplePower(n: number, diff: number, p: PowerInputs): number {
  const df = welchDf(n, p.sdA, p.sdB);
  const se = Math.sqrt((p.sdA * p.sdA + p.sdB * p.sdB) / n);
  if (se === 0) return diff === 0 ? p.alpha : 1;
  return noncentralTwoSidedTail(tCritical(df, p.alpha), df, Math.abs(diff) / se, p.upperOnly);
}

/** Runs per group needed: `exact` solves power(n) = target over real n ≥ 2; `n` rounds it up. */
export interface RunsNeeded {
  n: number;
  exact: number;
}

/**
 * The runs per group at which the test detects `diff` with probability `power`, or null when
 * even MAX_POWER_N would not (a difference of 0, say).
 */
export function runsForPower(diff: number, power: number, p: PowerInputs): RunsNeeded | null {
  const at = (n: number) => twoSamplePower(n, diff, p);
  if (at(2) >= power) return { n: 2, exact: 2 };
  if (diff === 0 || at(MAX_POWER_N) < power) return null;
  // Power grows with n: bracket by doubling, then bisect to far below one run.
  let lo = 2, hi = 4;
  while (at(hi) < power) [lo, hi] = [hi, hi * 2];
  while (hi - lo > 1e-7 * hi) {
    const mid = (lo + hi) / 2;
    if (at(mid) < power) lo = mid;
    else hi = mid;
  }
  const exact = (lo + hi) / 2;
  // Round up, but trust the integer when the bisection lands a hair above it.
  const n = Math.max(2, Math.ceil(exact - 1e-6));
  return { n, exact };
}

/**
 * The smallest true difference that n runs per group detect with probability `power`
 * (positive; 0 when the groups have no spread at all).
 */
export function detectableDifference(n: number, power: number, p: PowerInputs): number {
  const sd = Math.sqrt((p.sdA * p.sdA + p.sdB * p.sdB) / 2);
  if (sd === 0) return 0;
  const at = (d: number) => twoSamplePower(n, d, p);
  let lo = 0, hi = sd;
  while (at(hi) < power) [lo, hi] = [hi, hi * 2];
  while (hi - lo > 1e-9 * hi) {
    const mid = (lo + hi) / 2;
    if (at(mid) < power) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The power figures `diff` prints. */
export interface PowerReport {
  /** Two-sided significance level and the power asked for. */
  alpha: number;
  power: number;
  method: string;
  /** Two groups: the observed difference and the runs per group that detect it. */
  observed?: { diff: number; sdA: number; sdB: number; nA: number; nB: number };
  runsNeeded?: RunsNeeded | null;
  /** One group: the smallest difference its n runs per group detect, at its std. */
  detectable?: { n: number; sd: number; diff: number };
}

const METHOD = "two-sided Welch test; power from the noncentral t with the Welch–Satterthwaite " +
  "df at the observed standard deviations";

/** Seeds per group to detect the difference between `a` and `b` as observed (n ≥ 2 each). */
export function powerOfTwo(
  a: readonly number[],
  b: readonly number[],
  alpha: number,
  power: number,
  sd: (values: readonly number[]) => number,
): PowerReport {
  const mean = (v: readonly number[]) => v.reduce((s, x) => s + x, 0) / v.length;
  const observed = {
    diff: mean(b) - mean(a),
    sdA: sd(a),
    sdB: sd(b),
    nA: a.length,
    nB: b.length,
  };
  const runsNeeded = runsForPower(observed.diff, power, {
    sdA: observed.sdA,
    sdB: observed.sdB,
    alpha,
  });
  return { alpha, power, method: METHOD, observed, runsNeeded };
}

/** The smallest difference two groups like this one (same n and std) detect. */
export function powerOfOne(n: number, std: number, alpha: number, power: number): PowerReport {
  const diff = detectableDifference(n, power, { sdA: std, sdB: std, alpha });
  return { alpha, power, method: METHOD, detectable: { n, sd: std, diff } };
}

const percent = (x: number) => `${Math.round(x * 1000) / 10}%`;

/** One sentence for a power report. */
export function powerSentence(r: PowerReport, format: (x: number) => string): string {
  const at = `at ${percent(r.power)} power, α = ${r.alpha}`;
  if (r.observed) {
    const o = r.observed;
    if (!r.runsNeeded) {
      return `power: no number of seeds up to ${MAX_POWER_N} detects the observed difference ` +
        `of ${format(Math.abs(o.diff))} ${at}`;
    }
    return `power: detecting the observed difference of ${format(Math.abs(o.diff))} ${at} ` +
      `takes ${r.runsNeeded.n} seeds per group (now ${o.nA} vs ${o.nB}; ${METHOD})`;
  }
  const d = r.detectable!;
  if (d.sd === 0) return `power: the ${d.n} runs do not vary (std 0), so any difference shows`;
  return `power: with ${d.n} seeds per group and std ${format(d.sd)}, the smallest difference ` +
    `detectable ${at} is ${format(d.diff)} (${METHOD})`;
}
