import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { sampleBatch, sampleBatchReference } from "../kernels/batch.ts";
import { Counter, createCounters } from "../kernels/counters.ts";
import { getGpu } from "../kernels/device.ts";
import { streamKey } from "../kernels/philox.ts";
import { runOnce } from "../kernels/program.ts";
import { createTensor, readU32, ShapeError } from "../kernels/tensor.ts";
import { randomIds } from "./support.ts";

Deno.test("sampleBatch matches the reference over three draws and bumps its counter", async () => {
  const gpu = await getGpu();
  const B = 5, T = 7, N = 101;
  const data = randomIds(N, 65, 1);
  const tokens = createTensor(gpu, [N], "u32", "tokens", data);
  const counters = createCounters(gpu, [0, 10]);
  const inputs = createTensor(gpu, [B, T], "u32", "inputs");
  const targets = createTensor(gpu, [B, T], "u32", "targets");
  const key = streamKey(7, "eval");
  for (let draw = 0; draw < 3; draw++) {
    await runOnce(gpu, (rec) =>
      sampleBatch(rec, {
        tokens,
        counters,
        counterIndex: Counter.evalBatch,
        key,
        inputs,
        targets,
      }));
    const want = sampleBatchReference(data, B, T, key, 10 + draw);
    deepStrictEqual(await readU32(inputs), want.inputs);
    deepStrictEqual(await readU32(targets), want.targets);
    // Targets are the inputs shifted by one position inside each window.
    for (let b = 0; b < B; b++) {
      for (let t = 0; t + 1 < T; t++) {
        deepStrictEqual(want.targets[b * T + t], want.inputs[b * T + t + 1]);
      }
    }
  }
  const c = await readU32(counters);
  deepStrictEqual([c[Counter.trainBatch], c[Counter.evalBatch]], [0, 13]);
});

Deno.test("sampleBatch with more rows than invocations, replayed from one plan", async () => {
  const gpu = await getGpu();
  const B = 300, T = 3, N = 50;
  // Distinct tokens make each window identify its offset.
  const data = Uint32Array.from({ length: N }, (_, i) => i);
  const tokens = createTensor(gpu, [N], "u32", "tokens", data);
  const counters = createCounters(gpu);
  const inputs = createTensor(gpu, [B, T], "u32", "inputs");
  const targets = createTensor(gpu, [B, T], "u32", "targets");
  const key = streamKey(3, "train");
  await runOnce(gpu, (rec) => {
    for (let i = 0; i < 2; i++) {
      sampleBatch(rec, {
        tokens,
        counters,
        counterIndex: Counter.trainBatch,
        key,
        inputs,
        targets,
      });
    }
  });
  const want = sampleBatchReference(data, B, T, key, 1);
  deepStrictEqual(await readU32(inputs), want.inputs);
  deepStrictEqual(await readU32(targets), want.targets);
  deepStrictEqual((await readU32(counters))[Counter.trainBatch], 2);
  const offsets = new Set<number>();
  for (let b = 0; b < B; b++) {
    const offset = want.inputs[b * T];
    ok(offset <= N - T - 1, `offset ${offset} leaves no room for the last target`);
    offsets.add(offset);
  }
  // 300 draws over 47 offsets: all of them should appear.
  deepStrictEqual(offsets.size, N - T);
});

Deno.test("sampleBatch rejects a split shorter than T + 1 tokens and mismatched outputs", async () => {
  const gpu = await getGpu();
  const counters = createCounters(gpu);
  const key = streamKey(0, "train");
  const inputs = createTensor(gpu, [2, 8], "u32", "inputs");
  const targets = createTensor(gpu, [2, 8], "u32", "targets");
  const short = createTensor(gpu, [8], "u32", "short");
  await runOnce(gpu, (rec) => {
    throws(
      () => sampleBatch(rec, { tokens: short, counters, counterIndex: 0, key, inputs, targets }),
      (e: unknown) => e instanceof ShapeError && /T \+ 1 = 9/.test(e.message),
    );
    const tokens = createTensor(gpu, [9], "u32", "tokens");
    const wrong = createTensor(gpu, [2, 7], "u32", "wrong");
    throws(
      () => sampleBatch(rec, { tokens, counters, counterIndex: 0, key, inputs, targets: wrong }),
      ShapeError,
    );
  });
  throws(() => sampleBatchReference(new Uint32Array(8), 2, 8, key, 0), ShapeError);
});
