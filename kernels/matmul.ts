/**
 * Batched matrix product with transpose flags and gradient accumulation, register-blocked:
 * each invocation computes a TM×TN tile of outputs from vec4 loads wherever the layout keeps
 * four consecutive elements aligned. A Linear layer y = x·W (x [B*T, C], W [C, N]) has the
 * gradients dX = dY·Wᵀ (transB) and dW += xᵀ·dY (transA, accumulate); attention uses the
 * batched form, q·kᵀ over [B*heads, T, hs].
 */
import headerSource from "./matmul.wgsl" with { type: "text" };
import { requireDisjoint } from "./validate.ts";
import {
  checkEpilogue,
  epilogueBindings,
  epilogueDeclarations,
  epilogueKey,
  type EpilogueLayout,
  storeTileLines,
  XYZW,
} from "./matmul_epilogue.ts";
import { bindingResource, pipelineFor, type Recorder, storageU32 } from "./program.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";
import {
  fmaTileLines,
  type MatmulDims,
  matmulDims,
  type MatmulOptions,
  type MatmulTile,
} from "./matmul_tile.ts";
import { matmulTexture, textureMatmulObstacle } from "./matmul_texture.ts";
import { uniformRowBlock, uniformVec4s } from "./matmul_uniform.ts";

export {
  fmaTileLines,
  type MatmulDims,
  matmulDims,
  type MatmulOptions,
  type MatmulTile,
} from "./matmul_tile.ts";
export { storageU32 } from "./program.ts";
export {
  type EpilogueLayout,
  type MatmulEpilogue,
  storeTileLines,
  XYZW,
} from "./matmul_epilogue.ts";
import { LimitError, type Tensor, tensorView } from "./tensor.ts";

/** Everything that decides the generated WGSL; shapes travel in the uniform. */
export interface MatmulLayout extends MatmulTile {
  transA: boolean;
  transB: boolean;
  /** a is read as vec4 along its contiguous axis. */
  vecA: boolean;
  /** b is read as vec4 along its contiguous axis. */
  vecB: boolean;
  /** out is written as vec4 along N. */
  vecC: boolean;
  /** K % 4 != 0: the last chunk of four k is clamped and masked. */
  raggedK: boolean;
  /**
   * b is bound as a uniform array of this many vec4s (0: as storage). llvmpipe (Mesa 22.3)
   * loads a storage element lane by lane in a loop with a branch per lane and component, a
   * uniform one with one branch-free gather: a small shared b (a Linear's weight) is read
   * several times faster. The size is part of the WGSL, so each size is its own pipeline.
   */
  uniformB?: number;
  /** a is bound as a uniform array of this many vec4s (0: as storage), as b above. */
  uniformA?: number;
  epilogue: EpilogueLayout;
}

/** WGSL for one matmul layout: the shared header plus an unrolled TM×TN tile body. */
export function matmulCode(layout: MatmulLayout): string {
  const { tm, tn, transA, transB, vecA, vecB, vecC, raggedK } = layout;
  if (tn % 4 !== 0) throw new RangeError(`matmul tile: tn=${tn} must be a multiple of 4`);
  if (transA && vecA && tm % 4 !== 0) {
    throw new RangeError(`matmul tile: tm=${tm} must be a multiple of 4 for vec4 reads of aᵀ`);
  }
  if (raggedK && ((vecA && !transA) || (vecB && transB))) {
    throw new RangeError("matmul: vec4 reads along k need K % 4 == 0");
  }
  const groups = tn / 4;
  const L: string[] = [headerSource];
  const arr = (vec: boolean) => vec ? "array<vec4<f32>>" : "array<f32>";
  L.push(
    layout.uniformA
      ? `@group(0) @binding(0) var<uniform> a: array<vec4<f32>, ${layout.uniformA}>;`
      : `@group(0) @binding(0) var<storage, read> a: ${arr(vecA)};`,
  );
  L.push(
    layout.uniformB
      ? `@group(0) @binding(1) var<uniform> b: array<vec4<f32>, ${layout.uniformB}>;`
      : `@group(0) @binding(1) var<storage, read> b: ${arr(vecB)};`,
  );
  L.push(`@group(0) @binding(2) var<storage, read_write> c: ${arr(vecC)};`);
  L.push(...epilogueDeclarations(layout.epilogue, vecC));
  L.push(`@compute @workgroup_size(${layout.wgx}, ${layout.wgy})`);
  L.push(`fn main(@builtin(global_invocation_id) gid: vec3<u32>) {`);
  L.push(`  let M = p.M;`);
  L.push(`  let N = p.N;`);
  L.push(`  let K = p.K;`);
  L.push(`  let n0 = gid.x * ${tn}u;`);
  L.push(`  let m0 = gid.y * ${tm}u;`);
  L.push(`  if (n0 >= N || m0 >= M) { return; }`);
  L.push(`  let a_off = gid.z * p.a_batch;`);
  L.push(`  let b_off = gid.z * p.b_batch;`);
  L.push(`  let c_off = gid.z * M * N;`);
  // Rows/columns past the edge are clamped onto the last one: the loads stay in bounds and
  // branch-free, and the stores below drop their results.
  for (let i = 0; i < tm; i++) L.push(`  let mi${i} = min(m0 + ${i}u, M - 1u);`);
  for (let j = 0; j < tn; j++) L.push(`  let nj${j} = min(n0 + ${j}u, N - 1u);`);
  // Per chunk of four k (k = 4·kc + kk): A(i, kk) is a scalar expression, B(kk, g) a vec4
  // expression over the columns n0 + 4g .. n0 + 4g + 3. With a ragged K the last chunk reads
  // row K-1 in place of the missing ones and zeroes the a side, instead of a separate tail
  // loop that would double the code llvmpipe has to compile.
  const kIndex = (kk: number) => raggedK ? `min(k + ${kk}u, K - 1u)` : `(k + ${kk}u)`;
  const masked = (kk: number, value: string, zero: string) =>
    raggedK ? `select(${zero}, ${value}, k + ${kk}u < K)` : value;
  const aExpr: string[][] = Array.from({ length: tm }, () => []);
  const bExpr: string[][] = Array.from({ length: 4 }, () => []);
  const loads: string[] = [];
  if (!transA && vecA) {
    for (let i = 0; i < tm; i++) {
      L.push(`  let ar${i} = (a_off + mi${i} * K) / 4u;`);
      loads.push(`    let a${i} = a[ar${i} + kc];`);
      for (let kk = 0; kk < 4; kk++) aExpr[i][kk] = `a${i}.${XYZW[kk]}`;
    }
  } else if (!transA) {
    for (let i = 0; i < tm; i++) {
      L.push(`  let ar${i} = a_off + mi${i} * K;`);
      for (let kk = 0; kk < 4; kk++) {
        loads.push(`    let a${i}_${kk} = ${masked(kk, `a[ar${i} + ${kIndex(kk)}]`, "0.0")};`);
        aExpr[i][kk] = `a${i}_${kk}`;
      }
    }
  } else if (vecA) {
    // aᵀ rows are contiguous in m: one vec4 covers four rows of the tile.
    for (let g = 0; g < tm / 4; g++) L.push(`  let ag${g} = min(m0 / 4u + ${g}u, M / 4u - 1u);`);
    for (let kk = 0; kk < 4; kk++) {
      for (let g = 0; g < tm / 4; g++) {
        const load = `a[(a_off + ${kIndex(kk)} * M) / 4u + ag${g}]`;
        loads.push(`    let a${kk}_${g} = ${masked(kk, load, "vec4<f32>(0.0)")};`);
        for (let c = 0; c < 4; c++) aExpr[4 * g + c][kk] = `a${kk}_${g}.${XYZW[c]}`;
      }
    }
  } else {
    for (let kk = 0; kk < 4; kk++) {
      for (let i = 0; i < tm; i++) {
        const load = `a[a_off + ${kIndex(kk)} * M + mi${i}]`;
        loads.push(`    let a${kk}_${i} = ${masked(kk, load, "0.0")};`);
        aExpr[i][kk] = `a${kk}_${i}`;
      }
    }
  }
  const vec4Of = (parts: string[]) => `vec4<f32>(${parts.join(", ")})`;
  if (!transB && vecB) {
    for (let g = 0; g < groups; g++) L.push(`  let bg${g} = min(n0 / 4u + ${g}u, N / 4u - 1u);`);
    for (let kk = 0; kk < 4; kk++) {
      for (let g = 0; g < groups; g++) {
        loads.push(`    let b${kk}_${g} = b[(b_off + ${kIndex(kk)} * N) / 4u + bg${g}];`);
        bExpr[kk][g] = `b${kk}_${g}`;
      }
    }
  } else if (!transB) {
    for (let kk = 0; kk < 4; kk++) {
      loads.push(`    let br${kk} = b_off + ${kIndex(kk)} * N;`);
      for (let g = 0; g < groups; g++) {
        const parts = [0, 1, 2, 3].map((c) => `b[br${kk} + nj${4 * g + c}]`);
        loads.push(`    let b${kk}_${g} = ${vec4Of(parts)};`);
        bExpr[kk][g] = `b${kk}_${g}`;
      }
    }
  } else {
    // bᵀ rows are contiguous in k: read four k at once per column, then regroup by column.
    for (let j = 0; j < tn; j++) {
      if (vecB) {
        L.push(`  let bc${j} = (b_off + nj${j} * K) / 4u;`);
        loads.push(`    let b${j} = b[bc${j} + kc];`);
      } else {
        L.push(`  let bc${j} = b_off + nj${j} * K;`);
        const parts = [0, 1, 2, 3].map((kk) => `b[bc${j} + ${kIndex(kk)}]`);
        loads.push(`    let b${j} = ${vec4Of(parts)};`);
      }
    }
    for (let kk = 0; kk < 4; kk++) {
      for (let g = 0; g < groups; g++) {
        bExpr[kk][g] = vec4Of([0, 1, 2, 3].map((c) => `b${4 * g + c}.${XYZW[kk]}`));
      }
    }
  }
  for (let i = 0; i < tm; i++) {
    for (let g = 0; g < groups; g++) L.push(`  var c${i}_${g} = vec4<f32>(0.0);`);
  }
  // Four k per iteration, so only ceil(K/4) iterations count against llvmpipe's budget.
  L.push(`  for (var kc = 0u; kc < (K + 3u) / 4u; kc = kc + 1u) {`);
  L.push(`    let k = kc * 4u;`);
  L.push(...loads);
  L.push(...fmaTileLines(tm, groups, (i, kk) => aExpr[i][kk], (kk, g) => bExpr[kk][g]));
  L.push(`  }`);
  L.push(...storeTileLines(tm, groups, vecC, layout.epilogue));
  L.push(`}`);
  return L.join("\n");
}

const codeCache = new Map<string, string>();

function cachedCode(key: string, layout: MatmulLayout): string {
  let code = codeCache.get(key);
  if (code === undefined) codeCache.set(key, code = matmulCode(layout));
  return code;
}

/**
 * The tile for a shape, from measurements on llvmpipe: 16-wide tiles pay off once a dimension
 * reaches a few hundred, small operands prefer 8, and the tile shrinks until there are enough
 * invocations to keep both cores busy. Few distinct tiles also means few pipelines to compile.
 */
export function chooseMatmulTile(dims: MatmulDims): MatmulTile {
  const { batch, M, N, K } = dims;
  let tn = N >= 256 ? 16 : N >= 8 ? 8 : 4;
  // A thin a (M < 4, e.g. one position while sampling) just computes clamped copies of its last
  // row: cheaper than compiling more tile variants.
  let tm = M >= 128 ? 16 : M >= 8 ? 8 : 4;
  // Below about a million multiply-adds the dispatch overhead dominates and a small tile,
  // which compiles in a fraction of the time, runs as fast.
  if (batch * M * N * K < 1 << 20) {
    tm = 4;
    tn = Math.min(tn, 8);
  }
  const invocations = () => batch * Math.ceil(M / tm) * Math.ceil(N / tn);
  while (invocations() < 64 && (tm > 4 || tn > 4)) {
    if (tm >= tn && tm > 4) tm /= 2;
    else tn /= 2;
  }
  // llvmpipe runs 8 lanes of a workgroup as one SIMD group: 8 lanes along a row of tiles share
  // their loads of a and read b contiguously. Narrower outputs take fewer lanes per row rather
  // than leave lanes idle. Three shapes only, since each is another pipeline to compile.
  const tilesN = Math.ceil(N / tn);
  const wgx = tilesN >= 6 ? 8 : tilesN >= 3 ? 4 : 1;
  return { tm, tn, wgx, wgy: 32 / wgx };
}

/** Which kernel family computes a matmul: storage-buffer reads, or operands packed to textures. */
export type MatmulKernel = "buffer" | "texture";

/**
 * Register tile and workgroup of the texture-input kernel: 16×16 outputs per invocation, eight
 * invocations along N (one llvmpipe SIMD group, all fetching the same texels of a) and one
 * along M. Measured at 512³ against 16×16 with 16×1, 32×1, 8×2 and 4×4 workgroups and against
 * 8×32, 32×8 and 16×32 tiles, which all came out equal or slower.
 */
export const TEXTURE_TILE: MatmulTile = { tm: 16, tn: 16, wgx: 8, wgy: 1 };

/**
 * The kernel for a shape, from measurements on llvmpipe (bench/kernels_bench.ts). Packing the
 * operands into textures costs a fixed time per element of a and b, and the product then runs
 * about 1.4× as fast, so the texture path pays off once each packed element feeds enough
 * multiply-adds: 2MNK / (MK + KN) = 2MN / (M + N), the harmonic mean of M and N, must reach
 * about 200 (512³ gains ~30%, 256³ ~15%; outputs 64 wide, or 64×64 with a long K, lose 15–30%),
 * and the op must be large enough that its two dispatches are not the cost. The exception is a
 * b that the buffer kernel must read one float at a time (N % 4 != 0, or K % 4 != 0 under
 * transB): there textures win from small sizes on, e.g. (256×65)·(65×65) +20–40% and
 * (128×63)·(63×128)ᵀ +60%, unless the output is aligned and narrow ((256×65)·(65×64)ᵀ loses).
 */
export function chooseMatmulKernel(dims: MatmulDims, opts: MatmulOptions = {}): MatmulKernel {
  const { batch, M, N, K } = dims;
  const volume = batch * M * N * K;
  const reuse = (2 * M * N) / (M + N);
  if (reuse >= 192 && volume >= 1 << 22) return "texture";
  const scalarB = !vectorReads(dims, opts).vecB;
  if (scalarB && (N % 4 !== 0 || reuse >= 128) && M >= 64 && N >= 32 && volume >= 1 << 18) {
    return "texture";
  }
  return "buffer";
}

/** Whether the buffer kernel can read a and b as vec4 (aligned contiguous runs of four). */
function vectorReads(
  { M, N, K }: MatmulDims,
  opts: MatmulOptions,
  tile?: MatmulTile,
): { vecA: boolean; vecB: boolean } {
  const raggedK = K % 4 !== 0;
  return {
    // vec4 reads need 16-byte aligned rows; tensors themselves start at 256-byte offsets.
    vecA: K > 0 && (opts.transA ? M % 4 === 0 && (tile?.tm ?? 4) % 4 === 0 : !raggedK),
    vecB: K > 0 && (opts.transB ? !raggedK : N % 4 === 0),
  };
}

/**
 * Records out = a·b (or out += a·b): a [M,K]|[Bt,M,K] (transA: [K,M]|[Bt,K,M]),
 * b [K,N]|[Bt,K,N] (transB: [N,K]|[Bt,N,K]); an unbatched operand is shared by every batch.
 */
export function matmul(
  rec: Recorder,
  a: Tensor,
  b: Tensor,
  out: Tensor,
  opts: MatmulOptions & {
    /**
     * Overrides the automatic tile choice (tests and benchmarks). Without `kernel` it selects
     * the buffer kernel, whose tiles it was introduced for.
     */
    tile?: MatmulTile;
    /** Overrides the automatic kernel choice (tests and benchmarks). */
    kernel?: MatmulKernel;
    /** Reads b from storage even where a uniform binding could take it (tests, benchmarks). */
    noUniform?: boolean;
  } = {},
): void {
  const dims = matmulDims(a, b, out, opts);
  requireDisjoint("matmul", [out], [a, b]);
  const { batch, M, N, K } = dims;
  if (batch * M * N === 0) return;
  // Past llvmpipe's loop budget an invocation would stop early and leave wrong sums behind.
  const iterations = Math.ceil(K / 4);
  if (iterations > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `matmul: inner dimension K=${K} of a ${a.describe()} and b ${b.describe()} needs ` +
        `${iterations} loop iterations per invocation, above llvmpipe's limit of ` +
        `${MAX_LOOP_ITERATIONS} (K must be at most ${4 * MAX_LOOP_ITERATIONS})`,
    );
  }
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const epilogue = checkEpilogue(out, N, opts);
  const extra = epilogueBindings(opts.epilogue);
  const pre = opts.epilogue?.preActivation;
  const written = [out, ...(pre ? [pre] : [])];
  const rowBlock = opts.noUniform || opts.kernel === "texture" || dims.batch > 1
    ? 0
    : uniformRowBlock(rec.gpu, a, b, written, { M, K, transA, vecB: vectorReads(dims, opts).vecB });
  if (rowBlock > 0) {
    // Block by block, each block of a (and b) bound as uniform: same sums, same bits.
    for (let r0 = 0; r0 < M; r0 += rowBlock) {
      const rows = Math.min(rowBlock, M - r0);
      const rowsOf = (t: Tensor, cols: number, name: string) =>
        tensorView(t, 4 * r0 * cols, [rows, cols], name);
      matmul(rec, rowsOf(a, K, `${a.name}.rows`), b, rowsOf(out, N, `${out.name}.rows`), {
        ...opts,
        kernel: "buffer",
        epilogue: opts.epilogue &&
          { ...opts.epilogue, preActivation: pre && rowsOf(pre, N, `${pre.name}.rows`) },
      });
    }
    return;
  }
  const kernel = opts.kernel ?? (opts.tile ? "buffer" : chooseMatmulKernel(dims, opts));
  if (kernel === "texture") {
    const tile = opts.tile ?? TEXTURE_TILE;
    const obstacle = K === 0 ? "K = 0" : textureMatmulObstacle(rec.gpu, dims, tile);
    if (obstacle === undefined) {
      matmulTexture(rec, a, b, out, dims, {
        transA,
        transB,
        accumulate: opts.accumulate ?? false,
        epilogue,
        epilogueBindings: extra,
      }, tile);
      return;
    }
    if (opts.kernel === "texture") {
      throw new LimitError(
        `matmul: texture kernel forced for a ${a.describe()}, b ${b.describe()}: ${obstacle}`,
      );
    }
  }
  const tile = opts.tile ?? chooseMatmulTile(dims);
  const raggedK = K % 4 !== 0;
  const reads = vectorReads(dims, opts, tile);
  const layout: MatmulLayout = {
    ...tile,
    transA,
    transB,
    ...reads,
    vecC: N % 4 === 0,
    raggedK,
    uniformB: reads.vecB && !opts.noUniform ? uniformVec4s(rec.gpu, b, written) : 0,
    uniformA: reads.vecA && !opts.noUniform ? uniformVec4s(rec.gpu, a, written) : 0,
    epilogue,
  };
  const params = storageU32(rec.gpu, [
    M,
    N,
    K,
    dims.aBatched ? M * K : 0,
    dims.bBatched ? K * N : 0,
  ], "matmul.params");
  const flags = [layout.vecA, layout.vecB, layout.vecC, raggedK].map(Number).join("");
  const key = `${transA ? "t" : "n"}${transB ? "t" : "n"}${flags}_${tile.tm}x${tile.tn}_` +
    `${tile.wgx}x${tile.wgy}${layout.uniformB ? `_u${layout.uniformB}` : ""}` +
    `${layout.uniformA ? `_ua${layout.uniformA}` : ""}` +
    epilogueKey(epilogue);
  const name = `matmul_${key}`;
  const pipeline = pipelineFor(rec.gpu, {
    name,
    code: cachedCode(key, layout),
    constants: { ACCUMULATE: opts.accumulate ? 1 : 0 },
  });
  const entries = [a, b, out, params].map((t, binding) => ({
    binding,
    resource: bindingResource(t),
  }));
  rec.dispatchWith(
    name,
    pipeline,
    [...entries, ...extra],
    [
      Math.ceil(Math.ceil(N / tile.tn) / tile.wgx),
      Math.ceil(Math.ceil(M / tile.tm) / tile.wgy),
      batch,
    ],
  );
}

/**
 * float64 reference: a·b with the same shapes and flags as `matmul` (accumulate adds onto
 * `initial`). Returns the flat row-major result.
 */
export function matmulReference(
  a: ArrayLike<number>,
  aShape: readonly number[],
  b: ArrayLike<number>,
  bShape: readonly number[],
  opts: MatmulOptions = {},
  initial?: ArrayLike<number>,
): Float64Array {
  const [aBatch, aRows, aCols] = aShape.length === 3 ? aShape : [1, ...aShape];
  const [bBatch, bRows, bCols] = bShape.length === 3 ? bShape : [1, ...bShape];
  const [M, K] = opts.transA ? [aCols, aRows] : [aRows, aCols];
  const N = opts.transB ? bRows : bCols;
  const batch = Math.max(aBatch, bBatch);
  const out = new Float64Array(batch * M * N);
  for (let t = 0; t < batch; t++) {
    const ao = aShape.length === 3 ? t * M * K : 0;
    const bo = bShape.length === 3 ? t * K * N : 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a[ao + (opts.transA ? k * M + m : m * K + k)];
          const bv = b[bo + (opts.transB ? n * K + k : k * N + n)];
          s += av * bv;
        }
        const o = t * M * N + m * N + n;
        out[o] = opts.accumulate && initial ? initial[o] + s : s;
      }
    }
  }
  return out;
}
