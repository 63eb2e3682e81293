import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { getGpu } from "../kernels/device.ts";
import {
  chooseMatmulKernel,
  matmul,
  type MatmulKernel,
  type MatmulOptions,
  matmulReference,
  type MatmulTile,
} from "../kernels/matmul.ts";
import { philoxWords, unitFloat } from "../kernels/philox.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import {
  createTensor,
  LimitError,
  readF32,
  ShapeError,
  type Tensor,
  tensorView,
} from "../kernels/tensor.ts";
import { finiteDifferences } from "./support.ts";

/** Uniform [-1, 1) test data from the project's own generator, so every run sees the same. */
function rand(n: number, seed: number): Float32Array {
  return Float32Array.from(philoxWords(n, [seed, 0x7e57]), (w) => 2 * unitFloat(w) - 1);
}

/** Largest absolute difference relative to the largest magnitude of the expected values. */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0, mag = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    mag = Math.max(mag, Math.abs(want[i]));
  }
  return diff / Math.max(mag, 1e-30);
}

interface Case {
  a: number[];
  b: number[];
  opts?: MatmulOptions;
  tile?: MatmulTile;
  kernel?: MatmulKernel;
}

/** Logical output shape of a case (the reference knows it too, but the test must allocate). */
function outShape({ a, b, opts = {} }: Case): number[] {
  const M = opts.transA ? a[a.length - 1] : a[a.length - 2];
  const N = opts.transB ? b[b.length - 2] : b[b.length - 1];
  const batch = a.length === 3 ? a[0] : b.length === 3 ? b[0] : 0;
  return batch ? [batch, M, N] : [M, N];
}

/** Runs every case in one plan and checks each against the float64 reference. */
async function check(cases: Case[], tol = 1e-5): Promise<void> {
  const gpu = await getGpu();
  const prepared = cases.map((c, idx) => {
    const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
    const ha = rand(size(c.a), 3 * idx + 1), hb = rand(size(c.b), 3 * idx + 2);
    const shape = outShape(c);
    const init = rand(size(shape), 3 * idx + 3);
    const a = createTensor(gpu, c.a, "f32", "a", ha);
    const b = createTensor(gpu, c.b, "f32", "b", hb);
    const out = createTensor(gpu, shape, "f32", "out", init);
    const want = matmulReference(ha, c.a, hb, c.b, c.opts, init);
    return { c, a, b, out, want };
  });
  await runOnce(gpu, (rec) => {
    for (const p of prepared) {
      matmul(rec, p.a, p.b, p.out, { ...p.c.opts, tile: p.c.tile, kernel: p.c.kernel });
    }
  });
  for (const p of prepared) {
    const err = relErr(await readF32(p.out), p.want);
    ok(err < tol, `matmul ${JSON.stringify(p.c)}: relative error ${err}`);
  }
}

const flagSets: MatmulOptions[] = [
  {},
  { transA: true },
  { transB: true },
  { transA: true, transB: true },
];

/** Operand shapes for logical (M, K, N) under the flags, optionally batched. */
function operands(M: number, K: number, N: number, opts: MatmulOptions, batch = 0): Case {
  const a = opts.transA ? [K, M] : [M, K];
  const b = opts.transB ? [N, K] : [K, N];
  return { a: batch ? [batch, ...a] : a, b: batch ? [batch, ...b] : b, opts };
}

Deno.test("matmul matches the reference on awkward shapes under every transpose flag", async () => {
  const cases: Case[] = [];
  // Every flag combination on the awkward shapes; the tile test below covers the remaining
  // layouts (each distinct layout is another pipeline for llvmpipe to compile).
  const awkward: [number, number, number][] = [[7, 13, 5], [65, 65, 65], [1, 33, 70], [70, 33, 1]];
  for (const opts of flagSets) {
    for (const [M, K, N] of awkward) cases.push(operands(M, K, N, opts));
  }
  for (const [M, K, N] of [[1, 1, 1], [32, 20, 48], [16, 13, 8], [4, 8, 3]]) {
    cases.push(operands(M, K, N, {}));
  }
  await check(cases);
});

Deno.test("matmul batched, broadcast and accumulate", async () => {
  const cases: Case[] = [];
  for (const opts of flagSets) {
    cases.push(operands(9, 12, 8, opts, 3)); // both batched
    cases.push(operands(7, 13, 5, opts, 2));
    // Only a batched: b (a weight) is shared by every batch.
    const shared = operands(10, 8, 12, opts, 4);
    cases.push({ ...shared, b: shared.b.slice(1) });
    // Only b batched: a is shared.
    const sharedA = operands(6, 5, 9, opts, 3);
    cases.push({ ...sharedA, a: sharedA.a.slice(1) });
    cases.push(operands(33, 17, 20, { ...opts, accumulate: true }));
    cases.push(operands(16, 16, 16, { ...opts, accumulate: true }, 2));
  }
  await check(cases);
});

Deno.test("every register tile is correct on aligned and ragged shapes", async () => {
  // The generator emits the same code structure for every tile size, so small tiles cover
  // every layout (vec4 or scalar reads, ragged K) and the big tiles, slow to compile on
  // llvmpipe, are checked on a few layouts only.
  // (The automatic choice already gives 1×4, 1×8, 4×4 and 4×8 in the tests above.)
  const small: MatmulTile[] = [
    { tm: 2, tn: 8, wgx: 4, wgy: 8 },
    { tm: 8, tn: 4, wgx: 16, wgy: 2 },
  ];
  const cases: Case[] = [];
  for (const tile of small) {
    for (const opts of flagSets) {
      cases.push({ ...operands(19, 18, 21, opts), tile });
      cases.push({ ...operands(36, 20, 40, opts), tile });
    }
  }
  const big16 = { tm: 16, tn: 16, wgx: 8, wgy: 4 };
  cases.push({ ...operands(36, 20, 40, {}), tile: big16 });
  cases.push({
    ...operands(36, 21, 40, { transB: true }),
    tile: { tm: 16, tn: 8, wgx: 8, wgy: 4 },
  });
  cases.push({
    ...operands(40, 24, 36, { transA: true }),
    tile: { tm: 8, tn: 16, wgx: 2, wgy: 16 },
  });
  await check(cases);
});

Deno.test("texture-input matmul matches the reference under every flag, batch and edge", async () => {
  const texture = (c: Case): Case => ({ ...c, kernel: "texture" });
  const cases: Case[] = [];
  // Shapes that are not tile multiples (16×16 tiles, vec4 along K and N), one row or column,
  // and a K that is not a multiple of four: the packing pads with zeros, so these check it.
  const awkward: [number, number, number][] = [
    [7, 13, 5],
    [65, 65, 65],
    [1, 33, 70],
    [70, 33, 1],
    [1, 1, 1],
    [33, 64, 48],
  ];
  for (const opts of flagSets) {
    for (const [M, K, N] of awkward) cases.push(texture(operands(M, K, N, opts)));
    cases.push(texture(operands(9, 12, 8, opts, 3)));
    const shared = operands(10, 7, 12, opts, 4);
    cases.push(texture({ ...shared, b: shared.b.slice(1) }));
    const sharedA = operands(6, 5, 9, opts, 3);
    cases.push(texture({ ...sharedA, a: sharedA.a.slice(1) }));
    cases.push(texture(operands(33, 17, 20, { ...opts, accumulate: true })));
    cases.push(texture(operands(17, 9, 16, { ...opts, accumulate: true }, 2)));
  }
  // More batches than texture layers: packed and multiplied in chunks of the layer limit.
  const layers = (await getGpu()).limits.maxTextureArrayLayers;
  const chunked = operands(5, 6, 7, { transB: true, accumulate: true }, 2 * layers + 3);
  cases.push(texture(chunked));
  cases.push(texture({ ...chunked, b: chunked.b.slice(1) }));
  await check(cases);
});

Deno.test("the automatic choice takes the texture kernel for large shapes, and is correct", async () => {
  const dims = (M: number, K: number, N: number, batch = 1) => ({
    batch,
    M,
    N,
    K,
    aBatched: batch > 1,
    bBatched: false,
  });
  ok(chooseMatmulKernel(dims(512, 512, 512)) === "texture");
  ok(chooseMatmulKernel(dims(256, 32, 32)) === "buffer");
  ok(chooseMatmulKernel(dims(256, 64, 64)) === "buffer");
  // b read one float at a time by the buffer kernel: textures from small sizes on.
  ok(chooseMatmulKernel(dims(256, 65, 65)) === "texture");
  ok(chooseMatmulKernel(dims(256, 64, 65)) === "texture");
  ok(chooseMatmulKernel(dims(128, 63, 128), { transB: true }) === "texture");
  ok(chooseMatmulKernel(dims(256, 65, 64)) === "buffer");
  ok(chooseMatmulKernel(dims(256, 65, 64), { transA: true, transB: true }) === "buffer");
  ok(chooseMatmulKernel(dims(32, 65, 65)) === "buffer");
  ok(chooseMatmulKernel(dims(64, 4096, 64)) === "buffer");
  // Two layouts through the automatic path at sizes where it picks textures; a shape whose
  // packed a would be taller than maxTextureDimension2D must fall back to the buffer kernel
  // rather than fail, and a batch above maxTextureArrayLayers runs in chunks.
  const { maxTextureDimension2D, maxTextureArrayLayers } = (await getGpu()).limits;
  const tall = maxTextureDimension2D + 8, manyBatches = maxTextureArrayLayers + 1;
  ok(chooseMatmulKernel(dims(tall, 4, 200)) === "texture");
  ok(chooseMatmulKernel(dims(200, 4, 200, manyBatches)) === "texture");
  const batchedA = operands(200, 4, 200, {}, manyBatches);
  await check([
    operands(200, 190, 210, {}),
    operands(230, 257, 300, { transA: true, transB: true }),
    operands(tall, 4, 200, {}),
    { ...batchedA, b: batchedA.b.slice(1) },
  ]);
});

Deno.test("the buffer and texture kernels agree bit for bit", async () => {
  // Same fused multiply-adds in the same order, and the texture path's zero padding adds
  // exact zeros: which kernel the dispatcher picks never changes a result.
  const gpu = await getGpu();
  const shapes: [number, number, number, MatmulOptions][] = [
    [65, 65, 65, {}],
    [40, 37, 48, { transA: true, transB: true }],
  ];
  for (const [M, K, N, opts] of shapes) {
    const c = operands(M, K, N, opts);
    const a = createTensor(gpu, c.a, "f32", "a", rand(M * K, 91));
    const b = createTensor(gpu, c.b, "f32", "b", rand(K * N, 92));
    const viaBuffer = createTensor(gpu, [M, N], "f32", "viaBuffer");
    const viaTexture = createTensor(gpu, [M, N], "f32", "viaTexture");
    await runOnce(gpu, (rec) => {
      matmul(rec, a, b, viaBuffer, { ...opts, kernel: "buffer" });
      matmul(rec, a, b, viaTexture, { ...opts, kernel: "texture" });
    });
    deepStrictEqual(await readF32(viaTexture), await readF32(viaBuffer));
  }
});

Deno.test("a weight read through a uniform binding gives the storage binding's bits", async () => {
  // The buffer kernel binds a small shared b as a uniform array: a different load path, the
  // same values and the same fused multiply-adds.
  const gpu = await getGpu();
  const shapes: [number, number, number, MatmulOptions][] = [
    [37, 64, 24, { transB: true }], // a Linear forward: x·Wᵀ
    [40, 20, 64, {}], // a Linear's dX = dY·W
    [9, 16, 8, { transA: true }],
  ];
  for (const [M, K, N, opts] of shapes) {
    const c = operands(M, K, N, opts);
    const a = createTensor(gpu, c.a, "f32", "a", rand(M * K, 93));
    const b = createTensor(gpu, c.b, "f32", "b", rand(K * N, 94));
    const viaUniform = createTensor(gpu, [M, N], "f32", "viaUniform");
    const viaStorage = createTensor(gpu, [M, N], "f32", "viaStorage");
    const rec = new Recorder(gpu);
    matmul(rec, a, b, viaUniform, { ...opts, kernel: "buffer" });
    matmul(rec, a, b, viaStorage, { ...opts, kernel: "buffer", noUniform: true });
    const [uniform, storage] = rec.dispatches.map((d) => d.kernel);
    ok(/_u\d+/.test(uniform) && !/_u\d+/.test(storage), `${uniform} / ${storage}`);
    (await rec.finish()).submit();
    const got = await readF32(viaUniform);
    deepStrictEqual(got, await readF32(viaStorage));
    const want = matmulReference(await readF32(a), c.a, await readF32(b), c.b, opts);
    ok(relErr(got, want) < 1e-5, `${M}×${K}×${N}`);
  }
});

Deno.test("an a too large for one uniform binding runs block by block, same bits", async () => {
  // 300×64 floats are 75 KiB: two blocks of rows (256 + 44), each with a and b uniform, must
  // give the single storage-bound dispatch's bits, with an epilogue and with accumulation.
  const gpu = await getGpu();
  const [M, K, N] = [300, 64, 24];
  const a = createTensor(gpu, [M, K], "f32", "a", rand(M * K, 97));
  const b = createTensor(gpu, [N, K], "f32", "b", rand(N * K, 98));
  const bias = createTensor(gpu, [N], "f32", "bias", rand(N, 99));
  const init = rand(M * N, 100);
  const outputs = ["blocks", "storage"].map((name) => ({
    out: createTensor(gpu, [M, N], "f32", `${name}.out`),
    pre: createTensor(gpu, [M, N], "f32", `${name}.pre`),
    acc: createTensor(gpu, [M, N], "f32", `${name}.acc`, init),
  }));
  const rec = new Recorder(gpu);
  for (const [i, { out, pre, acc }] of outputs.entries()) {
    const noUniform = i === 1;
    const epilogue = { bias, activation: "gelu" as const, preActivation: pre };
    matmul(rec, a, b, out, { transB: true, epilogue, noUniform });
    matmul(rec, a, b, acc, { transB: true, accumulate: true, noUniform });
  }
  const names = rec.dispatches.map((d) => d.kernel);
  deepStrictEqual(names.map((n) => /_ua\d+/.test(n)), [true, true, true, true, false, false]);
  (await rec.finish()).submit();
  for (const key of ["out", "pre", "acc"] as const) {
    deepStrictEqual(await readF32(outputs[0][key]), await readF32(outputs[1][key]), key);
  }
  const want = matmulReference(await readF32(a), [M, K], await readF32(b), [N, K], {
    transB: true,
    accumulate: true,
  }, init);
  ok(relErr(await readF32(outputs[0].acc), want) < 1e-5);
});

Deno.test("a forced texture kernel on a shape past the texture limits is a LimitError", async () => {
  const gpu = await getGpu();
  const K = 4 * gpu.limits.maxTextureDimension2D + 4;
  const rec = new Recorder(gpu);
  throws(
    () =>
      matmul(
        rec,
        createTensor(gpu, [1, K], "f32", "a"),
        createTensor(gpu, [K, 1], "f32", "b"),
        createTensor(gpu, [1, 1], "f32", "out"),
        { kernel: "texture" },
      ),
    (e: unknown) => e instanceof LimitError && /maxTextureDimension2D/.test(e.message),
  );
  await rec.finish();
});

Deno.test("matmul reads and writes tensor views inside larger buffers", async () => {
  const gpu = await getGpu();
  const arena = createTensor(gpu, [4096], "f32", "arena", rand(4096, 77));
  const a = tensorView(arena, 256, [6, 10], "a.view");
  const b = tensorView(arena, 1024, [10, 12], "b.view");
  const host = await readF32(arena);
  const want = matmulReference(host.subarray(64, 124), [6, 10], host.subarray(256, 376), [10, 12]);
  for (const kernel of ["buffer", "texture"] as const) {
    const outArena = createTensor(gpu, [1024], "f32", "outArena");
    const out = tensorView(outArena, 512, [6, 12], "out.view");
    await runOnce(gpu, (rec) => matmul(rec, a, b, out, { kernel }));
    ok(relErr(await readF32(out), want) < 1e-5, `${kernel} kernel`);
    const whole = await readF32(outArena);
    ok(whole.subarray(0, 128).every((v) => v === 0), `${kernel} kernel wrote before its view`);
    ok(whole.subarray(128 + 72).every((v) => v === 0), `${kernel} kernel wrote past its view`);
  }
});

Deno.test("matmul gradients via transposed matmuls match finite differences", async () => {
  const gpu = await getGpu();
  // Loss L = Σ R ⊙ (A·B), batched with a shared B like a Linear layer over [Bt, T, C].
  const [Bt, M, K, N] = [2, 7, 13, 5];
  const ha = rand(Bt * M * K, 11), hb = rand(K * N, 12), hr = rand(Bt * M * N, 13);
  const loss = (av: ArrayLike<number>, bv: ArrayLike<number>) => {
    const y = matmulReference(av, [Bt, M, K], bv, [K, N]);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += hr[i] * y[i];
    return s;
  };
  const fdA = finiteDifferences(Float64Array.from(ha), (x) => loss(x, hb));
  const fdB = finiteDifferences(Float64Array.from(hb), (x) => loss(ha, x));
  const b = createTensor(gpu, [K, N], "f32", "b", hb);
  const r = createTensor(gpu, [Bt, M, N], "f32", "dY", hr);
  const dA = createTensor(gpu, [Bt, M, K], "f32", "dA");
  const dB = createTensor(gpu, [K, N], "f32", "dB");
  const aFlat = createTensor(gpu, [Bt * M, K], "f32", "aFlat", ha);
  const rFlat = createTensor(gpu, [Bt * M, N], "f32", "dYFlat", hr);
  await runOnce(gpu, (rec) => {
    matmul(rec, r, b, dA, { transB: true }); // dA = dY · Bᵀ
    // dB = Σ_batches Aᵀ · dY, accumulated batch by batch as a tape would.
    matmul(rec, aFlat, rFlat, dB, { transA: true });
  });
  const errA = relErr(await readF32(dA), fdA);
  const errB = relErr(await readF32(dB), fdB);
  ok(errA < 1e-4, `dA vs finite differences: ${errA}`);
  ok(errB < 1e-4, `dB vs finite differences: ${errB}`);
  // Accumulating the two halves separately gives the same dB.
  const dB2 = createTensor(gpu, [K, N], "f32", "dB2");
  await runOnce(gpu, (rec) => {
    for (let t = 0; t < Bt; t++) {
      const at = createTensor(gpu, [M, K], "f32", "a_t", ha.subarray(t * M * K, (t + 1) * M * K));
      const rt = createTensor(gpu, [M, N], "f32", "r_t", hr.subarray(t * M * N, (t + 1) * M * N));
      matmul(rec, at, rt, dB2, { transA: true, accumulate: t > 0 });
    }
  });
  ok(relErr(await readF32(dB2), fdB) < 1e-4);
});

Deno.test("matmul rejects mismatched shapes, wrong dtypes, aliasing and oversized K", async () => {
  const gpu = await getGpu();
  const t = (shape: number[], name: string): Tensor => createTensor(gpu, shape, "f32", name);
  const rec = new Recorder(gpu);
  throws(
    () => matmul(rec, t([7, 13], "a"), t([5, 5], "b"), t([7, 5], "out")),
    (e: unknown) =>
      e instanceof ShapeError && /matmul/.test(e.message) && /\[7, 13\]/.test(e.message) &&
      /\[5, 5\]/.test(e.message),
  );
  throws(
    () => matmul(rec, t([2, 3, 4], "a"), t([3, 4, 5], "b"), t([2, 3, 5], "out")),
    (e: unknown) => e instanceof ShapeError && /batch sizes 2 and 3/.test(e.message),
  );
  throws(
    () => matmul(rec, t([3, 4], "a"), t([4, 5], "b"), t([3, 6], "out")),
    (e: unknown) => e instanceof ShapeError && /out must be \[3, 5\]/.test(e.message),
  );
  throws(
    () => matmul(rec, t([3, 4], "a"), t([5, 4], "b"), t([3, 5], "out")),
    (e: unknown) => e instanceof ShapeError && /inner dimensions 4 and 5/.test(e.message),
  );
  throws(
    () => matmul(rec, createTensor(gpu, [3, 4], "u32", "ids"), t([4, 5], "b"), t([3, 5], "out")),
    (e: unknown) => e instanceof ShapeError && /ids \(u32/.test(e.message),
  );
  const shared = t([128], "shared");
  throws(
    () =>
      matmul(
        rec,
        tensorView(shared, 0, [2, 2], "x"),
        t([2, 2], "w"),
        tensorView(shared, 256, [2, 2], "y"),
      ),
    (e: unknown) => e instanceof ShapeError && /shares a GPU buffer/.test(e.message),
  );
  const K = 4 * 65536;
  throws(
    () => matmul(rec, t([1, K], "a"), t([K, 1], "b"), t([1, 1], "out")),
    (e: unknown) => e instanceof LimitError && /K=262144/.test(e.message),
  );
  await rec.finish();
});
