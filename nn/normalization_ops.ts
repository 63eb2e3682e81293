/**
 * Graph ops that normalise along the last axis: softmax (optionally causal and scaled, as
 * attention uses it) and layer norm with affine gamma/beta.
 */
import { layerNorm as layerNormKernel, layerNormBackward } from "../kernels/layernorm.ts";
import { softmax as softmaxKernel, softmaxBackward } from "../kernels/softmax.ts";
import type { Graph, Var } from "./graph.ts";
import { flat2d } from "./op_helpers.ts";

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
