import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { Counter, createCounters } from "../kernels/counters.ts";
import { crossEntropy, crossEntropyReference } from "../kernels/cross_entropy.ts";
import { getGpu } from "../kernels/device.ts";
import { runOnce } from "../kernels/program.ts";
import { createTensor, LimitError, readF32, ShapeError } from "../kernels/tensor.ts";
import { randomF32, randomIds, relError } from "./support.ts";

/** Central difference of the float64 reference loss with respect to logits[i]. */
function finiteDifference(
  logits: Float32Array,
  targets: Uint32Array,
  N: number,
  V: number,
  i: number,
): number {
  const x = Float64Array.from(logits);
  const h = 1e-5;
  x[i] += h;
  const up = crossEntropyReference(x, targets, N, V).loss;
  x[i] -= 2 * h;
  const down = crossEntropyReference(x, targets, N, V).loss;
  return (up - down) / (2 * h);
}

async function runCrossEntropy(
  shape: number[],
  logitsData: Float32Array,
  targetsData: Uint32Array,
  counter: number,
  capacity: number,
  withGrad: boolean,
) {
  const gpu = await getGpu();
  const logits = createTensor(gpu, shape, "f32", "logits", logitsData);
  const targets = createTensor(gpu, shape.slice(0, -1), "u32", "targets", targetsData);
  const losses = createTensor(
    gpu,
    [capacity],
    "f32",
    "losses",
    new Float32Array(capacity).fill(-1),
  );
  const counters = createCounters(gpu, [0, counter]);
  const dLogits = createTensor(
    gpu,
    shape,
    "f32",
    "dLogits",
    new Float32Array(logitsData.length).fill(9),
  );
  await runOnce(gpu, (rec) =>
    crossEntropy(rec, {
      logits,
      targets,
      losses,
      counters,
      counterIndex: Counter.evalBatch,
      dLogits: withGrad ? dLogits : undefined,
    }));
  return { losses: await readF32(losses), dLogits: await readF32(dLogits) };
}

Deno.test("crossEntropy on 300 rows (more than one per invocation) matches the reference", async () => {
  const N = 300, V = 37;
  const logits = randomF32(N * V, 1, 3);
  const targets = randomIds(N, V, 2);
  const got = await runCrossEntropy([N, V], logits, targets, 1, 4, true);
  const want = crossEntropyReference(logits, targets, N, V);
  ok(
    Math.abs(got.losses[0] - want.loss) / want.loss <= 1e-5,
    `loss ${got.losses[0]} vs ${want.loss}`,
  );
  deepStrictEqual([...got.losses.subarray(1)], [-1, -1, -1]);
  ok(
    relError(got.dLogits, want.dLogits) <= 1e-5,
    `dLogits error ${relError(got.dLogits, want.dLogits)}`,
  );
  // Spot-check the gradient against finite differences of the loss, targets included.
  const picks = [0, 1, targets[0], V * 299 + targets[299], V * 150 + 17, N * V - 1];
  for (const i of picks) {
    const fd = finiteDifference(logits, targets, N, V, i);
    ok(Math.abs(got.dLogits[i] - fd) <= 1e-5 * Math.abs(want.dLogits[0]) + 1e-9, `dLogits[${i}]`);
  }
});

Deno.test("crossEntropy gradient of a [B, T, V] batch equals finite differences everywhere", async () => {
  const B = 2, T = 3, V = 7, N = B * T;
  const logits = randomF32(N * V, 3, 2);
  const targets = randomIds(N, V, 4);
  const got = await runCrossEntropy([B, T, V], logits, targets, 1, 1, true);
  const want = crossEntropyReference(logits, targets, N, V);
  ok(Math.abs(got.losses[0] - want.loss) / want.loss <= 1e-5);
  const fd = Array.from({ length: N * V }, (_, i) => finiteDifference(logits, targets, N, V, i));
  ok(relError(got.dLogits, fd) <= 1e-5, `error to finite differences ${relError(got.dLogits, fd)}`);
  ok(relError(want.dLogits, fd) <= 1e-7);
  // Each row of the gradient sums to zero: softmax sums to one, as does the one-hot.
  for (let r = 0; r < N; r++) {
    const sum = got.dLogits.subarray(r * V, (r + 1) * V).reduce((a, b) => a + b, 0);
    ok(Math.abs(sum) < 1e-7, `row ${r} sums to ${sum}`);
  }
});

Deno.test("crossEntropy without dLogits writes only the loss, into the wrapped slot", async () => {
  const N = 5, V = 3;
  const logits = randomF32(N * V, 5, 1, 1000); // large logits: max-subtraction keeps exp finite
  const targets = randomIds(N, V, 6);
  // Counter 6 (already incremented) with 4 slots: slot (6 − 1) mod 4 = 1.
  const got = await runCrossEntropy([N, V], logits, targets, 6, 4, false);
  const want = crossEntropyReference(logits, targets, N, V);
  ok(Number.isFinite(got.losses[1]));
  ok(
    Math.abs(got.losses[1] - want.loss) / want.loss <= 1e-5,
    `loss ${got.losses[1]} vs ${want.loss}`,
  );
  deepStrictEqual([got.losses[0], got.losses[2], got.losses[3]], [-1, -1, -1]);
  ok(got.dLogits.every((x) => x === 9));
});

Deno.test("crossEntropy turns a target outside the vocabulary into a NaN loss", async () => {
  const N = 2, V = 3;
  const got = await runCrossEntropy([N, V], randomF32(N * V, 9), Uint32Array.of(1, V), 1, 1, false);
  ok(Number.isNaN(got.losses[0]), `loss ${got.losses[0]}`);
});

Deno.test("crossEntropy is bit-identical across runs", async () => {
  const N = 257, V = 11;
  const logits = randomF32(N * V, 7, 4);
  const targets = randomIds(N, V, 8);
  const a = await runCrossEntropy([N, V], logits, targets, 1, 1, true);
  const b = await runCrossEntropy([N, V], logits, targets, 1, 1, true);
  deepStrictEqual(a.losses, b.losses);
  deepStrictEqual(a.dLogits, b.dLogits);
});

Deno.test("crossEntropy refuses shapes past llvmpipe's loop limit and mismatched targets", async () => {
  const gpu = await getGpu();
  const counters = createCounters(gpu);
  const losses = createTensor(gpu, [4], "f32", "losses");
  const wide = createTensor(gpu, [2, 40000], "f32", "wide");
  const wideTargets = createTensor(gpu, [2], "u32", "wideTargets");
  const logits = createTensor(gpu, [4, 3], "f32", "logits");
  const fewTargets = createTensor(gpu, [3], "u32", "fewTargets");
  await runOnce(gpu, (rec) => {
    throws(
      () =>
        crossEntropy(rec, {
          logits: wide,
          targets: wideTargets,
          losses,
          counters,
          counterIndex: 0,
        }),
      (e: unknown) =>
        e instanceof LimitError && /crossEntropy/.test(e.message) &&
        /\[2, 40000\]/.test(e.message) &&
        /65535/.test(e.message),
    );
    throws(
      () => crossEntropy(rec, { logits, targets: fewTargets, losses, counters, counterIndex: 0 }),
      ShapeError,
    );
    throws(
      () =>
        crossEntropy(rec, {
          logits,
          targets: createTensor(gpu, [4], "u32", "targets"),
          losses,
          counters,
          counterIndex: 0,
          dLogits: createTensor(gpu, [4, 4], "f32", "dLogits"),
        }),
      ShapeError,
    );
  });
  throws(() => crossEntropyReference([0, 0], [2], 1, 2), RangeError);
});
