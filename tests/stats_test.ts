import assert from "node:assert/strict";
import { mean, sampleStd, summarize, tCritical, welch } from "../harness/stats.ts";

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= tol,
    `${what}: got ${actual}, expected ${expected} (±${tol})`,
  );
}

// Student t CDF with 4 degrees of freedom in closed form (Abramowitz & Stegun 26.7.3), so the
// p-value check does not go through the library under test.
function tCdf4(t: number): number {
  const theta = Math.atan(t / 2);
  const s = Math.sin(theta), c = Math.cos(theta);
  return 0.5 + 0.5 * (s + 0.5 * s * c * c);
}

Deno.test("mean and sample std of the textbook sample 2,4,4,4,5,5,7,9", () => {
  const x = [2, 4, 4, 4, 5, 5, 7, 9];
  assert.equal(mean(x), 5);
  // Σ(x − 5)² = 32, so the sample variance is 32/7.
  close(sampleStd(x), Math.sqrt(32 / 7), 1e-12, "std");
});

Deno.test("t critical values match printed t tables", () => {
  close(tCritical(1), 12.706204736174698, 1e-9, "df=1");
  close(tCritical(2), 4.302652729749462, 1e-9, "df=2");
  close(tCritical(4), 2.7764451051977934, 1e-9, "df=4");
  close(tCritical(7), 2.364624251592784, 1e-9, "df=7");
  // df=2 has a closed-form quantile: t = q·√(2 / (1 − q²)) with q = 2p − 1.
  const q = 2 * 0.975 - 1;
  close(tCritical(2), q * Math.sqrt(2 / (1 - q * q)), 1e-9, "df=2 closed form");
});

Deno.test("summarize gives n, mean, std, 95% t interval, min and max", () => {
  const s = summarize([2, 4, 4, 4, 5, 5, 7, 9]);
  assert.equal(s.n, 8);
  assert.equal(s.mean, 5);
  assert.equal(s.min, 2);
  assert.equal(s.max, 9);
  close(s.std, 2.138089935299395, 1e-12, "std");
  assert.ok(s.ci95);
  // mean ± t(0.975, 7) · s/√n; reference from scipy.stats.t.interval.
  close(s.ci95[0], 3.21251208176379, 1e-9, "ci lo");
  close(s.ci95[1], 6.787487918236209, 1e-9, "ci hi");
});

Deno.test("summarize of one value has no spread and no interval", () => {
  const s = summarize([2.5]);
  assert.deepEqual(s, { n: 1, mean: 2.5, std: 0, ci95: null, min: 2.5, max: 2.5 });
});

Deno.test("summarize and mean reject empty and non-finite samples", () => {
  assert.throws(() => summarize([]), RangeError);
  assert.throws(() => mean([1, NaN]), RangeError);
  assert.throws(() => sampleStd([1]), RangeError);
});

Deno.test("welch with equal n and variances: df = 4 exactly, p from the closed-form CDF", () => {
  const r = welch([1, 2, 3], [4, 5, 6]);
  assert.equal(r.diff, 3);
  // Both variances are 1: se = √(1/3 + 1/3), df = (2/3)² / (2·(1/3)²/2) = 4.
  const se = Math.sqrt(2 / 3);
  close(r.t, 3 / se, 1e-12, "t");
  close(r.df, 4, 1e-12, "df");
  close(r.p, 2 * (1 - tCdf4(3 / se)), 1e-9, "p");
  close(r.p, 0.021311641128756713, 1e-9, "p (scipy)");
  close(r.ci95[0], 3 - 2.7764451051977934 * se, 1e-9, "ci lo");
  close(r.ci95[1], 3 + 2.7764451051977934 * se, 1e-9, "ci hi");
  // Pooled sd is 1, so d equals the difference of means.
  close(r.cohenD, 3, 1e-12, "d");
});

Deno.test("welch with unequal n and variances matches scipy's ttest_ind(equal_var=False)", () => {
  const a = [2.51, 2.49, 2.53, 2.50, 2.52];
  const b = [2.45, 2.47, 2.41];
  const r = welch(a, b);
  close(r.diff, 2.443333333333333 - 2.51, 1e-12, "diff");
  // Reference: scipy.stats.ttest_ind(b, a, equal_var=False) and its confidence_interval().
  close(r.t, -3.5082320772281053, 1e-9, "t");
  close(r.df, 2.6601605540689315, 1e-9, "df");
  close(r.p, 0.047349081426718925, 1e-7, "p");
  close(r.ci95[0], -0.13175700484178327, 1e-7, "ci lo");
  close(r.ci95[1], -0.0015763284915495807, 1e-7, "ci hi");
  // Σ squared deviations are 0.001 and 0.0018667: pooled sd = √(0.0028667 / 6).
  close(r.cohenD, -3.049971406652089, 1e-9, "d");
});

Deno.test("welch of identical samples finds nothing; constant samples are exact", () => {
  const same = welch([2.5, 2.6, 2.7], [2.5, 2.6, 2.7]);
  assert.equal(same.diff, 0);
  assert.equal(same.t, 0);
  assert.equal(same.p, 1);
  assert.equal(same.cohenD, 0);
  close(same.ci95[0], -same.ci95[1], 1e-15, "symmetric ci");

  const constant = welch([2, 2], [3, 3]);
  assert.deepEqual(constant, { diff: 1, ci95: [1, 1], t: Infinity, df: 2, p: 0, cohenD: Infinity });
  assert.throws(() => welch([1], [2, 3]), RangeError);
});
