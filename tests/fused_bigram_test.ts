import assert from "node:assert/strict";
import { bigram } from "../experiments/bigram.ts";
import type { LanguageModelConfig, LanguageModelExperiment } from "../experiments/types.ts";
import { createCounters } from "../kernels/counters.ts";
import { getGpu } from "../kernels/device.ts";
import {
  fusedBigramEval,
  fusedBigramStep,
  fusedBigramStepReference,
} from "../kernels/fused_bigram.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import {
  createTensor,
  LimitError,
  readF32,
  readU32,
  ShapeError,
  tensorView,
} from "../kernels/tensor.ts";
import { randomF32, randomIds, relError } from "./support.ts";
import { type SteppedRun, trainEveryStep } from "./training_support.ts";

function configFor(B: number, T: number, steps: number): LanguageModelConfig {
  return {
    train: { steps, batchSize: B, blockSize: T, lr: 1e-2, weightDecay: 0.01 },
    eval: { interval: 20, iters: 3 },
    sample: { tokens: 8 },
    data: "test",
  };
}

/** Trains the bigram model with one readback per step, so every step's loss is seen. */
function train(
  V: number,
  B: number,
  T: number,
  steps: number,
  fused: boolean,
): Promise<SteppedRun> {
  return trainEveryStep({
    experiment: bigram as unknown as LanguageModelExperiment<LanguageModelConfig>,
    config: configFor(B, T, steps),
    vocabSize: V,
    seed: 11,
    trainTokens: randomIds(3000, V, 21),
    valTokens: randomIds(400, V, 22),
    fused,
  });
}

// V = 65 is not a multiple of 4, so AdamW's vec4s straddle table rows; V = 8 is.
for (const [V, B, T] of [[65, 32, 8], [8, 3, 5]]) {
  Deno.test(`fused bigram step trains bit-identically to the autograd graph (V=${V}, B=${B}, T=${T})`, async () => {
    const steps = 40;
    const graph = await train(V, B, T, steps, false);
    const fused = await train(V, B, T, steps, true);
    assert.equal(fused.outcome.status, "ok");
    assert.equal(fused.losses.length, steps);
    assert.ok(fused.losses.every(Number.isFinite));
    // The model learns: the last losses are below the first (N(0, 1) init, lr 1e-2).
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(
      mean(fused.losses.slice(-5)) < mean(fused.losses.slice(0, 5)) - 0.05,
      `loss did not fall: ${fused.losses.slice(0, 5)} → ${fused.losses.slice(-5)}`,
    );
    assert.deepEqual(fused.losses, graph.losses);
    assert.deepEqual(fused.outcome.curve.map((p) => [p.step, p.train, p.val]), [
      ...graph.outcome.curve.map((p) => [p.step, p.train, p.val]),
    ]);
    assert.equal(fused.outcome.curve.length, 3);
    assert.deepEqual(fused.outcome.state.params, graph.outcome.state.params);
    assert.deepEqual(fused.outcome.state.adamM, graph.outcome.state.adamM);
    assert.deepEqual(fused.outcome.state.adamV, graph.outcome.state.adamV);
    assert.deepEqual(fused.outcome.state.counters, graph.outcome.state.counters);
    assert.equal(fused.outcome.state.counters[0], steps);
    assert.deepEqual(fused.outcome.sample, graph.outcome.sample);
    assert.equal(fused.outcome.paramsSha256, graph.outcome.paramsSha256);
  });
}

/** A table, its arena and AdamW moments, the tokens and the counters, on the device. */
async function fixture(V: number, B: number, T: number) {
  const gpu = await getGpu();
  const arenaSize = Math.ceil((V * V) / 64) * 64;
  const init = new Float32Array(arenaSize);
  init.set(randomF32(V * V, 31, 2));
  const params = createTensor(gpu, [arenaSize], "f32", "params", init);
  const tokenData = randomIds(500, V, 32);
  return {
    gpu,
    init,
    tokenData,
    params,
    m: createTensor(gpu, [arenaSize], "f32", "m"),
    v: createTensor(gpu, [arenaSize], "f32", "v"),
    table: tensorView(params, 0, [V, V], "table"),
    tokens: createTensor(gpu, [tokenData.length], "u32", "tokens", tokenData),
    counters: createCounters(gpu, [4, 7]),
    losses: createTensor(gpu, [3], "f32", "losses"),
    batchSize: B,
    blockSize: T,
  };
}

Deno.test("fusedBigramStep matches the float64 reference of the unfused kernels", async () => {
  const V = 13, B = 5, T = 7;
  const f = await fixture(V, B, T);
  const key = [5, 2] as const;
  await runOnce(f.gpu, (rec) =>
    fusedBigramStep(rec, {
      ...f,
      counterIndex: 0,
      key,
      lr: 0.05,
      weightDecay: 0.1,
    }));
  const table = Float64Array.from(f.init.subarray(0, V * V));
  const m = new Float64Array(V * V), v = new Float64Array(V * V);
  const loss = fusedBigramStepReference(f.tokenData, table, m, v, {
    B,
    T,
    V,
    key,
    c: 4,
    lr: 0.05,
    weightDecay: 0.1,
  });
  const losses = await readF32(f.losses);
  // Batch counter 4 before the step: slot 4 mod 3 = 1.
  assert.ok(Math.abs(losses[1] - loss) <= 1e-5 * loss, `loss ${losses[1]} vs ${loss}`);
  assert.deepEqual([losses[0], losses[2]], [0, 0]);
  assert.ok(loss > 1 && loss < 10, `loss ${loss}`);
  const params = await readF32(f.params);
  assert.ok(relError(params.subarray(0, V * V), table) <= 1e-6, "params");
  assert.deepEqual([...params.subarray(V * V)], new Array(params.length - V * V).fill(0));
  assert.ok(relError((await readF32(f.m)).subarray(0, V * V), m) <= 1e-5, "m");
  assert.ok(relError((await readF32(f.v)).subarray(0, V * V), v) <= 1e-5, "v");
  // Every parameter moved (weight decay and the step), and the counters advanced by one batch.
  assert.ok(params.subarray(0, V * V).every((p, i) => p !== f.init[i]));
  assert.deepEqual([...(await readU32(f.counters)).subarray(0, 2)], [5, 7]);
});

Deno.test("fusedBigramEval writes the eval loss and leaves the table alone", async () => {
  const V = 10, B = 4, T = 6;
  const f = await fixture(V, B, T);
  await runOnce(f.gpu, (rec) => fusedBigramEval(rec, { ...f, counterIndex: 1, key: [9, 3] }));
  const table = Float64Array.from(f.init.subarray(0, V * V));
  const want = fusedBigramStepReference(
    f.tokenData,
    table,
    new Float64Array(V * V),
    new Float64Array(V * V),
    { B, T, V, key: [9, 3], c: 7, lr: 0.05, weightDecay: 0 },
  );
  const losses = await readF32(f.losses);
  assert.ok(Math.abs(losses[7 % 3] - want) <= 1e-5 * want, `loss ${losses[1]} vs ${want}`);
  assert.deepEqual(await readF32(f.params), f.init);
  assert.deepEqual([...(await readU32(f.counters)).subarray(0, 2)], [4, 8]);
});

Deno.test("fused bigram kernels record two dispatches per step and one per eval", async () => {
  const f = await fixture(9, 2, 3);
  const rec = new Recorder(f.gpu);
  fusedBigramStep(rec, { ...f, counterIndex: 0, key: [1, 2], lr: 1e-3, weightDecay: 0 });
  assert.equal(rec.dispatches.length, 2);
  fusedBigramEval(rec, { ...f, counterIndex: 1, key: [1, 3] });
  assert.equal(rec.dispatches.length, 3);
  await rec.finish();
});

Deno.test("fused bigram kernels reject other arenas and llvmpipe-sized loops", async () => {
  const f = await fixture(9, 2, 3);
  const big = createTensor(f.gpu, [256], "f32", "arena.with.more");
  const rec = new Recorder(f.gpu);
  const base = { ...f, counterIndex: 0, key: [1, 2] as const, lr: 1e-3, weightDecay: 0 };
  assert.throws(
    () => fusedBigramStep(rec, { ...base, params: big, m: big, v: big }),
    (e) => e instanceof ShapeError && /must start the arena/.test(e.message),
  );
  const bigTable = tensorView(big, 0, [9, 9], "table");
  assert.throws(
    () => fusedBigramStep(rec, { ...base, table: bigTable, params: big, m: f.m, v: f.v }),
    (e) => e instanceof ShapeError && /must have the size of/.test(e.message),
  );
  // 4096 × 8 positions: a table element may have to sum over all of them.
  assert.throws(
    () => fusedBigramStep(rec, { ...base, batchSize: 4096, blockSize: 8 }),
    (e) => e instanceof LimitError && /llvmpipe's limit of 65535/.test(e.message),
  );
  await rec.finish();
});
