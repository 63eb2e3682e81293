import { ok, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import {
  softmax,
  softmaxBackward,
  softmaxBackwardReference,
  type SoftmaxOptions,
  softmaxReference,
} from "../kernels/softmax.ts";
import { createTensor, readF32, ShapeError } from "../kernels/tensor.ts";
import { finiteDifferences, randomF32, relError } from "./support.ts";

const cases: { shape: number[]; opts: SoftmaxOptions }[] = [
  { shape: [7, 13], opts: {} },
  { shape: [65, 65], opts: { scale: 0.125 } },
  { shape: [1, 40], opts: {} },
  { shape: [40], opts: { scale: 3 } },
  { shape: [9, 1], opts: {} },
  { shape: [2, 3, 8, 8], opts: { causal: true, scale: 0.35 } },
  { shape: [2, 7, 7], opts: { causal: true } },
  { shape: [5, 12], opts: { causal: true } }, // fewer rows than columns
  { shape: [12, 5], opts: { causal: true } }, // rows past the last column keep every column
];

Deno.test("softmax matches the reference (scale, causal mask, ragged rows)", async () => {
  const gpu = await getGpu();
  const runs = cases.map(({ shape, opts }, i) => {
    const hx = randomF32(shape.reduce((a, b) => a * b, 1), i + 1, 4);
    const x = createTensor(gpu, shape, "f32", "x", hx);
    const out = createTensor(gpu, shape, "f32", "out");
    const C = shape[shape.length - 1], R = shape.length > 1 ? shape[shape.length - 2] : 1;
    return { shape, opts, x, out, want: softmaxReference(hx, R, C, opts) };
  });
  await runOnce(gpu, (rec) => {
    for (const r of runs) softmax(rec, r.x, r.out, r.opts);
  });
  for (const r of runs) {
    const got = await readF32(r.out);
    const err = relError(got, r.want);
    ok(err < 1e-5, `softmax ${JSON.stringify(r.shape)} ${JSON.stringify(r.opts)}: ${err}`);
    // Masked positions must be exactly zero, not merely small.
    for (let i = 0; i < got.length; i++) if (r.want[i] === 0) ok(got[i] === 0);
  }
});

Deno.test("softmax is stable for large logits", async () => {
  const gpu = await getGpu();
  const hx = Float32Array.from([1000, 999, -1000, 0, 88, 89, 90, 91]);
  const x = createTensor(gpu, [2, 4], "f32", "x", hx);
  const out = createTensor(gpu, [2, 4], "f32", "out");
  await runOnce(gpu, (rec) => softmax(rec, x, out));
  const got = await readF32(out);
  ok(got.every(Number.isFinite));
  ok(relError(got, softmaxReference(hx, 2, 4)) < 1e-5);
});

Deno.test("softmaxBackward matches the reference and finite differences", async () => {
  const gpu = await getGpu();
  const runs = cases.map(({ shape, opts }, idx) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const C = shape[shape.length - 1], R = shape.length > 1 ? shape[shape.length - 2] : 1;
    const hx = randomF32(n, 50 + idx, 2),
      proj = randomF32(n, 80 + idx),
      init = randomF32(n, 90 + idx);
    const y = softmaxReference(hx, R, C, opts);
    const scale = opts.scale ?? 1;
    return {
      tag: `${JSON.stringify(shape)} ${JSON.stringify(opts)}`,
      n,
      C,
      R,
      opts,
      scale,
      hx,
      proj,
      init,
      y: createTensor(gpu, shape, "f32", "y", y),
      dY: createTensor(gpu, shape, "f32", "dY", proj),
      dX: createTensor(gpu, shape, "f32", "dX"),
      dXAcc: createTensor(gpu, shape, "f32", "dXAcc", init),
      ref: softmaxBackwardReference(y, proj, C, scale),
    };
  });
  await runOnce(gpu, (rec) => {
    for (const r of runs) {
      softmaxBackward(rec, r.y, r.dY, r.dX, { scale: r.scale });
      softmaxBackward(rec, r.y, r.dY, r.dXAcc, { scale: r.scale, accumulate: true });
    }
  });
  for (const r of runs) {
    const got = await readF32(r.dX);
    ok(
      relError(got, r.ref) < 1e-5,
      `softmaxBackward vs reference ${r.tag}: ${relError(got, r.ref)}`,
    );
    const acc = r.ref.map((v, i) => v + r.init[i]);
    ok(relError(await readF32(r.dXAcc), acc) < 1e-5, `softmaxBackward accumulate ${r.tag}`);
    // Finite differences cost O(n²): the small cases cover every mask and scale combination.
    if (r.n > 1000) continue;
    // Loss L = Σ proj ⊙ softmax(scale·x): dL/dy = proj.
    const loss = (v: ArrayLike<number>) => {
      const y = softmaxReference(v, r.R, r.C, r.opts);
      let s = 0;
      for (let i = 0; i < r.n; i++) s += r.proj[i] * y[i];
      return s;
    };
    const fd = finiteDifferences(Float64Array.from(r.hx), loss);
    ok(
      relError(got, fd) < 1e-4,
      `softmaxBackward vs finite differences ${r.tag}: ${relError(got, fd)}`,
    );
  }
});

Deno.test("softmax rejects mismatched shapes and a causal mask without rows", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const x = createTensor(gpu, [4, 6], "f32", "x");
  throws(
    () => softmax(rec, x, createTensor(gpu, [6, 4], "f32", "out")),
    (e: unknown) =>
      e instanceof ShapeError && /softmax/.test(e.message) && /\[4, 6\]/.test(e.message) &&
      /\[6, 4\]/.test(e.message),
  );
  throws(
    () =>
      softmax(rec, createTensor(gpu, [6], "f32", "v"), createTensor(gpu, [6], "f32", "o"), {
        causal: true,
      }),
    (e: unknown) => e instanceof ShapeError && /causal/.test(e.message),
  );
  throws(
    () => softmaxBackward(rec, x, createTensor(gpu, [4, 5], "f32", "dY"), x),
    (e: unknown) => e instanceof ShapeError && /softmaxBackward/.test(e.message),
  );
  await rec.finish();
});
