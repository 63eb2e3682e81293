import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import {
  add,
  addInto,
  copy,
  elementwiseReference,
  mul,
  relu,
  reluBackward,
  scale,
} from "../kernels/elementwise.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import { createTensor, readF32, ShapeError, tensorView } from "../kernels/tensor.ts";
import { finiteDifferences, randomF32, relError } from "./support.ts";

// Sizes with and without a multiple of four (vec4 and scalar kernels) and a bias broadcast.
const cases: { a: number[]; b: number[] }[] = [
  { a: [7, 13], b: [7, 13] },
  { a: [65, 64], b: [64] },
  { a: [3, 5, 12], b: [5, 12] },
  { a: [9, 7], b: [7] },
  { a: [1, 40], b: [40] },
  { a: [6], b: [1] },
];

Deno.test("add, mul, scale, relu, copy and addInto match the reference", async () => {
  const gpu = await getGpu();
  const runs = cases.map(({ a, b }, i) => {
    const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
    const ha = randomF32(size(a), 2 * i + 1), hb = randomF32(size(b), 2 * i + 2);
    const init = randomF32(size(a), 50 + i);
    const t = (s: number[], name: string, d?: ArrayLike<number>) =>
      createTensor(gpu, s, "f32", name, d);
    return {
      tag: JSON.stringify({ a, b }),
      ha,
      hb,
      init,
      a: t(a, "a", ha),
      b: t(b, "b", hb),
      sum: t(a, "sum"),
      prod: t(a, "prod"),
      scaled: t(a, "scaled"),
      rectified: t(a, "relu"),
      copied: t(a, "copy"),
      acc: t(a, "acc", init),
    };
  });
  await runOnce(gpu, (rec) => {
    for (const r of runs) {
      add(rec, r.a, r.b, r.sum);
      mul(rec, r.a, r.b, r.prod);
      scale(rec, r.a, -2.5, r.scaled);
      relu(rec, r.a, r.rectified);
      copy(rec, r.a, r.copied);
      addInto(rec, r.a, r.acc);
    }
  });
  for (const r of runs) {
    ok(
      relError(await readF32(r.sum), elementwiseReference("add", r.ha, r.hb)) < 1e-6,
      `add ${r.tag}`,
    );
    ok(
      relError(await readF32(r.prod), elementwiseReference("mul", r.ha, r.hb)) < 1e-6,
      `mul ${r.tag}`,
    );
    ok(
      relError(await readF32(r.scaled), elementwiseReference("scale", r.ha, r.ha, -2.5)) < 1e-6,
      `scale ${r.tag}`,
    );
    deepStrictEqual(
      await readF32(r.rectified),
      Float32Array.from(elementwiseReference("relu", r.ha)),
    );
    deepStrictEqual(await readF32(r.copied), r.ha);
    const sum = Float64Array.from(r.init, (v, i) => v + r.ha[i]);
    ok(relError(await readF32(r.acc), sum) < 1e-6, `addInto ${r.tag}`);
  }
});

Deno.test("reluBackward matches finite differences, overwriting and accumulating", async () => {
  const gpu = await getGpu();
  for (const n of [37, 64]) {
    // Keep inputs away from the kink so central differences are exact.
    const hx = randomF32(n, n).map((v) => (Math.abs(v) < 0.01 ? v + 0.05 : v));
    const proj = randomF32(n, n + 1), init = randomF32(n, n + 2);
    const x = createTensor(gpu, [n], "f32", "x", hx);
    const dOut = createTensor(gpu, [n], "f32", "dOut", proj);
    const dX = createTensor(gpu, [n], "f32", "dX");
    const dXAcc = createTensor(gpu, [n], "f32", "dXAcc", init);
    await runOnce(gpu, (rec) => {
      reluBackward(rec, x, dOut, dX);
      reluBackward(rec, x, dOut, dXAcc, true);
    });
    // Loss L = Σ proj ⊙ relu(x).
    const loss = (v: ArrayLike<number>) => {
      const y = elementwiseReference("relu", v);
      return y.reduce((s, yi, i) => s + proj[i] * yi, 0);
    };
    const fd = finiteDifferences(Float64Array.from(hx), loss);
    const got = await readF32(dX);
    ok(
      relError(got, fd) < 1e-4,
      `reluBackward vs finite differences (n=${n}): ${relError(got, fd)}`,
    );
    deepStrictEqual(got, Float32Array.from(elementwiseReference("reluBackward", hx, proj)));
    const acc = Float64Array.from(fd, (v, i) => v + init[i]);
    ok(relError(await readF32(dXAcc), acc) < 1e-5);
  }
});

Deno.test("elementwise ops reject mismatched shapes, bad broadcasts and aliasing", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const t = (s: number[], name: string) => createTensor(gpu, s, "f32", name);
  throws(
    () => add(rec, t([4, 6], "a"), t([4], "bias"), t([4, 6], "out")),
    (e: unknown) =>
      e instanceof ShapeError && /add/.test(e.message) && /\[4, 6\]/.test(e.message) &&
      /\[4\]/.test(e.message),
  );
  throws(
    () => mul(rec, t([4, 6], "a"), t([4, 6], "b"), t([6, 4], "out")),
    (e: unknown) => e instanceof ShapeError && /mul/.test(e.message) && /\[6, 4\]/.test(e.message),
  );
  throws(
    () => relu(rec, t([3], "a"), t([4], "out")),
    (e: unknown) => e instanceof ShapeError && /relu/.test(e.message),
  );
  throws(
    () => reluBackward(rec, t([3], "x"), t([4], "dOut"), t([3], "dX")),
    (e: unknown) => e instanceof ShapeError && /reluBackward/.test(e.message),
  );
  const arena = t([128], "arena");
  throws(
    () => copy(rec, tensorView(arena, 0, [4], "src"), tensorView(arena, 256, [4], "dst")),
    (e: unknown) => e instanceof ShapeError && /shares a GPU buffer/.test(e.message),
  );
  throws(
    () => scale(rec, t([2], "a"), 2, createTensor(gpu, [2], "u32", "ids")),
    (e: unknown) => e instanceof ShapeError && /must be f32/.test(e.message),
  );
  await rec.finish();
});
