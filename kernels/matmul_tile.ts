/**
 * What every matmul kernel shares: the options, the logical dimensions after validation, the
 * register tile, and the fused multiply-add chain whose order makes the kernels agree bit for
 * bit. Its own module so the buffer, uniform and texture kernels import it without importing
 * each other.
 */
import type { MatmulEpilogue } from "./matmul_epilogue.ts";
import { ShapeError, type Tensor } from "./tensor.ts";
import { requireF32 } from "./validate.ts";

/** Options of `matmul`: operand transposes and accumulation into `out`. */
export interface MatmulOptions {
  /** `a` is stored [K, M] (or [Bt, K, M]) and used transposed. */
  transA?: boolean;
  /** `b` is stored [N, K] (or [Bt, N, K]) and used transposed. */
  transB?: boolean;
  /** out += a·b instead of out = a·b (gradient accumulation). */
  accumulate?: boolean;
  /** Applied to each output on its way to memory (not with `accumulate`). */
  epilogue?: MatmulEpilogue;
}

/** The register tile and workgroup shape a matmul dispatch uses. */
export interface MatmulTile {
  /** Output rows per invocation. */
  tm: number;
  /** Output columns per invocation. */
  tn: number;
  /** Workgroup size along the column tiles. */
  wgx: number;
  /** Workgroup size along the row tiles. */
  wgy: number;
}

/** Dimensions of a matmul after shape validation. */
export interface MatmulDims {
  batch: number;
  M: number;
  N: number;
  K: number;
  aBatched: boolean;
  bBatched: boolean;
}

/** Validates operand and output shapes; returns the logical dimensions. */
export function matmulDims(
  a: Tensor,
  b: Tensor,
  out: Tensor,
  opts: MatmulOptions = {},
): MatmulDims {
  const what = () =>
    `matmul(transA=${opts.transA ?? false}, transB=${opts.transB ?? false}): ` +
    `a ${a.describe()}, b ${b.describe()}, out ${out.describe()}`;
  requireF32("matmul", a, b, out);
  if (a.shape.length < 2 || a.shape.length > 3 || b.shape.length < 2 || b.shape.length > 3) {
    throw new ShapeError(`${what()}: operands must be 2-D or 3-D`);
  }
  const [aBatch, aRows, aCols] = a.shape.length === 3 ? a.shape : [1, ...a.shape];
  const [bBatch, bRows, bCols] = b.shape.length === 3 ? b.shape : [1, ...b.shape];
  const [M, Ka] = opts.transA ? [aCols, aRows] : [aRows, aCols];
  const [Kb, N] = opts.transB ? [bCols, bRows] : [bRows, bCols];
  if (Ka !== Kb) throw new ShapeError(`${what()}: inner dimensions ${Ka} and ${Kb} differ`);
  const aBatched = a.shape.length === 3, bBatched = b.shape.length === 3;
  if (aBatched && bBatched && aBatch !== bBatch) {
    throw new ShapeError(`${what()}: batch sizes ${aBatch} and ${bBatch} differ`);
  }
  const batch = aBatched ? aBatch : bBatch;
  const want = aBatched || bBatched ? [batch, M, N] : [M, N];
  if (out.shape.length !== want.length || out.shape.some((d, i) => d !== want[i])) {
    throw new ShapeError(`${what()}: out must be [${want.join(", ")}]`);
  }
  return { batch, M, N, K: Ka, aBatched, bBatched };
}

/**
 * One k-step of a register tile: c{i}_{g} += a(i, kk) · b(kk, g) for kk = 0..3, as one chain of
 * fused multiply-adds per output in ascending k. Every matmul kernel uses this order, so the
 * kernels agree bit for bit whichever the dispatcher picks.
 */
export function fmaTileLines(
  tm: number,
  groups: number,
  a: (i: number, kk: number) => string,
  b: (kk: number, g: number) => string,
): string[] {
  const lines: string[] = [];
  for (let i = 0; i < tm; i++) {
    for (let g = 0; g < groups; g++) {
      const sum = [0, 1, 2, 3].reduce(
        (acc, kk) => `fma(vec4<f32>(${a(i, kk)}), ${b(kk, g)}, ${acc})`,
        `c${i}_${g}`,
      );
      lines.push(`    c${i}_${g} = ${sum};`);
    }
  }
  return lines;
}
