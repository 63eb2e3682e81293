import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import { colSum, colSumReference, rowSum, rowSumReference } from "../kernels/reduce.ts";
import { createTensor, readF32, ShapeError } from "../kernels/tensor.ts";
import { randomF32, relError } from "./support.ts";

const shapes: number[][] = [[7, 13], [65, 65], [1, 40], [40, 1], [3, 5, 8], [300, 12], [1, 1]];

Deno.test("rowSum and colSum match the reference, with and without accumulation", async () => {
  const gpu = await getGpu();
  const runs = shapes.map((shape, i) => {
    const n = shape[shape.length - 1], rows = shape.reduce((a, b) => a * b, 1) / n;
    const hx = randomF32(rows * n, i + 1);
    const initCols = randomF32(n, 100 + i);
    const x = createTensor(gpu, shape, "f32", "x", hx);
    const rs = createTensor(gpu, shape.slice(0, -1), "f32", "rows");
    const cs = createTensor(gpu, [n], "f32", "cols");
    const csAcc = createTensor(gpu, [n], "f32", "colsAcc", initCols);
    const wantCols = colSumReference(hx, rows, n);
    return {
      shape,
      x,
      rs,
      cs,
      csAcc,
      wantRows: rowSumReference(hx, rows, n),
      wantCols,
      wantAcc: wantCols.map((v, j) => v + initCols[j]),
    };
  });
  await runOnce(gpu, (rec) => {
    for (const r of runs) {
      rowSum(rec, r.x, r.rs);
      colSum(rec, r.x, r.cs);
      colSum(rec, r.x, r.csAcc, true);
    }
  });
  for (const r of runs) {
    const tag = JSON.stringify(r.shape);
    ok(relError(await readF32(r.rs), r.wantRows) < 1e-5, `rowSum ${tag}`);
    ok(relError(await readF32(r.cs), r.wantCols) < 1e-5, `colSum ${tag}`);
    ok(relError(await readF32(r.csAcc), r.wantAcc) < 1e-5, `colSum accumulate ${tag}`);
  }
});

Deno.test("colSum over many rows is bit-identical across runs", async () => {
  const gpu = await getGpu();
  const [rows, n] = [4099, 24];
  const x = createTensor(gpu, [rows, n], "f32", "x", randomF32(rows * n, 9));
  const outs = [0, 1, 2].map((i) => createTensor(gpu, [n], "f32", `out${i}`));
  for (const out of outs) await runOnce(gpu, (rec) => colSum(rec, x, out));
  const [a, b, c] = await Promise.all(outs.map(readF32));
  deepStrictEqual(a, b);
  deepStrictEqual(a, c);
  ok(relError(a, colSumReference(await readF32(x), rows, n)) < 1e-5);
});

Deno.test("rowSum and colSum reject mismatched shapes", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const x = createTensor(gpu, [4, 6], "f32", "x");
  throws(
    () => rowSum(rec, x, createTensor(gpu, [6], "f32", "bad")),
    (e: unknown) =>
      e instanceof ShapeError && /rowSum/.test(e.message) && /\[4, 6\]/.test(e.message) &&
      /\[6\]/.test(e.message),
  );
  throws(
    () => colSum(rec, x, createTensor(gpu, [4], "f32", "bad")),
    (e: unknown) => e instanceof ShapeError && /colSum/.test(e.message) && /\[6\]/.test(e.message),
  );
  await rec.finish();
});
