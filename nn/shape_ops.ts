/**
 * Shape ops: reshape (a view: no dispatch, and the gradient is the viewed value's own, seen in
 * the new shape), permute and transpose (a strided copy, unless only unit axes move), concat
 * and split (one copy dispatch for many pieces). Backwards follow the Graph's rule: the first
 * contribution to a gradient overwrites it, later ones add.
 */
import { concat as concatKernel, resolveAxis, split as splitKernel } from "../kernels/concat.ts";
import {
  checkPermutation,
  inversePermutation,
  isReshape,
  permute as permuteKernel,
  permutedShape,
} from "../kernels/permute.ts";
import { reshape as reshapeTensor, ShapeError } from "../kernels/tensor.ts";
import { type Graph, Var } from "./graph.ts";

/**
 * `x` seen with another shape of the same size (row-major, as PyTorch's `view`); one entry may
 * be −1 and is then inferred. Records nothing: gradients reaching the result are `x`'s.
 */
export function reshape(_g: Graph, x: Var, shape: readonly number[]): Var {
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const inferred = shape.filter((d) => d === -1).length;
  const bad = shape.some((d) => !Number.isInteger(d) || d < -1) || inferred > 1 ||
    (inferred === 1 && (known === 0 || x.data.size % known !== 0));
  const resolved = shape.map((d) => d === -1 ? x.data.size / known : d);
  if (bad || resolved.reduce((a, b) => a * b, 1) !== x.data.size) {
    throw new ShapeError(`reshape: ${x.data.describe()} cannot be seen as [${shape.join(", ")}]`);
  }
  return new Var(reshapeTensor(x.data, resolved), x.requiresGrad, undefined, x.viewOf ?? x);
}

/** PyTorch's name for `reshape` of a contiguous tensor, which every Var is. */
export const view = reshape;

/**
 * `x` with its axes reordered: the result's axis k is x's axis dims[k] (negative axes count
 * from the end). A copy, except when only unit axes move: then a view, like `reshape`.
 */
export function permute(g: Graph, x: Var, dims: readonly number[]): Var {
  const resolved = checkPermutation("permute", dims, x.shape.length);
  const shape = permutedShape(x.shape, resolved);
  if (isReshape(x.shape, resolved)) return reshape(g, x, shape);
  const out = g.alloc(shape, "permute");
  permuteKernel(g.rec, x.data, resolved, out);
  return g.output(out, [x], (o) => {
    const dOut = g.gradOf(o);
    if (!dOut) return;
    // The adjoint of a permutation is the inverse permutation.
    const t = g.gradTarget(x);
    permuteKernel(g.rec, dOut, inversePermutation(resolved), t.tensor, t.accumulate);
  });
}

/** `x` with axes `dim0` and `dim1` swapped (negative axes count from the end). */
export function transpose(g: Graph, x: Var, dim0: number, dim1: number): Var {
  const rank = x.shape.length;
  const a = resolveAxis("transpose", dim0, rank), b = resolveAxis("transpose", dim1, rank);
  const dims = x.shape.map((_, k) => k);
  [dims[a], dims[b]] = [b, a];
  return permute(g, x, dims);
}

/**
 * The values side by side along `axis` (negative counts from the end): every value has the
 * shape of the first except along the axis. One dispatch for up to the device's storage
 * bindings per stage less one (7 at WebGPU's default limits); the backward splits the gradient
 * back, also in one dispatch.
 */
export function concat(g: Graph, xs: readonly Var[], axis: number): Var {
  if (xs.length === 0) throw new ShapeError("concat: no values to concatenate");
  const a = resolveAxis("concat", axis, xs[0].shape.length);
  const shape = [...xs[0].shape];
  shape[a] = xs.reduce((sum, x) => sum + (x.shape[a] ?? 0), 0);
  const out = g.alloc(shape, "concat");
  concatKernel(g.rec, xs.map((x) => x.data), a, out);
  return g.output(out, xs, (o) => {
    const dOut = g.gradOf(o);
    if (!dOut) return;
    // Taken in order, so a value that appears twice is overwritten by its first piece and
    // added to by the next (the kernel puts the two in separate dispatches).
    const targets = xs.map((x) => x.requiresGrad ? g.gradTarget(x) : x.shape[a]);
    splitKernel(g.rec, dOut, a, targets);
  });
}

/**
 * `x` cut along `axis` into pieces of `sizes` (adding up to the axis), or, for a number, into
 * pieces of that size with a smaller last one, as PyTorch's `split`. The backward joins the
 * pieces' gradients in one dispatch, with zeros for pieces that received none.
 */
export function split(g: Graph, x: Var, sizes: number | readonly number[], axis: number): Var[] {
  const a = resolveAxis("split", axis, x.shape.length);
  const length = x.shape[a];
  let pieces: number[];
  if (typeof sizes === "number") {
    if (!Number.isInteger(sizes) || sizes <= 0) {
      throw new ShapeError(`split: piece size ${sizes} is not a positive integer`);
    }
    pieces = [];
    for (let at = 0; at < length; at += sizes) pieces.push(Math.min(sizes, length - at));
  } else {
    pieces = [...sizes];
  }
  const outs = pieces.map((size, k) => {
    const shape = [...x.shape];
    shape[a] = size;
    if (!Number.isInteger(size) || size < 0) {
      throw new ShapeError(`split: piece ${k} has size ${size}, not a count`);
    }
    return g.alloc(shape, "split");
  });
  splitKernel(g.rec, x.data, a, outs.map((tensor) => ({ tensor, accumulate: false })));
  return g.outputs(outs, [x], (os) => {
    const grads = os.map((o) => g.gradOf(o));
    if (grads.every((d) => d === undefined)) return;
    const t = g.gradTarget(x);
    concatKernel(g.rec, grads.map((d, k) => d ?? pieces[k]), a, t.tensor, t.accumulate);
  });
}
