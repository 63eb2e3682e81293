import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { dropout, dropoutBackward, dropoutReference } from "../kernels/dropout.ts";
import { streamKey } from "../kernels/philox.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import { createTensor, readF32, ShapeError, writeTensor } from "../kernels/tensor.ts";
import { finiteDifferences, randomF32, relError } from "./support.ts";

const key = streamKey(1337, "dropout");

Deno.test("dropout mask and output equal the Philox reference bit for bit", async () => {
  const gpu = await getGpu();
  const counters = createTensor(gpu, [8], "u32", "counters", [0, 0, 5, 0, 0, 0, 0, 0]);
  for (const [n, p, callIndex] of [[1000, 0.1, 3], [1003, 0.5, 0], [7, 0.25, 9]]) {
    const hx = randomF32(n, n);
    const x = createTensor(gpu, [n], "f32", "x", hx);
    const out = createTensor(gpu, [n], "f32", "out");
    const mask = createTensor(gpu, [n], "f32", "mask");
    await runOnce(
      gpu,
      (rec) => dropout(rec, x, out, mask, { p, key, counters, counterIndex: 2, callIndex }),
    );
    const want = dropoutReference(hx, p, key, 5, callIndex);
    deepStrictEqual(await readF32(mask), want.mask);
    deepStrictEqual(await readF32(out), want.out);
  }
});

Deno.test("dropout keeps about 1 - p, redraws when the device counter moves", async () => {
  const gpu = await getGpu();
  const n = 20_000, p = 0.2;
  const counters = createTensor(gpu, [8], "u32", "counters");
  const x = createTensor(gpu, [n], "f32", "x", new Float32Array(n).fill(1));
  const out = createTensor(gpu, [n], "f32", "out");
  const mask = createTensor(gpu, [n], "f32", "mask");
  const rec = new Recorder(gpu);
  dropout(rec, x, out, mask, { p, key, counters, counterIndex: 0, callIndex: 1 });
  const plan = await rec.finish();
  await plan.run();
  const first = await readF32(mask);
  const kept = first.filter((v) => v !== 0);
  ok(Math.abs(kept.length / n - (1 - p)) < 0.01, `kept ${kept.length / n}`);
  ok(kept.every((v) => v === Math.fround(1 / (1 - p))));
  // The same plan, replayed after the counter moved, draws a different mask.
  writeTensor(counters, [1, 0, 0, 0, 0, 0, 0, 0]);
  await plan.run();
  const second = await readF32(mask);
  deepStrictEqual(second, dropoutReference(new Float32Array(n).fill(1), p, key, 1, 1).mask);
  let same = 0;
  for (let i = 0; i < n; i++) if ((first[i] === 0) === (second[i] === 0)) same++;
  ok(same < 0.75 * n, `masks agree on ${same} of ${n} elements`);
});

Deno.test("dropout with p = 0 keeps everything and p = 1 drops everything", async () => {
  const gpu = await getGpu();
  const counters = createTensor(gpu, [8], "u32", "counters");
  const hx = randomF32(64, 4);
  const x = createTensor(gpu, [8, 8], "f32", "x", hx);
  const outs = [0, 1].map((i) => createTensor(gpu, [8, 8], "f32", `out${i}`));
  const masks = [0, 1].map((i) => createTensor(gpu, [8, 8], "f32", `mask${i}`));
  await runOnce(gpu, (rec) => {
    for (const p of [0, 1]) {
      dropout(rec, x, outs[p], masks[p], { p, key, counters, counterIndex: 0, callIndex: 0 });
    }
  });
  deepStrictEqual(await readF32(outs[0]), hx);
  ok((await readF32(masks[0])).every((v) => v === 1));
  ok((await readF32(outs[1])).every((v) => v === 0));
});

Deno.test("dropoutBackward matches finite differences through the fixed mask", async () => {
  const gpu = await getGpu();
  const n = 37, p = 0.3;
  const hx = randomF32(n, 11), proj = randomF32(n, 12), init = randomF32(n, 13);
  const counters = createTensor(gpu, [8], "u32", "counters", [2, 0, 0, 0, 0, 0, 0, 0]);
  const x = createTensor(gpu, [n], "f32", "x", hx);
  const out = createTensor(gpu, [n], "f32", "out");
  const mask = createTensor(gpu, [n], "f32", "mask");
  const dOut = createTensor(gpu, [n], "f32", "dOut", proj);
  const dX = createTensor(gpu, [n], "f32", "dX");
  const dXAcc = createTensor(gpu, [n], "f32", "dXAcc", init);
  await runOnce(gpu, (rec) => {
    dropout(rec, x, out, mask, { p, key, counters, counterIndex: 0, callIndex: 4 });
    dropoutBackward(rec, dOut, mask, dX);
    dropoutBackward(rec, dOut, mask, dXAcc, true);
  });
  // Loss L = Σ proj ⊙ dropout(x), differentiated in float64 with the mask held fixed.
  const refMask = dropoutReference(hx, p, key, 2, 4).mask;
  const loss = (v: ArrayLike<number>) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += proj[i] * v[i] * refMask[i];
    return s;
  };
  const fd = finiteDifferences(Float64Array.from(hx), loss);
  const got = await readF32(dX);
  ok(relError(got, fd) < 1e-4, `dropoutBackward vs finite differences: ${relError(got, fd)}`);
  const acc = Float64Array.from(fd, (v, i) => v + init[i]);
  ok(relError(await readF32(dXAcc), acc) < 1e-5);
});

Deno.test("dropout rejects mismatched shapes and bad counters", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const t = (s: number[], name: string) => createTensor(gpu, s, "f32", name);
  const counters = createTensor(gpu, [8], "u32", "counters");
  const args = { p: 0.1, key, counters, counterIndex: 0, callIndex: 0 };
  throws(
    () => dropout(rec, t([4, 6], "x"), t([4, 6], "out"), t([24], "mask"), args),
    (e: unknown) =>
      e instanceof ShapeError && /dropout/.test(e.message) && /\[4, 6\]/.test(e.message) &&
      /\[24\]/.test(e.message),
  );
  throws(
    () =>
      dropout(rec, t([4], "x"), t([4], "out"), t([4], "mask"), { ...args, counters: t([8], "c") }),
    (e: unknown) => e instanceof ShapeError && /must be u32/.test(e.message),
  );
  throws(
    () => dropout(rec, t([4], "x"), t([4], "out"), t([4], "mask"), { ...args, counterIndex: 8 }),
    (e: unknown) => e instanceof ShapeError && /counterIndex 8/.test(e.message),
  );
  throws(
    () => dropoutBackward(rec, t([4], "dOut"), t([5], "mask"), t([4], "dX")),
    (e: unknown) => e instanceof ShapeError && /dropoutBackward/.test(e.message),
  );
  await rec.finish();
});
