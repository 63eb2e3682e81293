/**
 * Power of the two-sample t-test (harness/power.ts) against published values and a seeded
 * simulation of Welch's test.
 *
 * Published values: R's `power.t.test` (stats package, exact noncentral t; by default it counts
 * rejections in the true direction only, `strict = FALSE`, which `upperOnly` reproduces):
 * - `power.t.test(n = 20, delta = 1)`: power = 0.8689528 (the function's documented example);
 * - `power.t.test(power = .90, delta = 1)`: n = 22.02110 (documented example);
 * - `power.t.test(power = .80, delta = .5)`: n = 63.76576.
 * R solves for n with uniroot at tolerance ~1.2e-4, so n is compared to that precision.
 * Cohen's conventional effect sizes d = 0.2, 0.5, 0.8 at 80% power and α = 0.05 need 394, 64
 * and 26 runs per group (G*Power and R agree; Cohen's 1992 table rounds the first to 393 from
 * an approximation).
 */
import assert from "node:assert/strict";
import {
  detectableDifference,
  noncentralTwoSidedTail,
  powerOfOne,
  powerOfTwo,
  powerSentence,
  runsForPower,
  twoSamplePower,
  welchDf,
} from "../harness/power.ts";
import { sampleStd, welch } from "../harness/stats.ts";

const R = { sdA: 1, sdB: 1, alpha: 0.05, upperOnly: true };
const STRICT = { sdA: 1, sdB: 1, alpha: 0.05 };

Deno.test("power: R's power.t.test values to the digits R prints", () => {
  assert.equal(twoSamplePower(20, 1, R).toFixed(7), "0.8689528");
  assert.ok(Math.abs(runsForPower(1, 0.9, R)!.exact - 22.02110) < 2e-4);
  assert.ok(Math.abs(runsForPower(0.5, 0.8, R)!.exact - 63.76576) < 2e-4);
  // Both rejection regions (seedlab's default) add the tiny wrong-direction tail.
  const strict = twoSamplePower(20, 1, STRICT);
  assert.ok(strict > 0.8689528 && strict - 0.8689528 < 1e-6, `strict power ${strict}`);
  // No difference: the test rejects at its level, α.
  assert.ok(Math.abs(twoSamplePower(7, 0, STRICT) - 0.05) < 1e-9);
});

Deno.test("power: Cohen's small, medium and large effects need 394, 64 and 26 runs per group", () => {
  assert.deepEqual(
    [0.2, 0.5, 0.8].map((d) => runsForPower(d, 0.8, STRICT)!.n),
    [394, 64, 26],
  );
  // A large effect at n = 2 already has the power: the answer is the minimum, 2.
  assert.equal(runsForPower(10, 0.8, STRICT)!.n, 2);
  assert.equal(runsForPower(0, 0.8, STRICT), null);
});

Deno.test("power: the detectable difference inverts the power function", () => {
  const d = detectableDifference(20, 0.8, STRICT);
  assert.ok(Math.abs(twoSamplePower(20, d, STRICT) - 0.8) < 1e-6);
  // ≈ 0.909 σ for n = 20 (the normal approximation gives 0.886; the t's heavier tails more).
  assert.ok(Math.abs(d - 0.9091) < 1e-3, `detectable ${d}`);
  assert.equal(detectableDifference(5, 0.8, { sdA: 0, sdB: 0, alpha: 0.05 }), 0);
  // Welch–Satterthwaite df: equal spreads give 2n − 2; one noisy group gives n − 1.
  assert.equal(welchDf(10, 1, 1), 18);
  assert.ok(Math.abs(welchDf(10, 1, 1e-6) - 9) < 1e-9);
  // Infinite df is the normal distribution: Φ(λ − 1.96) + Φ(−λ − 1.96) at λ = 0 is 0.05.
  assert.ok(Math.abs(noncentralTwoSidedTail(1.959963984540054, Infinity, 0) - 0.05) < 1e-12);
});

/** A seeded normal stream: mulberry32 uniforms through Box–Muller. */
function normals(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 2 ** 32;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

Deno.test("power: a seeded simulation of Welch's test rejects as often as predicted", () => {
  // Unequal spreads, so the Welch approximation is what is tested.
  const p = { sdA: 0.02, sdB: 0.04, alpha: 0.05 };
  const diff = 0.05;
  const { n } = runsForPower(diff, 0.8, p)!;
  const randn = normals(20261129);
  const trials = 4000;
  for (const size of [n, 4]) {
    let rejected = 0;
    for (let i = 0; i < trials; i++) {
      const a = Array.from({ length: size }, () => p.sdA * randn());
      const b = Array.from({ length: size }, () => diff + p.sdB * randn());
      if (welch(a, b).p < p.alpha) rejected++;
    }
    const predicted = twoSamplePower(size, diff, p);
    const se = Math.sqrt(predicted * (1 - predicted) / trials);
    assert.ok(
      Math.abs(rejected / trials - predicted) < 4 * se + 0.01,
      `n = ${size}: simulated ${rejected / trials}, predicted ${predicted.toFixed(4)}`,
    );
    if (size === n) assert.ok(predicted >= 0.8 && rejected / trials > 0.75);
  }
});

Deno.test("power: the sentences diff prints", () => {
  const f = (x: number) => x.toFixed(3);
  const two = powerOfTwo([1, 1.1, 0.9], [1.5, 1.6, 1.4], 0.05, 0.8, sampleStd);
  assert.equal(two.runsNeeded!.n, runsForPower(0.5, 0.8, { sdA: 0.1, sdB: 0.1, alpha: 0.05 })!.n);
  assert.match(
    powerSentence(two, f),
    /^power: detecting the observed difference of 0\.500 at 80% power, α = 0\.05 takes \d+ seeds per group \(now 3 vs 3; two-sided Welch/,
  );
  const none = powerOfTwo([1, 2], [1, 2], 0.05, 0.8, sampleStd);
  assert.match(
    powerSentence(none, f),
    /no number of seeds up to 1000000 detects the observed difference of 0\.000/,
  );
  const one = powerOfOne(5, 0.1, 0.05, 0.9);
  assert.match(
    powerSentence(one, f),
    /with 5 seeds per group and std 0\.100, the smallest difference detectable at 90% power/,
  );
  assert.equal(
    powerSentence(powerOfOne(3, 0, 0.05, 0.8), f),
    "power: the 3 runs do not vary (std 0), so any difference shows",
  );
});
