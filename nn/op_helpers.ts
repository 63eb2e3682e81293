/**
 * Helpers the graph ops share: writing a gradient into its target (`contribute`, and
 * `sumRepeatsInto` for an operand that was broadcast) and seeing a tensor as rows (`flat2d`).
 */
import { addInto, copy } from "../kernels/elementwise.ts";
import { colSum } from "../kernels/reduce.ts";
import { reshape, type Tensor } from "../kernels/tensor.ts";
import type { GradTarget, Graph } from "./graph.ts";

/** x [..., C] seen as [rows, C]. */
export function flat2d(t: Tensor): Tensor {
  const last = t.shape[t.shape.length - 1];
  return reshape(t, [t.size / last, last]);
}

/** Writes `src` into a gradient target: copy on first contribution, add afterwards. */
export function contribute(g: Graph, target: GradTarget, src: Tensor): void {
  if (target.accumulate) addInto(g.rec, src, target.tensor);
  else copy(g.rec, src, target.tensor);
}

/**
 * Adds `src` into a gradient target that `src` repeats (a broadcast operand, an operand shared
 * by every batch): src is [repeats × target size], summed over the repeats by a column sum in
 * their order (deterministic), since one elementwise dispatch cannot reduce across invocations.
 */
export function sumRepeatsInto(
  g: Graph,
  src: Tensor,
  target: { tensor: Tensor; accumulate: boolean },
): void {
  const n = target.tensor.size;
  colSum(g.rec, reshape(src, [src.size / n, n]), reshape(target.tensor, [n]), target.accumulate);
}
