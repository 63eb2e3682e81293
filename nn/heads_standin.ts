/**
 * Causal multi-head self-attention over heads laid side by side in the last axis, composed
 * from the per-head graph ops (column selections by matmul, scores, masked softmax, dropout,
 * weighted sum). A stand-in with the signature of the batched attention kernel
 * (nn/attention.ts `causalSelfAttention`): correct and differentiable, but several dispatches
 * per head.
 */
import type { Gpu } from "../kernels/device.ts";
import { createTensor, ShapeError, type Tensor } from "../kernels/tensor.ts";
import { add, matmul, softmax } from "./attention_ops.ts";
import { dropout } from "./elementwise_ops.ts";
import type { Graph, RandomSite, Var } from "./graph.ts";

/** Options of the attention core: head count, score scale, dropout on the attention weights. */
export interface AttentionOptions {
  nHead: number;
  /** Multiplies q·kᵀ before the softmax (default 1/√headSize). */
  scale?: number;
  /** Dropout on the softmax weights (the lecture's `wei = self.dropout(wei)`). */
  dropout?: { p: number } & RandomSite;
}

// Selection matrices E_h [C, hs] (E[c, j] = 1 iff c = h·hs + j), uploaded once per shape.
const selections = new WeakMap<Gpu, Map<string, Tensor>>();

function selection(gpu: Gpu, C: number, hs: number, h: number): Tensor {
  let byShape = selections.get(gpu);
  if (!byShape) selections.set(gpu, byShape = new Map());
  const name = `heads.select.${C}.${hs}.${h}`;
  let e = byShape.get(name);
  if (!e) {
    const data = new Float32Array(C * hs);
    for (let j = 0; j < hs; j++) data[(h * hs + j) * hs + j] = 1;
    e = createTensor(gpu, [C, hs], "f32", name, data);
    byShape.set(name, e);
  }
  return e;
}

/** softmax(mask(q_h·k_hᵀ·scale))·v_h per head, heads concatenated: q, k, v, out [B, T, C]. */
export function causalSelfAttentionStandIn(
  g: Graph,
  q: Var,
  k: Var,
  v: Var,
  opts: AttentionOptions,
): Var {
  const C = q.shape[2];
  const same = (x: Var) => x.shape.length === 3 && x.shape.every((d, i) => d === q.shape[i]);
  if (q.shape.length !== 3 || !same(k) || !same(v) || C % opts.nHead !== 0) {
    throw new ShapeError(
      `causalSelfAttention: q ${q.data.describe()}, k ${k.data.describe()}, v ` +
        `${v.data.describe()} must be one [B, T, nHead·headSize] shape (nHead ${opts.nHead})`,
    );
  }
  const hs = C / opts.nHead;
  const scale = opts.scale ?? 1 / Math.sqrt(hs);
  let out: Var | undefined;
  for (let h = 0; h < opts.nHead; h++) {
    const e = g.constant(selection(g.gpu, C, hs, h));
    const pick = (x: Var) => matmul(g, x, e);
    const scores = matmul(g, pick(q), pick(k), { transB: true });
    let weights = softmax(g, scores, { causal: true, scale });
    if (opts.dropout && opts.dropout.p > 0) {
      // Head 0 uses the site given; every other head takes a fresh one, so masks differ.
      const site = h === 0 ? opts.dropout : g.randomSite("causalSelfAttention");
      weights = dropout(g, weights, opts.dropout.p, site);
    }
    const head = matmul(g, matmul(g, weights, pick(v)), e, { transB: true });
    out = out ? add(g, out, head) : head;
  }
  return out!;
}
