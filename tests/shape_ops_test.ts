/**
 * Shape ops (nn/shape_ops.ts) and their kernels (kernels/permute.ts, kernels/concat.ts): device
 * results against the TypeScript references, gradients through the Graph tape against central
 * finite differences of the float64 loss, and the gradient rules for views, repeated values
 * and pieces that receive no gradient.
 */
import { deepStrictEqual, ok, throws } from "node:assert/strict";
import {
  concat as concatKernel,
  concatReference,
  split as splitKernel,
  splitReference,
} from "../kernels/concat.ts";
import { getGpu } from "../kernels/device.ts";
import { elementwiseReference } from "../kernels/elementwise.ts";
import { matmulReference } from "../kernels/matmul.ts";
import { permute as permuteKernel, permuteReference } from "../kernels/permute.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import { createTensor, readF32, ShapeError, tensorView } from "../kernels/tensor.ts";
import { add } from "../nn/elementwise_ops.ts";
import { matmul } from "../nn/matmul_ops.ts";
import { Graph, Var } from "../nn/graph.ts";
import { ParamStore } from "../nn/params.ts";
import { concat, permute, reshape, split, transpose, view } from "../nn/shape_ops.ts";
import { assertChecked, gradCheck, type GradCheckSpec, hostTensors, randomF32 } from "./support.ts";

const { host } = hostTensors(900);

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

Deno.test("nn.reshape / view: a view with no dispatch; gradients of two views add up in x", async () => {
  const gpu = await getGpu();
  const specs: GradCheckSpec[] = [
    {
      // x is used through two views of different shapes: the second contribution must add to
      // the first in x's own gradient.
      name: "matmul(view(x, [3, 4]), reshape(x, [4, -1]))",
      inputs: { x: host([2, 6]) },
      forward: (g, { x }) => matmul(g, view(g, x, [3, 4]), reshape(g, x, [4, -1])),
      reference: ({ x }) => matmulReference(x, [3, 4], x, [4, 3]),
    },
    {
      // A view of a view, and the viewed value used directly too.
      name: "add(reshape(reshape(x, [6, 2]), [2, 6]), x)",
      inputs: { x: host([2, 6]) },
      forward: (g, { x }) => add(g, reshape(g, reshape(g, x, [6, 2]), [2, 6]), x),
      reference: ({ x }) => x.map((v) => 2 * v),
    },
  ];
  // A parameter through a view and directly: both contributions land in its grad-arena view.
  const store = new ParamStore(gpu);
  const w = store.register("w", [3, 4], { kind: "constant", value: 0 });
  const [param] = store.finalize();
  specs.push({
    name: "view(matmul(view(w, [4, 3]), x), [3, 4]) + w",
    inputs: { x: host([3, 3]) },
    store,
    params: new Map([[param.name, host([3, 4]).data]]),
    forward: (g, { x }) => {
      const product = matmul(g, view(g, g.param(w()), [4, 3]), x);
      return add(g, view(g, product, [3, 4]), g.param(w()));
    },
    reference: ({ x, w }) => elementwiseReference("add", matmulReference(w, [4, 3], x, [3, 3]), w),
  });
  assertChecked(await gradCheck(gpu, specs));

  const rec = new Recorder(gpu);
  const g = new Graph(rec, true);
  const x = new Var(createTensor(gpu, [2, 3, 4], "f32", "x"), true);
  const y = reshape(g, x, [-1, 4]);
  deepStrictEqual([...y.shape], [6, 4]);
  ok(y.data.buffer === x.data.buffer && y.viewOf === x && reshape(g, y, [24]).viewOf === x);
  deepStrictEqual(rec.dispatches.length, 0);
  throws(() => reshape(g, x, [5, -1]), ShapeError);
  throws(() => reshape(g, x, [-1, -1]), ShapeError);
  throws(() => reshape(g, x, [2, 12, 2]), /cannot be seen as \[2, 12, 2\]/);
  await rec.finish();
});

function permuteSpec(shape: number[], dims: number[]): GradCheckSpec {
  return {
    name: `permute([${shape}], [${dims}])`,
    inputs: { x: host(shape) },
    forward: (g, { x }) => permute(g, x, dims),
    reference: ({ x }) => permuteReference(x, shape, dims),
  };
}

Deno.test("nn.permute / transpose: forward and gradients, heads split and merged, repeated use", async () => {
  const gpu = await getGpu();
  const specs: GradCheckSpec[] = [
    permuteSpec([2, 3, 4], [2, 0, 1]),
    permuteSpec([2, 3, 4], [1, 2, 0]),
    // The attention heads' [B, T, nHead, hs] → [B, nHead, T, hs], and back.
    permuteSpec([2, 3, 2, 4], [0, 2, 1, 3]),
    permuteSpec([2, 2, 3, 4], [0, -2, 1, -1]),
    permuteSpec([3, 1, 2, 1, 2], [4, 2, 0, 3, 1]),
    {
      name: "transpose(x, -1, -2)",
      inputs: { x: host([2, 3, 5]) },
      forward: (g, { x }) => transpose(g, x, -1, -2),
      reference: ({ x }) => permuteReference(x, [2, 3, 5], [0, 2, 1]),
    },
    {
      // Two contributions to x: add's, then the transpose's, which must accumulate.
      name: "add(transpose(x, 0, 1), x) for square x",
      inputs: { x: host([3, 3]) },
      forward: (g, { x }) => add(g, transpose(g, x, 0, 1), x),
      reference: ({ x }) => x.map((v, i) => v + x[(i % 3) * 3 + Math.floor(i / 3)]),
    },
  ];
  assertChecked(await gradCheck(gpu, specs));

  // Moving only unit axes is a reshape: a view, no dispatch.
  const rec = new Recorder(gpu);
  const g = new Graph(rec, true);
  const x = new Var(createTensor(gpu, [3, 1, 4], "f32", "x"), true);
  const y = permute(g, x, [1, 0, 2]);
  ok(y.viewOf === x && rec.dispatches.length === 0);
  deepStrictEqual([...y.shape], [1, 3, 4]);
  throws(() => permute(g, x, [0, 0, 1]), /not a permutation/);
  throws(() => permute(g, x, [0, 1]), ShapeError);
  throws(() => transpose(g, x, 0, 3), /axis 3 is out of range/);
  await rec.finish();
});

Deno.test("permute kernel: random permutations against the reference, and accumulation", async () => {
  const gpu = await getGpu();
  const cases: [number[], number[]][] = [
    [[5, 7], [1, 0]],
    [[2, 3, 4, 5], [3, 1, 0, 2]],
    [[2, 3, 2, 3, 2, 3, 2, 3], [7, 5, 3, 1, 6, 4, 2, 0]],
    [[4, 6], [0, 1]],
  ];
  for (const [k, [shape, dims]] of cases.entries()) {
    const data = randomF32(sizeOf(shape), 30 + k);
    const src = createTensor(gpu, shape, "f32", "src", data);
    const dst = createTensor(gpu, dims.map((d) => shape[d]), "f32", "dst");
    await runOnce(gpu, (rec) => permuteKernel(rec, src, dims, dst));
    const want = permuteReference(data, shape, dims);
    // A copy: exactly the source's values.
    deepStrictEqual([...await readF32(dst)], [...Float32Array.from(want)], `case ${k}`);
    await runOnce(gpu, (rec) => permuteKernel(rec, src, dims, dst, true));
    deepStrictEqual([...await readF32(dst)], [...Float32Array.from(want, (v) => 2 * v)]);
  }
});

Deno.test("nn.concat: forward and gradients along each axis, repeated and constant pieces", async () => {
  const gpu = await getGpu();
  const cat = (xs: Float64Array[], shapes: number[][], axis: number) =>
    concatReference(xs.map((data, k) => ({ data, shape: shapes[k] })), axis);
  const specs: GradCheckSpec[] = [
    {
      name: "concat along 0",
      inputs: { a: host([1, 3]), b: host([2, 3]), c: host([3, 3]) },
      forward: (g, { a, b, c }) => concat(g, [a, b, c], 0),
      reference: ({ a, b, c }) => cat([a, b, c], [[1, 3], [2, 3], [3, 3]], 0),
    },
    {
      name: "concat along 1 of 3-D values",
      inputs: { a: host([2, 1, 3]), b: host([2, 4, 3]) },
      forward: (g, { a, b }) => concat(g, [a, b], 1),
      reference: ({ a, b }) => cat([a, b], [[2, 1, 3], [2, 4, 3]], 1),
    },
    {
      // x twice, around a constant: x's second piece adds to its first; no gradient for c.
      name: "concat([x, c, x], -1)",
      inputs: { x: host([2, 2]) },
      forward: (g, { x }) => {
        const c = g.constant(createTensor(g.gpu, [2, 3], "f32", "c", randomF32(6, 40)));
        return concat(g, [x, c, x], -1);
      },
      reference: ({ x }) =>
        cat([x, Float64Array.from(randomF32(6, 40)), x], [[2, 2], [2, 3], [
          2,
          2,
        ]], 1),
    },
  ];
  assertChecked(await gradCheck(gpu, specs));
});

Deno.test("nn.split: forward and gradients, sizes or a size, pieces left unused", async () => {
  const gpu = await getGpu();
  const specs: GradCheckSpec[] = [
    {
      // Pieces rejoined in another order: each piece's gradient goes back to its place.
      name: "concat(split(x, [1, 3, 2], 1) reversed)",
      inputs: { x: host([2, 6, 2]) },
      forward: (g, { x }) => concat(g, split(g, x, [1, 3, 2], 1).reverse(), 1),
      reference: ({ x }) => {
        const [p, q, r] = splitReference(x, [2, 6, 2], [1, 3, 2], 1);
        return concatReference([
          { data: r, shape: [2, 2, 2] },
          { data: q, shape: [2, 3, 2] },
          { data: p, shape: [2, 1, 2] },
        ], 1);
      },
    },
    {
      // Pieces of 2 along the last axis (2, 2, 1): only the last is used, so x's gradient is
      // zero on the other columns, which the backward must write (not leave stale).
      name: "split(x, 2, -1)[2] ⊙ itself",
      inputs: { x: host([3, 5]) },
      forward: (g, { x }) => {
        const pieces = split(g, x, 2, -1);
        deepStrictEqual(pieces.map((p) => p.shape[1]), [2, 2, 1]);
        return add(g, pieces[2], pieces[2]);
      },
      reference: ({ x }) => [0, 1, 2].map((r) => 2 * x[r * 5 + 4]),
    },
    {
      // Both used, one through a view.
      name: "split(x, [2, 2], 0) added",
      inputs: { x: host([4, 3]) },
      forward: (g, { x }) => {
        const [a, b] = split(g, x, [2, 2], 0);
        return add(g, reshape(g, a, [6]), reshape(g, b, [6]));
      },
      reference: ({ x }) => elementwiseReference("add", x.subarray(0, 6), x.subarray(6)),
    },
  ];
  assertChecked(await gradCheck(gpu, specs));

  const rec = new Recorder(gpu);
  const g = new Graph(rec, true);
  const x = new Var(createTensor(gpu, [2, 5], "f32", "x"), true);
  throws(() => split(g, x, [2, 2], 1), /add up to 4 along axis 1, not the 5/);
  throws(() => split(g, x, 0, 1), /not a positive integer/);
  throws(
    () => concat(g, [x, new Var(createTensor(gpu, [3, 5], "f32", "y"), true)], 1),
    /must match/,
  );
  throws(() => concat(g, [], 0), /no values/);
  await rec.finish();
});

Deno.test("concat and split kernels: many pieces take one dispatch per group of bindings", async () => {
  const gpu = await getGpu();
  const perDispatch = gpu.limits.maxStorageBuffersPerShaderStage - 1;
  const n = perDispatch + 3, rows = 2;
  const sizes = Array.from({ length: n }, (_, k) => 1 + (k % 3));
  const total = sizes.reduce((a, b) => a + b, 0);
  const datas = sizes.map((s, k) => randomF32(rows * s * 2, 50 + k));
  const pieces = sizes.map((s, k) => createTensor(gpu, [rows, s, 2], "f32", `p${k}`, datas[k]));
  const joined = createTensor(gpu, [rows, total, 2], "f32", "joined");
  const rec = new Recorder(gpu);
  concatKernel(rec, pieces, 1, joined);
  deepStrictEqual(rec.dispatches.length, 2);
  await (await rec.finish()).run();
  const want = concatReference(datas.map((data, k) => ({ data, shape: [rows, sizes[k], 2] })), 1);
  deepStrictEqual([...await readF32(joined)], [...Float32Array.from(want)]);

  // Split back into views of one arena (as parameter gradients are), accumulating into the
  // first piece: the other pieces are overwritten.
  const align = gpu.limits.minStorageBufferOffsetAlignment / 4;
  const arena = createTensor(gpu, [n * align], "f32", "arena", new Float32Array(n * align).fill(1));
  const views = sizes.map((s, k) => tensorView(arena, k * align * 4, [rows, s, 2], `v${k}`));
  const rec2 = new Recorder(gpu);
  splitKernel(rec2, joined, -2, views.map((tensor, k) => ({ tensor, accumulate: k === 0 })));
  deepStrictEqual(rec2.dispatches.length, 2);
  await (await rec2.finish()).run();
  const back = splitReference(want, [rows, total, 2], sizes, 1);
  for (const [k, v] of views.entries()) {
    const expect = Float32Array.from(back[k], (x) => k === 0 ? Math.fround(x + 1) : x);
    deepStrictEqual([...await readF32(v)], [...expect], `piece ${k}`);
  }
  // One target twice (a value concatenated with itself): its two pieces go to two dispatches,
  // in order, since one dispatch cannot overwrite and then add to the same elements.
  const once = createTensor(gpu, [rows, 1, 2], "f32", "once");
  const rec3 = new Recorder(gpu);
  splitKernel(rec3, joined, 1, [
    { tensor: once, accumulate: false },
    2,
    { tensor: once, accumulate: true },
    total - 4,
  ]);
  deepStrictEqual(rec3.dispatches.length, 2);
  await (await rec3.finish()).run();
  deepStrictEqual(
    [...await readF32(once)],
    [0, 1].flatMap((r) =>
      [0, 1].map((j) => Math.fround(want[r * total * 2 + j] + want[r * total * 2 + 6 + j]))
    ),
  );

  // Accumulating concat, with a missing piece written as zeros.
  await runOnce(gpu, (r) => concatKernel(r, [sizes[0], ...pieces.slice(1)], 1, joined, true));
  const twice = await readF32(joined);
  const firstWidth = sizes[0] * 2;
  ok(twice.subarray(0, firstWidth).every((v, j) => v === Math.fround(want[j])));
  deepStrictEqual(twice[firstWidth], Math.fround(2 * want[firstWidth]));
});
