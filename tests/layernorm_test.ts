import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import {
  layerNorm,
  layerNormBackward,
  layerNormBackwardReference,
  layerNormReference,
} from "../kernels/layernorm.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import { createTensor, readF32, ShapeError } from "../kernels/tensor.ts";
import { finiteDifferences, randomF32, relError } from "./support.ts";

const shapes = [[7, 13], [65, 64], [1, 40], [3, 5, 8], [300, 12], [4, 3]];

Deno.test("layerNorm forward matches the reference, statistics included", async () => {
  const gpu = await getGpu();
  const runs = shapes.map((shape, i) => {
    const C = shape[shape.length - 1], n = shape.reduce((a, b) => a * b, 1);
    // An offset makes the mean matter: a one-pass variance would lose digits here.
    const hx = randomF32(n, i + 1, 2, 3),
      hg = randomF32(C, 20 + i, 0.5, 1),
      hb = randomF32(C, 40 + i);
    const t = (s: number[], name: string, d?: ArrayLike<number>) =>
      createTensor(gpu, s, "f32", name, d);
    return {
      shape,
      x: t(shape, "x", hx),
      gamma: t([C], "gamma", hg),
      beta: t([C], "beta", hb),
      out: t(shape, "out"),
      mean: t(shape.slice(0, -1), "mean"),
      rstd: t(shape.slice(0, -1), "rstd"),
      want: layerNormReference(hx, hg, hb, C),
    };
  });
  await runOnce(gpu, (rec) => {
    for (const r of runs) layerNorm(rec, r.x, r.gamma, r.beta, r.out, r.mean, r.rstd);
  });
  for (const r of runs) {
    const tag = JSON.stringify(r.shape);
    ok(relError(await readF32(r.out), r.want.out) < 1e-5, `layerNorm out ${tag}`);
    ok(relError(await readF32(r.mean), r.want.mean) < 1e-5, `layerNorm mean ${tag}`);
    ok(relError(await readF32(r.rstd), r.want.rstd) < 1e-5, `layerNorm rstd ${tag}`);
  }
});

Deno.test("layerNormBackward matches the reference and finite differences", async () => {
  const gpu = await getGpu();
  const t = (s: number[], name: string, d?: ArrayLike<number>) =>
    createTensor(gpu, s, "f32", name, d);
  const runs = shapes.map((shape, i) => {
    const C = shape[shape.length - 1], n = shape.reduce((a, b) => a * b, 1);
    const hx = randomF32(n, 60 + i, 2, 1),
      hg = randomF32(C, 70 + i, 0.5, 1),
      hb = randomF32(C, 80 + i);
    const proj = randomF32(n, 90 + i);
    const initX = randomF32(n, 100 + i),
      initG = randomF32(C, 110 + i),
      initB = randomF32(C, 120 + i);
    return {
      tag: JSON.stringify(shape),
      shape,
      C,
      n,
      hx,
      hg,
      hb,
      proj,
      initX,
      initG,
      initB,
      x: t(shape, "x", hx),
      gamma: t([C], "gamma", hg),
      beta: t([C], "beta", hb),
      out: t(shape, "out"),
      mean: t([n / C], "mean"),
      rstd: t([n / C], "rstd"),
      dOut: t(shape, "dOut", proj),
      dX: t(shape, "dX"),
      dG: t([C], "dGamma"),
      dB: t([C], "dBeta"),
      dXa: t(shape, "dXAcc", initX),
      dGa: t([C], "dGammaAcc", initG),
      dBa: t([C], "dBetaAcc", initB),
      ref: layerNormBackwardReference(hx, hg, proj, C),
    };
  });
  await runOnce(gpu, (rec) => {
    for (const r of runs) {
      layerNorm(rec, r.x, r.gamma, r.beta, r.out, r.mean, r.rstd);
      layerNormBackward(rec, r.x, r.gamma, r.mean, r.rstd, r.dOut, r.dX, r.dG, r.dB);
      layerNormBackward(rec, r.x, r.gamma, r.mean, r.rstd, r.dOut, r.dXa, r.dGa, r.dBa, {
        accumulateX: true,
        accumulateGamma: true,
        accumulateBeta: true,
      });
    }
  });
  const plus = (a: ArrayLike<number>, b: ArrayLike<number>) =>
    Float64Array.from(a, (v, j) => v + b[j]);
  for (const r of runs) {
    const { tag, ref } = r;
    const gotX = await readF32(r.dX), gotG = await readF32(r.dG), gotB = await readF32(r.dB);
    ok(relError(gotX, ref.dX) < 1e-5, `dX vs reference ${tag}: ${relError(gotX, ref.dX)}`);
    ok(relError(gotG, ref.dGamma) < 1e-5, `dGamma vs reference ${tag}`);
    ok(relError(gotB, ref.dBeta) < 1e-5, `dBeta vs reference ${tag}`);
    ok(relError(await readF32(r.dXa), plus(ref.dX, r.initX)) < 1e-5, `dX accumulate ${tag}`);
    ok(
      relError(await readF32(r.dGa), plus(ref.dGamma, r.initG)) < 1e-5,
      `dGamma accumulate ${tag}`,
    );
    ok(relError(await readF32(r.dBa), plus(ref.dBeta, r.initB)) < 1e-5, `dBeta accumulate ${tag}`);
    // Finite differences cost O(n²): the small shapes cover the vec4 and scalar kernels.
    if (r.n > 1000) continue;
    // Loss L = Σ proj ⊙ layerNorm(x; gamma, beta): dL/dout = proj.
    const loss = (x: ArrayLike<number>, g: ArrayLike<number>, b: ArrayLike<number>) => {
      const y = layerNormReference(x, g, b, r.C).out;
      let s = 0;
      for (let j = 0; j < r.n; j++) s += r.proj[j] * y[j];
      return s;
    };
    const fdX = finiteDifferences(Float64Array.from(r.hx), (v) => loss(v, r.hg, r.hb));
    const fdG = finiteDifferences(Float64Array.from(r.hg), (v) => loss(r.hx, v, r.hb));
    const fdB = finiteDifferences(Float64Array.from(r.hb), (v) => loss(r.hx, r.hg, v));
    ok(relError(gotX, fdX) < 1e-4, `dX vs finite differences ${tag}: ${relError(gotX, fdX)}`);
    ok(relError(gotG, fdG) < 1e-4, `dGamma vs finite differences ${tag}: ${relError(gotG, fdG)}`);
    ok(relError(gotB, fdB) < 1e-4, `dBeta vs finite differences ${tag}: ${relError(gotB, fdB)}`);
  }
});

Deno.test("layerNorm parameter gradients are bit-identical across runs", async () => {
  const gpu = await getGpu();
  const [rows, C] = [1000, 16];
  const t = (s: number[], name: string, d?: ArrayLike<number>) =>
    createTensor(gpu, s, "f32", name, d);
  const x = t([rows, C], "x", randomF32(rows * C, 1)), gamma = t([C], "gamma", randomF32(C, 2));
  const mean = t([rows], "mean"), rstd = t([rows], "rstd"), out = t([rows, C], "out");
  const dOut = t([rows, C], "dOut", randomF32(rows * C, 3));
  const results: Float32Array[] = [];
  for (let run = 0; run < 2; run++) {
    const dX = t([rows, C], "dX"), dG = t([C], "dGamma"), dB = t([C], "dBeta");
    await runOnce(gpu, (rec) => {
      layerNorm(rec, x, gamma, t([C], "beta"), out, mean, rstd);
      layerNormBackward(rec, x, gamma, mean, rstd, dOut, dX, dG, dB);
    });
    results.push(await readF32(dG), await readF32(dB));
  }
  deepStrictEqual(results[0], results[2]);
  deepStrictEqual(results[1], results[3]);
});

Deno.test("layerNorm rejects mismatched shapes", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const t = (s: number[], name: string) => createTensor(gpu, s, "f32", name);
  const x = t([4, 6], "x");
  throws(
    () =>
      layerNorm(
        rec,
        x,
        t([5], "gamma"),
        t([6], "beta"),
        t([4, 6], "out"),
        t([4], "m"),
        t([4], "r"),
      ),
    (e: unknown) =>
      e instanceof ShapeError && /layerNorm/.test(e.message) && /\[5\]/.test(e.message) &&
      /\[4, 6\]/.test(e.message),
  );
  throws(
    () =>
      layerNorm(
        rec,
        x,
        t([6], "gamma"),
        t([6], "beta"),
        t([4, 6], "out"),
        t([3], "m"),
        t([4], "r"),
      ),
    (e: unknown) => e instanceof ShapeError && /m \(f32 \[3\]\)/.test(e.message),
  );
  throws(
    () =>
      layerNormBackward(
        rec,
        x,
        t([6], "gamma"),
        t([4], "m"),
        t([4], "r"),
        t([4, 5], "dOut"),
        t([4, 6], "dX"),
        t([6], "dG"),
        t([6], "dB"),
      ),
    (e: unknown) => e instanceof ShapeError && /layerNormBackward/.test(e.message),
  );
  await rec.finish();
});
