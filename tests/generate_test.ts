import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { Counter, createCounters } from "../kernels/counters.ts";
import { getGpu } from "../kernels/device.ts";
import {
  contextWindow,
  contextWindowReference,
  sampleNext,
  sampleNextReference,
} from "../kernels/generate.ts";
import { philox4x32, streamKey, unitFloat } from "../kernels/philox.ts";
import { runOnce } from "../kernels/program.ts";
import { createTensor, LimitError, readU32, ShapeError, writeTensor } from "../kernels/tensor.ts";
import { randomF32 } from "./support.ts";

Deno.test("200 tokens generated in one plan equal the TypeScript reference loop", async () => {
  const gpu = await getGpu();
  const T = 5, V = 11, steps = 200, L = steps + 1;
  const key = streamKey(1234, "sample");
  const logitsData = randomF32(T * V, 1, 3);
  const logits = createTensor(gpu, [1, T, V], "f32", "logits", logitsData);
  const generated = createTensor(gpu, [L], "u32", "generated", [4, ...new Array(steps).fill(0)]);
  const counters = createCounters(gpu);
  const idx = createTensor(gpu, [1, T], "u32", "idx");
  await runOnce(gpu, (rec) => {
    for (let i = 0; i < steps; i++) {
      contextWindow(rec, { generated, counters, idx });
      sampleNext(rec, { logits, counters, key, generated });
    }
  });

  const want = new Uint32Array(L);
  want[0] = 4;
  for (let pos = 0; pos < steps; pos++) {
    const r = Math.min(pos, T - 1);
    const u = unitFloat(philox4x32([pos, 0, 0, 0], key)[0]);
    want[pos + 1] = sampleNextReference(logitsData.subarray(r * V, (r + 1) * V), u);
  }
  const got = await readU32(generated);
  deepStrictEqual(got, want);
  deepStrictEqual((await readU32(counters))[Counter.genPos], steps);
  deepStrictEqual(await readU32(idx), contextWindowReference(want, steps - 1, T));
  // Real draws, not a constant: several tokens appear.
  ok(new Set(got).size >= 5, `only ${new Set(got).size} distinct tokens`);
});

Deno.test("contextWindow pads with the current token until the window fills, then slides", async () => {
  const gpu = await getGpu();
  const T = 4;
  const tokens = [10, 11, 12, 13, 14, 15, 16, 17];
  const generated = createTensor(gpu, [tokens.length], "u32", "generated", tokens);
  const counters = createCounters(gpu);
  const idx = createTensor(gpu, [T], "u32", "idx");
  const expected: Record<number, number[]> = {
    0: [10, 10, 10, 10],
    2: [10, 11, 12, 12],
    3: [10, 11, 12, 13],
    6: [13, 14, 15, 16],
  };
  for (const [pos, want] of Object.entries(expected)) {
    const counts = new Array(8).fill(0);
    counts[Counter.genPos] = Number(pos);
    writeTensor(counters, counts);
    await runOnce(gpu, (rec) => contextWindow(rec, { generated, counters, idx }));
    deepStrictEqual([...await readU32(idx)], want, `window at pos ${pos}`);
    deepStrictEqual([...contextWindowReference(tokens, Number(pos), T)], want);
  }
});

Deno.test("sampleNextReference inverts the cumulative softmax", () => {
  const row = Float32Array.of(0, Math.log(3)); // probabilities 1/4, 3/4
  deepStrictEqual(sampleNextReference(row, 0), 0);
  deepStrictEqual(sampleNextReference(row, 0.2), 0);
  deepStrictEqual(sampleNextReference(row, 0.26), 1);
  deepStrictEqual(sampleNextReference(row, 0.999), 1);
  deepStrictEqual(sampleNextReference(Float32Array.of(-1000, 5, -1000), 0.5), 1);
});

Deno.test("sampleNext drops draws past the end of generated but still advances", async () => {
  const gpu = await getGpu();
  const V = 3;
  // One certain token: logits that make index 2 all but sure.
  const logits = createTensor(gpu, [1, V], "f32", "logits", [-100, -100, 100]);
  const generated = createTensor(gpu, [3], "u32", "generated", [7, 7, 7]);
  const counters = createCounters(gpu);
  const key = streamKey(0, "sample");
  await runOnce(gpu, (rec) => {
    for (let i = 0; i < 4; i++) sampleNext(rec, { logits, counters, key, generated });
  });
  deepStrictEqual([...await readU32(generated)], [7, 2, 2]);
  deepStrictEqual((await readU32(counters))[Counter.genPos], 4);
});

Deno.test("sampleNext refuses a vocabulary past llvmpipe's loop limit; bad shapes are errors", async () => {
  const gpu = await getGpu();
  const counters = createCounters(gpu);
  const generated = createTensor(gpu, [4], "u32", "generated");
  const key = streamKey(0, "sample");
  const wide = createTensor(gpu, [1, 21846], "f32", "wide");
  await runOnce(gpu, (rec) => {
    throws(
      () => sampleNext(rec, { logits: wide, counters, key, generated }),
      (e: unknown) =>
        e instanceof LimitError && /sampleNext/.test(e.message) && /65535/.test(e.message),
    );
    throws(
      () =>
        sampleNext(rec, {
          logits: createTensor(gpu, [5], "f32", "flat"),
          counters,
          key,
          generated,
        }),
      ShapeError,
    );
    throws(
      () =>
        contextWindow(rec, {
          generated,
          counters,
          idx: createTensor(gpu, [4], "f32", "floatIdx"),
        }),
      ShapeError,
    );
  });
});
