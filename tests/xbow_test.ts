/**
 * `exp xbow` as the harness runs it (CheckExperiment.run): every way of averaging and the
 * single head agree with the float64 loop within XBOW_BOUNDS for several seeds and shapes,
 * and a bound that is exceeded (or a measurement that is NaN or missing) fails the run.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { xbow, XBOW_BOUNDS, xbowFailures } from "../experiments/xbow.ts";
import { getGpu } from "../kernels/device.ts";

const cases: { B: number; T: number; C: number; headSize: number; seeds: number[] }[] = [
  { B: 4, T: 8, C: 2, headSize: 16, seeds: [0, 1337] },
  { B: 1, T: 1, C: 1, headSize: 1, seeds: [7] },
  { B: 3, T: 17, C: 5, headSize: 3, seeds: [1, 2] },
  { B: 2, T: 32, C: 16, headSize: 16, seeds: [42] },
];

for (const { B, T, C, headSize, seeds } of cases) {
  Deno.test(`xbow meets its bounds for B=${B}, T=${T}, C=${C}, headSize=${headSize}`, async () => {
    const gpu = await getGpu();
    const config = xbow.schema.parse({ shape: { B, T, C }, head: { headSize } });
    for (const seed of seeds) {
      const outcome = await xbow.run(gpu, config, seed);
      deepEqual(outcome.failures, [], `seed ${seed}: ${outcome.failures.join("; ")}`);
      deepEqual(Object.keys(outcome.final).sort(), Object.keys(XBOW_BOUNDS).sort());
      for (const [key, bound] of Object.entries(XBOW_BOUNDS)) {
        const value = outcome.final[key];
        ok(Number.isFinite(value) && value >= 0, `seed ${seed}: ${key} = ${value}`);
        ok(value <= bound, `seed ${seed}: ${key} = ${value} > ${bound}`);
      }
    }
  });
}

Deno.test("xbow gives the same measurements for the same seed", async () => {
  const gpu = await getGpu();
  const config = xbow.schema.parse({ shape: { B: 2, T: 5, C: 3 } });
  const a = await xbow.run(gpu, config, 5);
  const b = await xbow.run(gpu, config, 5);
  deepEqual(a, b);
});

Deno.test("xbowFailures passes values within the bounds and names each exceeded bound", () => {
  const within = Object.fromEntries(Object.entries(XBOW_BOUNDS).map(([k, v]) => [k, v]));
  deepEqual(xbowFailures(within), [], "a value equal to its bound passes");
  deepEqual(xbowFailures(Object.fromEntries(Object.keys(XBOW_BOUNDS).map((k) => [k, 0]))), []);
  for (const key of Object.keys(XBOW_BOUNDS) as (keyof typeof XBOW_BOUNDS)[]) {
    const over = { ...within, [key]: XBOW_BOUNDS[key] * 1.5 };
    const failures = xbowFailures(over);
    equal(failures.length, 1, `${key} over its bound`);
    match(failures[0], new RegExp(`^${key} = .* > ${XBOW_BOUNDS[key]}$`));
    // NaN (a comparison gone wrong) and a missing measurement never pass.
    equal(xbowFailures({ ...within, [key]: NaN }).length, 1, `${key} NaN`);
    const missing: Record<string, number> = { ...within };
    delete missing[key];
    equal(xbowFailures(missing).length, 1, `${key} missing`);
  }
  equal(xbowFailures({}).length, Object.keys(XBOW_BOUNDS).length);
});
