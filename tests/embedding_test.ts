import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import {
  embeddingBackward,
  embeddingBackwardReference,
  embeddingForward,
  embeddingForwardReference,
} from "../kernels/embedding.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import {
  createTensor,
  LimitError,
  readF32,
  ShapeError,
  tensorView,
  writeTensor,
} from "../kernels/tensor.ts";
import { randomF32, randomIds, relError } from "./support.ts";

for (const C of [5, 12]) {
  Deno.test(`embeddingForward matches the reference (C = ${C})`, async () => {
    const gpu = await getGpu();
    const V = 7, B = 3, T = 9;
    const tableData = randomF32(V * C, 1);
    const ids = randomIds(B * T, V, 2);
    // The table is a view into a larger arena, as parameters are.
    const arena = createTensor(gpu, [64 + V * C], "f32", "arena", [
      ...new Float32Array(64).fill(99),
      ...tableData,
    ]);
    const table = tensorView(arena, 256, [V, C], "table");
    const idx = createTensor(gpu, [B, T], "u32", "idx", ids);
    const out = createTensor(gpu, [B, T, C], "f32", "out");
    await runOnce(gpu, (rec) => embeddingForward(rec, table, idx, out));
    const got = await readF32(out);
    const want = embeddingForwardReference(tableData, ids, V, C);
    ok(relError(got, want) <= 1e-5, `relative error ${relError(got, want)}`);
    deepStrictEqual(got[C + 1], tableData[ids[1] * C + 1]);
  });

  Deno.test(`embeddingBackward matches the reference and finite differences (C = ${C})`, async () => {
    const gpu = await getGpu();
    const V = 6, N = 23;
    const ids = randomIds(N, V - 1, 3); // row V-1 never appears: its gradient must be zero
    const w = randomF32(N * C, 4); // loss = Σ out ⊙ w, so dOut = w
    const idx = createTensor(gpu, [N], "u32", "idx", ids);
    const dOut = createTensor(gpu, [N, C], "f32", "dOut", w);
    const dTable = createTensor(gpu, [V, C], "f32", "dTable", new Float32Array(V * C).fill(7));
    await runOnce(gpu, (rec) => embeddingBackward(rec, idx, dOut, dTable, false));
    const got = await readF32(dTable);
    const want = embeddingBackwardReference(ids, w, V, C);
    ok(relError(got, want) <= 1e-5, `relative error ${relError(got, want)}`);
    for (let c = 0; c < C; c++) deepStrictEqual(got[(V - 1) * C + c], 0);

    // Central differences of the float64 reference loss, one table entry at a time.
    const table = Float64Array.from(randomF32(V * C, 5));
    const loss = (t: Float64Array) => {
      const out = embeddingForwardReference(t, ids, V, C);
      let s = 0;
      for (let i = 0; i < out.length; i++) s += out[i] * w[i];
      return s;
    };
    const h = 1e-3;
    const fd = new Float64Array(V * C);
    for (let i = 0; i < V * C; i++) {
      const saved = table[i];
      table[i] = saved + h;
      const up = loss(table);
      table[i] = saved - h;
      const down = loss(table);
      table[i] = saved;
      fd[i] = (up - down) / (2 * h);
    }
    ok(relError(got, fd) <= 1e-5, `relative error to finite differences ${relError(got, fd)}`);

    // Accumulating adds onto what is there.
    await runOnce(gpu, (rec) => embeddingBackward(rec, idx, dOut, dTable, true));
    const twice = await readF32(dTable);
    ok(relError(twice, want.map((x) => 2 * x)) <= 1e-5);
  });
}

Deno.test("embeddingForward writes zeros for an id outside the table", async () => {
  const gpu = await getGpu();
  const V = 3, C = 4;
  const table = createTensor(gpu, [V, C], "f32", "table", randomF32(V * C, 6));
  const idx = createTensor(gpu, [2], "u32", "idx", [1, 3]);
  const out = createTensor(gpu, [2, C], "f32", "out", new Float32Array(2 * C).fill(5));
  await runOnce(gpu, (rec) => embeddingForward(rec, table, idx, out));
  deepStrictEqual([...(await readF32(out)).subarray(C)], [0, 0, 0, 0]);
  throws(() => embeddingForwardReference(new Float32Array(V * C), [3], V, C), RangeError);
});

Deno.test("embeddingBackward is exact at 65,535 ids and refuses 65,536", async () => {
  const gpu = await getGpu();
  const V = 3, C = 1, N = 65535;
  const ids = randomIds(N, V, 7);
  // Small integers sum exactly in f32, so any lost iteration would show.
  const grads = Float32Array.from(randomIds(N, 16, 8), (k) => k - 8);
  grads[N - 1] = 3; // the iteration llvmpipe would drop first must count
  const idx = createTensor(gpu, [N], "u32", "idx", ids);
  const dOut = createTensor(gpu, [N, C], "f32", "dOut", grads);
  const dTable = createTensor(gpu, [V, C], "f32", "dTable");
  await runOnce(gpu, (rec) => embeddingBackward(rec, idx, dOut, dTable, false));
  deepStrictEqual([...await readF32(dTable)], [...embeddingBackwardReference(ids, grads, V, C)]);

  const bigIdx = createTensor(gpu, [N + 1], "u32", "bigIdx");
  const bigOut = createTensor(gpu, [N + 1, C], "f32", "bigOut");
  await runOnce(gpu, (rec) => {
    throws(
      () => embeddingBackward(rec, bigIdx, bigOut, dTable, false),
      (e: unknown) =>
        e instanceof LimitError && /65536 ids/.test(e.message) && /65535/.test(e.message),
    );
  });
});

Deno.test("embedding ops reject mismatched shapes and dtypes", async () => {
  const gpu = await getGpu();
  const table = createTensor(gpu, [4, 3], "f32", "table");
  const idx = createTensor(gpu, [2, 5], "u32", "idx");
  const floatIdx = createTensor(gpu, [2, 5], "f32", "floatIdx");
  const wrongOut = createTensor(gpu, [2, 5, 4], "f32", "wrongOut");
  const out = createTensor(gpu, [2, 5, 3], "f32", "out");
  await runOnce(gpu, (rec) => {
    throws(() => embeddingForward(rec, table, idx, wrongOut), ShapeError);
    throws(() => embeddingForward(rec, table, floatIdx, out), ShapeError);
    throws(() => embeddingBackward(rec, idx, wrongOut, table, false), ShapeError);
    throws(() => embeddingBackward(rec, idx, out, out, false), ShapeError);
  });
});

/** The backward's sums as f32 additions in increasing position order, as the device does them. */
function inOrderF32Sums(ids: ArrayLike<number>, dOut: Float32Array, V: number, C: number) {
  const sums = new Float32Array(V * C);
  for (let n = 0; n < ids.length; n++) {
    if (ids[n] >= V) continue;
    for (let c = 0; c < C; c++) {
      sums[ids[n] * C + c] = Math.fround(sums[ids[n] * C + c] + dOut[n * C + c]);
    }
  }
  return sums;
}

Deno.test("embeddingBackward sums each row in position order, and rebuilds its index every replay", async () => {
  const gpu = await getGpu();
  for (const C of [3, 8]) {
    const V = 11, N = 40;
    // Batch 1 uses only rows 0..4, batch 2 only rows 5..10 plus ids ≥ V, which belong to no
    // row: replaying batch 2 over batch 1's index must not see any of batch 1's positions.
    const batches = [
      randomIds(N, 5, 9),
      Uint32Array.from(randomIds(N, 8, 10), (id) => id + 5),
    ];
    const w = randomF32(N * C, 11, 1, 0.5); // large and small magnitudes: order matters
    const idx = createTensor(gpu, [N], "u32", "idx", batches[0]);
    const dOut = createTensor(gpu, [N, C], "f32", "dOut", w);
    const dTable = createTensor(gpu, [V, C], "f32", "dTable");
    const rec = new Recorder(gpu);
    embeddingBackward(rec, idx, dOut, dTable, false);
    const plan = await rec.finish();
    for (const [b, ids] of batches.entries()) {
      writeTensor(idx, ids);
      await plan.run();
      const got = await readF32(dTable);
      // Bit-identical to f32 additions in increasing n, the order a scan over every id takes.
      deepStrictEqual([...got], [...inOrderF32Sums(ids, w, V, C)], `C = ${C}, batch ${b}`);
      ok(got.some((v) => v !== 0));
    }
  }
});
