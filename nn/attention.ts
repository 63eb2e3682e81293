/**
 * Causal multi-head self-attention as one graph op over batched heads (kernels/attention.ts):
 * one dispatch forward, one backward, instead of a matmul, softmax and matmul per head.
 */
import { attentionBackward, attentionForward, keepWords } from "../kernels/attention.ts";
import type { AttentionDropout } from "../kernels/attention.ts";
import { addInto, copy } from "../kernels/elementwise.ts";
import { createTensor, ShapeError, type Tensor } from "../kernels/tensor.ts";
import type { GradTarget, Graph, Var } from "./graph.ts";

/** Options of `causalSelfAttention`. */
export interface CausalSelfAttentionOptions {
  /** Heads side by side in the last axis: head h is columns h·headSize … (h + 1)·headSize. */
  nHead: number;
  /** Multiplier of q·kᵀ; default 1/√headSize (the lecture's gpt.py). */
  scale?: number;
  /**
   * Dropout of the attention weights after the softmax (gpt.py's `self.dropout(wei)`), drawn
   * on the device from the step counter, so every replayed step draws a new mask. Nothing is
   * recorded for it when p = 0 or the graph is not training.
   */
  dropout?: AttentionDropout;
}

/**
 * q, k, v [B, T, nHead·headSize] → [B, T, nHead·headSize]: for each head,
 * softmax(scale·q_h·k_hᵀ with j > i masked) (dropped out) · v_h, heads concatenated as
 * torch.cat(heads, -1). Gradients go to every input that requires one, added to what an
 * earlier contribution wrote (q, k and v may be the same Var).
 */
export function causalSelfAttention(
  g: Graph,
  q: Var,
  k: Var,
  v: Var,
  opts: CausalSelfAttentionOptions,
): Var {
  const shape = q.shape;
  for (const x of [k, v]) {
    if (shape.length !== 3 || x.shape.length !== 3 || x.shape.some((n, i) => n !== shape[i])) {
      throw new ShapeError(
        `causalSelfAttention: q ${q.data.describe()}, k ${k.data.describe()} and ` +
          `v ${v.data.describe()} must all be [B, T, nHead·headSize]`,
      );
    }
  }
  const [B, T] = shape;
  const out = g.alloc(shape, "attention");
  const lse = g.alloc([B, opts.nHead, T], "attention.lse");
  const dropout = opts.dropout && opts.dropout.p !== 0 && g.training ? opts.dropout : undefined;
  const keep = dropout
    ? createTensor(g.gpu, [B, opts.nHead, T, keepWords(T)], "u32", `attention.keep#${B}x${T}`)
    : undefined;
  const args = {
    q: q.data,
    k: k.data,
    v: v.data,
    out,
    lse,
    nHead: opts.nHead,
    scale: opts.scale,
    dropout,
    keep,
  };
  attentionForward(g.rec, args);
  return g.output(out, [q, k, v], (o) => {
    const dOut = g.gradOf(o);
    if (!dOut) return;
    const inputs = [q, k, v];
    const distinct = new Set(inputs.map((x) => x.param ?? x)).size === 3;
    // One dispatch writes all three gradients, so an input passed twice gets scratch
    // gradients that are then added in order q, k, v; so does an input that needs none.
    const targets: GradTarget[] = inputs.map((x) =>
      distinct && x.requiresGrad
        ? g.gradTarget(x)
        : { tensor: g.alloc(shape, "attention.grad"), accumulate: false }
    );
    const [dq, dk, dv] = targets.map((t) => t.tensor);
    const accumulate = {
      q: targets[0].accumulate,
      k: targets[1].accumulate,
      v: targets[2].accumulate,
    };
    attentionBackward(g.rec, { ...args, dOut, dq, dk, dv, accumulate });
    if (!distinct) {
      inputs.forEach((x, i) => {
        if (x.requiresGrad) contribute(g, g.gradTarget(x), targets[i].tensor);
      });
    }
  });
}

function contribute(g: Graph, target: GradTarget, src: Tensor): void {
  if (target.accumulate) addInto(g.rec, src, target.tensor);
  else copy(g.rec, src, target.tensor);
}
