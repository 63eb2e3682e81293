/**
 * Differentiable ops for attention models: batched matmul, masked softmax, broadcast add,
 * layer norm, ReLU (and `linear`, from layer_ops.ts). Each records its forward and pushes its backward.
 */
import { add as addKernel, relu as reluKernel, reluBackward } from "../kernels/elementwise.ts";
import { layerNorm as layerNormKernel, layerNormBackward } from "../kernels/layernorm.ts";
import { matmul as matmulKernel } from "../kernels/matmul.ts";
import { colSum } from "../kernels/reduce.ts";
import { softmax as softmaxKernel, softmaxBackward } from "../kernels/softmax.ts";
import { reshape, ShapeError, type Tensor } from "../kernels/tensor.ts";
import type { Graph, Var } from "./graph.ts";
import { contribute, flat2d } from "./layer_ops.ts";

/** `linear` lives with the other layer-level ops; re-exported for existing imports. */
export { linear } from "./layer_ops.ts";

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

/** Softmax over the last axis of scale·x, with positions after the row masked when causal. */
export function softmax(g: Graph, x: Var, opts: { causal?: boolean; scale?: number } = {}): Var {
  const y = g.alloc(x.shape, "softmax");
  softmaxKernel(g.rec, x.data, y, opts);
  return g.output(y, [x], (o) => {
    const dY = g.gradOf(o);
    if (!dY) return;
    const t = g.gradTarget(x);
    softmaxBackward(g.rec, y, dY, t.tensor, { scale: opts.scale, accumulate: t.accumulate });
  });
}

/** a + b, where b may broadcast over a's leading dimensions (e.g. position embeddings). */
export function add(g: Graph, a: Var, b: Var): Var {
  const out = g.alloc(a.shape, "add");
  addKernel(g.rec, a.data, b.data, out);
  return g.output(out, [a, b], (o) => {
    const dOut = g.gradOf(o);
    if (!dOut) return;
    if (a.requiresGrad) contribute(g, g.gradTarget(a), dOut);
    if (b.requiresGrad) {
      const t = g.gradTarget(b);
      // Equal sizes with different shapes (positions [T, C] onto a batch of one [1, T, C]):
      // the gradient is dOut seen in b's shape.
      if (b.data.size === a.data.size) contribute(g, t, reshape(dOut, b.shape));
      else sumRepeatsInto(g, dOut, t);
    }
  });
}

/** max(x, 0). */
export function relu(g: Graph, x: Var): Var {
  const y = g.alloc(x.shape, "relu");
  reluKernel(g.rec, x.data, y);
  return g.output(y, [x], (o) => {
    const dY = g.gradOf(o);
    if (!dY) return;
    const t = g.gradTarget(x);
    reluBackward(g.rec, x.data, dY, t.tensor, t.accumulate);
  });
}

/** Layer norm over the last axis with affine gamma/beta (PyTorch's eps 1e-5). */
export function layerNorm(g: Graph, x: Var, gamma: Var, beta: Var): Var {
  const x2 = flat2d(x.data);
  const [M] = x2.shape;
  const y = g.alloc(x.shape, "layernorm");
  const mean = g.alloc([M], "ln.mean");
  const rstd = g.alloc([M], "ln.rstd");
  layerNormKernel(g.rec, x2, gamma.data, beta.data, flat2d(y), mean, rstd);
  return g.output(y, [x, gamma, beta], (o) => {
    const dY = g.gradOf(o);
    if (!dY) return;
    // Every gradient is written (the kernel computes all three together); one that already
    // holds a contribution (a residual branch, a shared gamma) is added to.
    const dX = g.gradTarget(x), dG = g.gradTarget(gamma), dB = g.gradTarget(beta);
    layerNormBackward(
      g.rec,
      x2,
      gamma.data,
      mean,
      rstd,
      flat2d(dY),
      flat2d(dX.tensor),
      dG.tensor,
      dB.tensor,
      { accumulateX: dX.accumulate, accumulateGamma: dG.accumulate, accumulateBeta: dB.accumulate },
    );
  });
}
