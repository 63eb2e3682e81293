/**
 * Axis permutation of a row-major tensor as a strided copy (PyTorch's `permute(...)
 * .contiguous()`), with a plain TypeScript reference. Axes that stay adjacent and in order are
 * merged and unit axes dropped before dispatch, so a permutation that moves only unit axes is
 * recognised as a reshape (`isReshape`) and needs no copy at all.
 */
import source from "./permute.wgsl" with { type: "text" };
import { requireDisjoint, requireF32 } from "./validate.ts";
import { grid1d } from "./grid.ts";
import { type Recorder, uniformU32 } from "./program.ts";
import { ShapeError, type Tensor } from "./tensor.ts";

/** Most axes a permutation may keep after merging (the kernel's layout holds 8). */
export const MAX_PERMUTE_RANK = 8;

/** Throws unless `dims` is a permutation of 0..rank-1; returns it with negative axes resolved. */
export function checkPermutation(op: string, dims: readonly number[], rank: number): number[] {
  const resolved = dims.map((d) => (Number.isInteger(d) && d < 0 ? d + rank : d));
  const seen = new Set(resolved);
  if (
    resolved.length !== rank || seen.size !== rank ||
    resolved.some((d) => !Number.isInteger(d) || d < 0 || d >= rank)
  ) {
    throw new ShapeError(
      `${op}: [${dims.join(", ")}] is not a permutation of the ${rank} axes`,
    );
  }
  return resolved;
}

/** The shape of `shape` permuted by `dims`: out axis k is input axis dims[k]. */
export function permutedShape(shape: readonly number[], dims: readonly number[]): number[] {
  return dims.map((d) => shape[d]);
}

/** The permutation that undoes `dims` (the backward's). */
export function inversePermutation(dims: readonly number[]): number[] {
  const inverse = new Array<number>(dims.length);
  dims.forEach((d, k) => inverse[d] = k);
  return inverse;
}

/**
 * The copy as (dst shape, source stride per dst axis), with unit axes dropped and runs of dst
 * axes that are consecutive in the source merged into one.
 */
function simplify(shape: readonly number[], dims: readonly number[]) {
  const strides = new Array<number>(shape.length);
  for (let a = shape.length - 1, s = 1; a >= 0; a--) {
    strides[a] = s;
    s *= shape[a];
  }
  const outShape: number[] = [], outStride: number[] = [];
  for (const d of dims) {
    if (shape[d] === 1) continue;
    const last = outShape.length - 1;
    // Merge when this axis is the one just inside the previous in the source, i.e. the pair
    // walks the source contiguously as one axis of their product.
    if (last >= 0 && outStride[last] === strides[d] * shape[d]) {
      outShape[last] *= shape[d];
      outStride[last] = strides[d];
    } else {
      outShape.push(shape[d]);
      outStride.push(strides[d]);
    }
  }
  return { outShape, outStride };
}

/** Whether permuting `shape` by `dims` leaves the row-major order unchanged (a reshape). */
export function isReshape(shape: readonly number[], dims: readonly number[]): boolean {
  return simplify(shape, dims).outShape.length <= 1;
}

/**
 * Records dst (+)= src permuted by `dims`: dst's axis k is src's axis dims[k], so dst must have
 * shape [src.shape[dims[0]], ...]. One dispatch; negative axes count from the end.
 */
export function permute(
  rec: Recorder,
  src: Tensor,
  dims: readonly number[],
  dst: Tensor,
  accumulate = false,
): void {
  const op = "permute";
  requireF32(op, src, dst);
  const resolved = checkPermutation(op, dims, src.shape.length);
  const want = permutedShape(src.shape, resolved);
  if (dst.shape.length !== want.length || dst.shape.some((d, i) => d !== want[i])) {
    throw new ShapeError(
      `${op}: ${dst.describe()} must be [${want.join(", ")}] for ${src.describe()} permuted ` +
        `by [${dims.join(", ")}]`,
    );
  }
  requireDisjoint(op, [dst], [src]);
  if (dst.size === 0) return;
  const { outShape, outStride } = simplify(src.shape, resolved);
  if (outShape.length > MAX_PERMUTE_RANK) {
    throw new ShapeError(
      `${op}: ${src.describe()} permuted by [${dims.join(", ")}] keeps ${outShape.length} ` +
        `axes after merging; the kernel takes at most ${MAX_PERMUTE_RANK}`,
    );
  }
  const rank = Math.max(1, outShape.length);
  const pad = (values: number[]) => [...values, ...new Array(8 - values.length).fill(1)];
  const layout = uniformU32(
    rec.gpu,
    [...pad(outShape.length ? outShape : [1]), ...pad(outStride.length ? outStride : [1])],
    `${op}.layout`,
  );
  rec.dispatch(
    {
      name: op,
      code: source,
      constants: { RANK: rank, SIZE: dst.size, ACCUMULATE: accumulate ? 1 : 0 },
    },
    [src, dst, layout],
    grid1d(dst.size, 256),
  );
}

/** Reference for `permute` (without accumulation), in float64. */
export function permuteReference(
  src: ArrayLike<number>,
  shape: readonly number[],
  dims: readonly number[],
): Float64Array {
  const resolved = checkPermutation("permuteReference", dims, shape.length);
  const outShape = permutedShape(shape, resolved);
  const strides = shape.map((_, a) => shape.slice(a + 1).reduce((x, y) => x * y, 1));
  const out = new Float64Array(src.length);
  for (let i = 0; i < out.length; i++) {
    let rest = i, offset = 0;
    for (let k = outShape.length - 1; k >= 0; k--) {
      offset += (rest % outShape[k]) * strides[resolved[k]];
      rest = Math.floor(rest / outShape[k]);
    }
    out[i] = src[offset];
  }
  return out;
}
