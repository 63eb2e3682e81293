/**
 * Layer-level graph ops, each a few fused dispatches per direction: `linear` with its bias and
 * activation in the matmul's epilogue, `addLayerNorm` (a pre-LN block's residual add and the
 * next layer norm in one kernel) and `classifierLoss` (logits, cross-entropy, its gradient and
 * the bias gradient). Every reduction runs in a fixed order: same inputs, same bits.
 */
import { type Activation, activationReference } from "../kernels/activation.ts";
import { activationBackward } from "../kernels/activation_backward.ts";
import {
  addLayerNorm as addLayerNormKernel,
  addLayerNormBackward,
} from "../kernels/add_layernorm.ts";
import { crossEntropy } from "../kernels/cross_entropy.ts";
import { layerNormParamsBackward } from "../kernels/layernorm.ts";
import { matmul as matmulKernel, matmulReference } from "../kernels/matmul.ts";
import { colSum } from "../kernels/reduce.ts";
import { ShapeError, type Tensor } from "../kernels/tensor.ts";
import type { Graph, Var } from "./graph.ts";
import { contribute, flat2d } from "./op_helpers.ts";
import type { LossSink } from "./ops.ts";

/** Options of `linear`. */
export interface LinearOptions {
  /** Applied to x·Wᵀ + b inside the matmul (default "none"). */
  activation?: Activation;
}

/** Checks x [..., in], W [out, in] and b [out]; returns (out, in). */
function linearShapes(op: string, x: Var, weight: Var, bias?: Var): [number, number] {
  if (weight.shape.length !== 2) {
    throw new ShapeError(`${op}: weight ${weight.data.describe()} must be [out, in]`);
  }
  const [outF, inF] = weight.shape;
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== inF) {
    throw new ShapeError(
      `${op}: input ${x.data.describe()} does not end in ${inF} (weight ${weight.data.describe()})`,
    );
  }
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== outF)) {
    throw new ShapeError(
      `${op}: bias ${bias.data.describe()} must be [${outF}] for weight ${weight.data.describe()}`,
    );
  }
  return [outF, inF];
}

/** dW (+)= dPreᵀ·x and dX (+)= dPre·W for y = x·Wᵀ: the two matmuls of a Linear's backward. */
function linearInputGrads(g: Graph, x: Var, weight: Var, dPre: Tensor): void {
  if (weight.requiresGrad) {
    const t = g.gradTarget(weight);
    // dW [out,in] = dPreᵀ [out,M] · x [M,in]
    matmulKernel(g.rec, dPre, flat2d(x.data), t.tensor, { transA: true, accumulate: t.accumulate });
  }
  if (x.requiresGrad) {
    const t = g.gradTarget(x);
    // dX [M,in] = dPre [M,out] · W [out,in]
    matmulKernel(g.rec, dPre, weight.data, flat2d(t.tensor), { accumulate: t.accumulate });
  }
}

/**
 * y = act(x·Wᵀ + b) for x [..., in], W [out, in] (PyTorch's Linear layout), b [out]: one matmul
 * dispatch (two on the texture path) with the bias and activation in its epilogue. Backward:
 * d(pre) and the bias gradient in one dispatch (none without activation and bias), then dW
 * and dX by matmul. GELU keeps its pre-activation for the backward; ReLU uses its output.
 */
export function linear(
  g: Graph,
  x: Var,
  weight: Var,
  bias?: Var,
  opts: LinearOptions = {},
): Var {
  const activation = opts.activation ?? "none";
  if (!["none", "relu", "gelu"].includes(activation)) {
    throw new ShapeError(`linear: unknown activation ${JSON.stringify(activation)}`);
  }
  const [outF] = linearShapes("linear", x, weight, bias);
  const outShape = [...x.shape.slice(0, -1), outF];
  const y = g.alloc(outShape, "linear");
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const training = g.training && inputs.some((v) => v.requiresGrad);
  const pre = training && activation === "gelu" ? g.alloc(outShape, "linear.pre") : undefined;
  matmulKernel(g.rec, flat2d(x.data), weight.data, flat2d(y), {
    transB: true,
    epilogue: { bias: bias?.data, activation, preActivation: pre && flat2d(pre) },
  });
  return g.output(y, inputs, (o) => {
    const dY = g.gradOf(o);
    if (!dY) return;
    const dY2 = flat2d(dY);
    let dPre = dY2;
    if (activation !== "none") {
      dPre = flat2d(g.alloc(outShape, "linear.dpre"));
      const biasTarget = bias?.requiresGrad ? g.gradTarget(bias) : undefined;
      activationBackward(g.rec, {
        activation,
        dOut: dY2,
        saved: flat2d(activation === "gelu" ? pre! : y),
        dPre,
        dBias: biasTarget?.tensor,
        accumulateBias: biasTarget?.accumulate,
      });
    } else if (bias?.requiresGrad) {
      const t = g.gradTarget(bias);
      colSum(g.rec, dY2, t.tensor, t.accumulate);
    }
    linearInputGrads(g, x, weight, dPre);
  });
}

/** The two outputs of `addLayerNorm`. */
export interface AddLayerNormResult {
  /** x + delta: the residual stream, for the next residual add. */
  sum: Var;
  /** LayerNorm(x + delta)·gamma + beta: the next sublayer's (or the head's) input. */
  out: Var;
}

/**
 * A pre-LN block's residual step, `x = x + delta; h = ln(x)`, in one dispatch (PyTorch's eps
 * 1e-5). In the lecture's Block, `x = x + sa(ln1(x)); x = x + ffwd(ln2(x))` becomes
 * `{sum, out} = addLayerNorm(x, sa(ln1(x)), ln2)` then `addLayerNorm(sum, ffwd(out), ln1 of
 * the next block, or ln_f after the last)`. Backward: one dispatch for d(x) = d(delta) (the
 * layer norm's input gradient plus what reached `sum` directly) and one for d(gamma), d(beta).
 */
export function addLayerNorm(
  g: Graph,
  x: Var,
  delta: Var,
  gamma: Var,
  beta: Var,
): AddLayerNormResult {
  if (x === delta) {
    throw new ShapeError(`addLayerNorm: x and delta are one value (${x.data.describe()})`);
  }
  const x2 = flat2d(x.data);
  const [rows] = x2.shape;
  const sum = g.alloc(x.shape, "residual");
  const out = g.alloc(x.shape, "add_layernorm");
  const mean = g.alloc([rows], "ln.mean");
  const rstd = g.alloc([rows], "ln.rstd");
  addLayerNormKernel(g.rec, x2, flat2d(delta.data), gamma.data, beta.data, {
    sum: flat2d(sum),
    out: flat2d(out),
    mean,
    rstd,
  });
  const inputs = [x, delta, gamma, beta];
  // Both outputs' later uses come after this op on the tape, so their backward closures run
  // first; the closure of `sum` (pushed first, run last) handles both gradients at once.
  const outVar = g.output(out, inputs, () => {});
  const sumVar = g.output(sum, inputs, (s) => {
    const dOut = g.gradOf(outVar), dSum = g.gradOf(s);
    const targets = [x, delta].filter((v) => v.requiresGrad).map((v) => g.gradTarget(v));
    if (!dOut) {
      if (dSum) { for (const t of targets) contribute(g, t, dSum); }
      return;
    }
    const dOut2 = flat2d(dOut);
    if (targets.length > 0) {
      addLayerNormBackward(g.rec, {
        sum: flat2d(sum),
        gamma: gamma.data,
        mean,
        rstd,
        dOut: dOut2,
        dSum: dSum && flat2d(dSum),
        dX: { ...targets[0], tensor: flat2d(targets[0].tensor) },
        dDelta: targets[1] && { ...targets[1], tensor: flat2d(targets[1].tensor) },
      });
    }
    if (gamma.requiresGrad || beta.requiresGrad) {
      // The kernel computes both column sums together, so both gradients are written.
      const dG = g.gradTarget(gamma), dB = g.gradTarget(beta);
      layerNormParamsBackward(g.rec, flat2d(sum), mean, rstd, dOut2, dG.tensor, dB.tensor, {
        accumulateGamma: dG.accumulate,
        accumulateBeta: dB.accumulate,
      });
    }
  });
  return { sum: sumVar, out: outVar };
}

/**
 * The classifier head and its loss: logits = x·Wᵀ + b (x [..., C], W [V, C], b [V]), the mean
 * cross-entropy against `targets` (x's leading shape) written to the sink, and, when training,
 * d(logits) with the bias gradient in the same dispatch, then dW and dX by matmul: four
 * dispatches per step for the whole head. Returns the logits (no gradient flows through them:
 * the loss is the end of the graph); a forward-only graph computes just logits and loss.
 */
export function classifierLoss(
  g: Graph,
  x: Var,
  weight: Var,
  bias: Var | undefined,
  targets: Var,
  sink: LossSink,
): Var {
  const [V] = linearShapes("classifierLoss", x, weight, bias);
  const rows = x.shape.slice(0, -1);
  if (targets.shape.length !== rows.length || targets.shape.some((d, i) => d !== rows[i])) {
    throw new ShapeError(
      `classifierLoss: targets ${targets.data.describe()} must be [${rows.join(", ")}] ` +
        `for input ${x.data.describe()}`,
    );
  }
  const logits = g.alloc([...rows, V], "classifier.logits");
  const logits2 = flat2d(logits);
  matmulKernel(g.rec, flat2d(x.data), weight.data, logits2, {
    transB: true,
    epilogue: { bias: bias?.data },
  });
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const training = g.training && inputs.some((v) => v.requiresGrad);
  const dLogits = training ? g.alloc(logits2.shape, "classifier.dlogits") : undefined;
  // The bias gradient is written now, by the loss kernel: the loss ends the graph, so every
  // other use of the bias lies earlier on the tape and adds to it in its own backward.
  const dBias = training && bias?.requiresGrad ? g.gradTarget(bias) : undefined;
  crossEntropy(g.rec, {
    logits: logits2,
    targets: targets.data,
    losses: sink.losses,
    counters: sink.counters,
    counterIndex: sink.counterIndex,
    dLogits,
    dBias: dBias?.tensor,
    accumulateBias: dBias?.accumulate,
  });
  if (dLogits) g.output(logits, inputs, () => linearInputGrads(g, x, weight, dLogits));
  return g.constant(logits);
}

/** float64 reference of `linear`: act(x·Wᵀ + b) for x [M, in] flat, W [out, in], b [out]. */
export function linearReference(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | undefined,
  inF: number,
  outF: number,
  activation: Activation = "none",
): Float64Array {
  const y = matmulReference(x, [x.length / inF, inF], w, [outF, inF], { transB: true });
  return y.map((v, i) => activationReference(activation, v + (b ? b[i % outF] : 0)));
}
