/** The batched matmul graph op (attention scores q·kᵀ, weights·values) and its backward. */
import { matmul as matmulKernel } from "../kernels/matmul.ts";
import { ShapeError, type Tensor } from "../kernels/tensor.ts";
import type { Graph, Var } from "./graph.ts";
import { sumRepeatsInto } from "./op_helpers.ts";

/**
 * The gradient of a matmul operand. When the other operand is batched and this one is shared
 * by every batch, the per-batch products go to a scratch [batch, ...] and a column sum adds
 * them up in batch order (deterministic), since one batched dispatch cannot reduce over batch.
 */
function operandGrad(
  g: Graph,
  operand: Var,
  batch: number | undefined,
  product: (out: Tensor, accumulate: boolean) => void,
): void {
  const t = g.gradTarget(operand);
  if (batch === undefined || operand.shape.length === 3) {
    product(t.tensor, t.accumulate);
    return;
  }
  const perBatch = g.alloc([batch, ...operand.shape], "matmul.grad.batched");
  product(perBatch, false);
  sumRepeatsInto(g, perBatch, t);
}

/** Batched C = op(A)·op(B) with optional transposes, e.g. q·kᵀ for attention scores. */
export function matmul(
  g: Graph,
  a: Var,
  b: Var,
  opts: { transA?: boolean; transB?: boolean } = {},
): Var {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const ra = a.shape.length, rb = b.shape.length;
  const what = () =>
    `matmul(transA=${transA}, transB=${transB}): a ${a.data.describe()}, b ${b.data.describe()}`;
  if (ra < 2 || ra > 3 || rb < 2 || rb > 3) {
    throw new ShapeError(`${what()}: operands must be 2-D or 3-D`);
  }
  const M = transA ? a.shape[ra - 1] : a.shape[ra - 2];
  const Ka = transA ? a.shape[ra - 2] : a.shape[ra - 1];
  const Kb = transB ? b.shape[rb - 1] : b.shape[rb - 2];
  const N = transB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (Ka !== Kb) throw new ShapeError(`${what()}: inner dimensions ${Ka} and ${Kb} differ`);
  if (ra === 3 && rb === 3 && a.shape[0] !== b.shape[0]) {
    throw new ShapeError(`${what()}: batch sizes ${a.shape[0]} and ${b.shape[0]} differ`);
  }
  // An unbatched operand is shared by every batch of the other one.
  const batch = ra === 3 ? a.shape[0] : rb === 3 ? b.shape[0] : undefined;
  const c = g.alloc(batch === undefined ? [M, N] : [batch, M, N], "matmul");
  matmulKernel(g.rec, a.data, b.data, c, { transA, transB });
  return g.output(c, [a, b], (o) => {
    const dC = g.gradOf(o);
    if (!dC) return;
    if (a.requiresGrad) {
      operandGrad(g, a, batch, (out, accumulate) => {
        if (!transA && !transB) {
          // dA [M,K] = dC·B
          matmulKernel(g.rec, dC, b.data, out, { transB: true, accumulate });
        } else if (!transA && transB) {
          matmulKernel(g.rec, dC, b.data, out, { accumulate });
        } else if (transA && !transB) {
          // dA [K,M] = B·dCᵀ
          matmulKernel(g.rec, b.data, dC, out, { transB: true, accumulate });
        } else {
          matmulKernel(g.rec, b.data, dC, out, { transA: true, transB: true, accumulate });
        }
      });
    }
    if (b.requiresGrad) {
      operandGrad(g, b, batch, (out, accumulate) => {
        if (!transA && !transB) {
          // dB [K,N] = Aᵀ·dC
          matmulKernel(g.rec, a.data, dC, out, { transA: true, accumulate });
        } else if (!transA && transB) {
          // dB [N,K] = dCᵀ·A
          matmulKernel(g.rec, dC, a.data, out, { transA: true, accumulate });
        } else if (transA && !transB) {
          matmulKernel(g.rec, a.data, dC, out, { accumulate });
        } else {
          matmulKernel(g.rec, dC, a.data, out, { transA: true, transB: true, accumulate });
        }
      });
    }
  });
}
