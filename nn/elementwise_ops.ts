/**
 * Differentiable elementwise ops over kernels that already have device forward/backward
 * dispatchers: add (with broadcast), ReLU, mul, scale, dropout (the run's Philox dropout stream) and the cumulative mean
 * over time (the lecture's xbow). Each records its forward and pushes its backward; gradients
 * follow the Graph's overwrite-then-accumulate rule, so a value used twice gets both.
 */
import { Counter } from "../kernels/counters.ts";
import { cumulativeMean as cumulativeMeanKernel } from "../kernels/cumulative_mean.ts";
import { dropout as dropoutKernel, dropoutBackward } from "../kernels/dropout.ts";
import {
  add as addKernel,
  addInto,
  mul as mulKernel,
  relu as reluKernel,
  reluBackward,
  scale as scaleKernel,
} from "../kernels/elementwise.ts";
import type { Gpu } from "../kernels/device.ts";
import { matmul as matmulKernel } from "../kernels/matmul.ts";
import { streamKey } from "../kernels/philox.ts";
import { createTensor, reshape, ShapeError, type Tensor } from "../kernels/tensor.ts";
import type { Graph, Var } from "./graph.ts";
import { contribute, sumRepeatsInto } from "./op_helpers.ts";

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

/**
 * a ⊙ b, where b may broadcast over a's leading dimensions exactly as in `add` (b's shape
 * equals a's trailing dimensions, or b holds one value).
 */
export function mul(g: Graph, a: Var, b: Var): Var {
  const out = g.alloc(a.shape, "mul");
  // The kernel validates dtypes and the broadcast, naming "mul" and both shapes, before it
  // dispatches anything.
  mulKernel(g.rec, a.data, b.data, out);
  return g.output(out, [a, b], (o) => {
    const dOut = g.gradOf(o);
    if (!dOut) return;
    if (a.requiresGrad) {
      // dA = dOut ⊙ b, with b broadcast the same way as in the forward.
      const t = g.gradTarget(a);
      mulKernel(g.rec, dOut, b.data, t.tensor, t.accumulate);
    }
    if (b.requiresGrad) {
      const t = g.gradTarget(b);
      if (b.data.size === a.data.size) {
        // Equal sizes, possibly different shapes ([T, C] onto [1, T, C]): dB = dOut ⊙ a seen
        // in a's shape.
        mulKernel(g.rec, dOut, a.data, reshape(t.tensor, a.shape), t.accumulate);
      } else {
        // Broadcast: dB sums dOut ⊙ a over the repeats. One dispatch cannot reduce across
        // invocations, so the products go to a scratch and a column sum adds them in order.
        const product = g.alloc(a.shape, "mul.grad.product");
        mulKernel(g.rec, dOut, a.data, product);
        sumRepeatsInto(g, product, t);
      }
    }
  });
}

/** s · x for a finite host number s (fixed at record time). */
export function scale(g: Graph, x: Var, s: number): Var {
  const out = g.alloc(x.shape, "scale");
  scaleKernel(g.rec, x.data, s, out);
  return g.output(out, [x], (o) => {
    const dOut = g.gradOf(o);
    if (!dOut) return;
    const t = g.gradTarget(x);
    // dX = s · dOut. The scale dispatcher has no accumulate flag, so a second contribution
    // goes through a scratch and is added (same sums as an accumulating kernel would do).
    if (!t.accumulate) {
      scaleKernel(g.rec, dOut, s, t.tensor);
    } else {
      const scaled = g.alloc(x.shape, "scale.grad");
      scaleKernel(g.rec, dOut, s, scaled);
      addInto(g.rec, scaled, t.tensor);
    }
  });
}

/** Where a dropout site draws its mask from. */
export interface DropoutSource {
  /** The run seed; the mask comes from its dropout stream, `streamKey(seed, "dropout")`. */
  seed: number;
  /** u32 device counters; the step counter is read on the device when the plan replays. */
  counters: Tensor;
  /**
   * Slot of `counters` that advances once per step (default Counter.trainBatch, which the
   * batch sampler increments), so every replay of a recorded step draws a fresh mask.
   */
  counterIndex?: number;
  /** A number unique to this dropout site within the graph, so sites draw independent masks. */
  callIndex: number;
}

// Dropout sites seen per graph: two sites with one (seed, slot, callIndex) would draw the very
// same mask, a silent correlation, so the second one is refused.
const dropoutSites = new WeakMap<Graph, Set<string>>();

/**
 * Inverted dropout as PyTorch's: each element is kept with probability 1 − p and scaled by
 * 1/(1 − p), else zeroed. The mask is a function of (seed, callIndex, device step counter,
 * position), so a replayed step draws a new mask every step and the same seed reproduces them.
 * Identity (the same Var, nothing recorded) when p = 0 or the graph is not training.
 */
export function dropout(g: Graph, x: Var, p: number, source: DropoutSource): Var {
  if (!(p >= 0 && p <= 1)) {
    throw new RangeError(`dropout: p = ${p} is not in [0, 1] (input ${x.data.describe()})`);
  }
  const counterIndex = source.counterIndex ?? Counter.trainBatch;
  if (!Number.isInteger(source.callIndex) || source.callIndex < 0 || source.callIndex >= 2 ** 32) {
    throw new RangeError(`dropout: callIndex ${source.callIndex} is not a u32`);
  }
  let sites = dropoutSites.get(g);
  if (!sites) dropoutSites.set(g, sites = new Set());
  const site = `${source.seed >>> 0}:${counterIndex}:${source.callIndex}`;
  if (sites.has(site)) {
    throw new Error(
      `dropout: callIndex ${source.callIndex} (counter slot ${counterIndex}) is already used ` +
        `in this graph; two sites would draw the same mask`,
    );
  }
  // Registered even for the identity cases, so a config change of p cannot hide a clash.
  sites.add(site);
  if (p === 0 || !g.training) return x;
  const out = g.alloc(x.shape, "dropout");
  const mask = g.alloc(x.shape, "dropout.mask");
  dropoutKernel(g.rec, x.data, out, mask, {
    p,
    key: streamKey(source.seed, "dropout"),
    counters: source.counters,
    counterIndex,
    callIndex: source.callIndex,
  });
  return g.output(out, [x], (o) => {
    const dOut = g.gradOf(o);
    if (!dOut) return;
    // dX = dOut ⊙ mask with the mask this step drew (already holding the 1/(1 − p) factor).
    const t = g.gradTarget(x);
    dropoutBackward(g.rec, dOut, mask, t.tensor, t.accumulate);
  });
}

// The averaging matrices per device and T, uploaded once: they are constants of the backward.
const averagingMatrices = new WeakMap<Gpu, Map<number, Tensor>>();

/** W [T, T] with W[t, u] = 1/(t + 1) for u ≤ t, else 0: cumulativeMean(x)[b] = W · x[b]. */
function averagingMatrix(gpu: Gpu, T: number): Tensor {
  let byT = averagingMatrices.get(gpu);
  if (!byT) averagingMatrices.set(gpu, byT = new Map());
  let w = byT.get(T);
  if (!w) {
    const data = new Float32Array(T * T);
    for (let t = 0; t < T; t++) data.fill(1 / (t + 1), t * T, t * T + t + 1);
    w = createTensor(gpu, [T, T], "f32", `cumulativeMean.weights.${T}`, data);
    byT.set(T, w);
  }
  return w;
}

/** out[b, t, :] = mean(x[b, 0..t, :]) for x [B, T, C]: each position's mean over its past. */
export function cumulativeMean(g: Graph, x: Var): Var {
  if (x.shape.length !== 3) {
    throw new ShapeError(`cumulativeMean: ${x.data.describe()} must be [B, T, C]`);
  }
  const T = x.shape[1];
  const out = g.alloc(x.shape, "cumulativeMean");
  cumulativeMeanKernel(g.rec, x.data, out);
  // Allocated now rather than in the backward so a limit error surfaces at the op's call.
  const w = g.training && x.requiresGrad && T > 0 ? averagingMatrix(g.gpu, T) : undefined;
  return g.output(out, [x], (o) => {
    const dOut = g.gradOf(o);
    if (!dOut || !w) return;
    // The forward is a running sum (O(T)); its adjoint is a reversed running sum weighted by
    // 1/(t + 1), dX[b] = Wᵀ · dOut[b], which no kernel computes directly. A matmul with the
    // shared averaging matrix does, and accumulates when x already has a gradient.
    const t = g.gradTarget(x);
    matmulKernel(g.rec, w, dOut, t.tensor, { transA: true, accumulate: t.accumulate });
  });
}
