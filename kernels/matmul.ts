/**
 * Batched matrix product with transpose flags and gradient accumulation, register-blocked:
 * each invocation computes a TM×TN tile of outputs from vec4 loads wherever the layout keeps
 * four consecutive elements aligned. A Linear layer y = x·W (x [B*T, C], W [C, N]) has the
 * gradients dX = dY·Wᵀ (transB) and dW += xᵀ·dY (transA, accumulate); attention uses the
 * batched form, q·kᵀ over [B*heads, T, hs].
 */
import { requireDisjoint } from "./validate.ts";
import { checkEpilogue, epilogueBindings, epilogueKey } from "./matmul_epilogue.ts";
import { bindingResource, pipelineFor, type Recorder, storageU32 } from "./program.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";
import { type MatmulDims, matmulDims, type MatmulOptions, type MatmulTile } from "./matmul_tile.ts";
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
import { cachedCode, type MatmulLayout } from "./matmul_code.ts";

export { matmulCode, type MatmulLayout } from "./matmul_code.ts";

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
