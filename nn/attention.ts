/**
 * Causal multi-head self-attention as one graph op over batched heads (kernels/attention.ts):
 * one dispatch forward, one backward, instead of a matmul, softmax and matmul per head.
 */
import { attentionBackward, attentionForward, keepWords } from "../kernels/attention.ts";
import type { AttentionDropout, AttentionOperand } from "../kernels/attention.ts";
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

/** Records the forward of q, k, v (tensors or column blocks of one) and returns its tensors. */
function recordForward(
  g: Graph,
  [B, T, C]: readonly number[],
  [q, k, v]: AttentionOperand[],
  opts: CausalSelfAttentionOptions,
) {
  const out = g.alloc([B, T, C], "attention");
  const lse = g.alloc([B, opts.nHead, T], "attention.lse");
  const dropout = opts.dropout && opts.dropout.p !== 0 && g.training ? opts.dropout : undefined;
  const keep = dropout
    ? createTensor(g.gpu, [B, opts.nHead, T, keepWords(T)], "u32", `attention.keep#${B}x${T}`)
    : undefined;
  const args = { q, k, v, out, lse, nHead: opts.nHead, scale: opts.scale, dropout, keep };
  attentionForward(g.rec, args);
  return args;
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
  const args = recordForward(g, shape, [q.data, k.data, v.data], opts);
  return g.output(args.out, [q, k, v], (o) => {
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
    const [aq, ak, av] = targets.map((t) => t.accumulate);
    attentionBackward(g.rec, { ...args, dOut, dq, dk, dv, accumulate: { q: aq, k: ak, v: av } });
    if (!distinct) {
      inputs.forEach((x, i) => {
        if (x.requiresGrad) contribute(g, g.gradTarget(x), targets[i].tensor);
      });
    }
  });
}

/**
 * The same attention on a fused projection qkv [B, T, 3·C] holding q, k, v as its column
 * blocks [0, C), [C, 2C), [2C, 3C) (one `Linear(n_embd, 3·n_embd)` instead of three): the
 * kernels read the blocks in place and write the gradient as one [B, T, 3·C] tensor, so no
 * split or concat is recorded either way.
 */
export function causalSelfAttentionQkv(
  g: Graph,
  qkv: Var,
  opts: CausalSelfAttentionOptions,
): Var {
  const [B, T, W] = qkv.shape;
  if (qkv.shape.length !== 3 || W % 3 !== 0) {
    throw new ShapeError(
      `causalSelfAttentionQkv: qkv ${qkv.data.describe()} must be [B, T, 3·nHead·headSize]`,
    );
  }
  const C = W / 3;
  const blocks = (tensor: Tensor) => [0, C, 2 * C].map((column) => ({ tensor, column }));
  const args = recordForward(g, [B, T, C], blocks(qkv.data), opts);
  return g.output(args.out, [qkv], (o) => {
    const dOut = g.gradOf(o);
    if (!dOut) return;
    const t = g.gradTarget(qkv);
    const [dq, dk, dv] = blocks(t.tensor);
    const all = t.accumulate;
    attentionBackward(g.rec, { ...args, dOut, dq, dk, dv, accumulate: { q: all, k: all, v: all } });
  });
}

function contribute(g: Graph, target: GradTarget, src: Tensor): void {
  if (target.accumulate) addInto(g.rec, src, target.tensor);
  else copy(g.rec, src, target.tensor);
}
