/**
 * Float64 reference of the fused attention_head step (kernels/fused_attention_head.ts): the
 * lecture's forward pass, its gradient written out by hand, and AdamW.
 */
import { adamwReference } from "./adamw.ts";
import { sampleBatchReference } from "./batch.ts";
import type { AttentionHeadShape, AttentionHeadWeights } from "./fused_attention_head_plan.ts";

/** Float64 values of the model's parameters, keyed as AttentionHeadWeights. */
export type AttentionHeadValues = Record<keyof AttentionHeadWeights, Float64Array>;

/**
 * Float64 reference of one training step with batch counter `c` (before the increment): the
 * lecture's forward, its gradient, and AdamW step c + 1. Mutates values, m and v; returns the
 * mean loss. With `lr` 0 and no moments it is the evaluation loss.
 */
export function fusedAttentionHeadStepReference(
  tokens: Uint32Array,
  w: AttentionHeadValues,
  moments: { m: AttentionHeadValues; v: AttentionHeadValues } | undefined,
  o: AttentionHeadShape & {
    key: readonly [number, number];
    c: number;
    lr: number;
    weightDecay: number;
  },
): number {
  const { B, T, C, H, V } = o;
  const { inputs, targets } = sampleBatchReference(tokens, B, T, o.key, o.c);
  const g = Object.fromEntries(
    Object.entries(w).map(([k, x]) => [k, new Float64Array(x.length)]),
  ) as AttentionHeadValues;
  const scale = 1 / Math.sqrt(H);
  const N = B * T;
  let loss = 0;
  for (let b = 0; b < B; b++) {
    const ids = inputs.subarray(b * T, b * T + T);
    const x = new Float64Array(T * C);
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) x[t * C + c] = w.tokens[ids[t] * C + c] + w.positions[t * C + c];
    }
    const lin = (W: Float64Array) => {
      const y = new Float64Array(T * H);
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) {
          let s = 0;
          for (let c = 0; c < C; c++) s += x[t * C + c] * W[h * C + c];
          y[t * H + h] = s;
        }
      }
      return y;
    };
    const k = lin(w.keyWeight), q = lin(w.queryWeight), v = lin(w.valueWeight);
    const wei = new Float64Array(T * T);
    for (let i = 0; i < T; i++) {
      let m = -Infinity;
      const s = new Float64Array(i + 1);
      for (let j = 0; j <= i; j++) {
        let d = 0;
        for (let h = 0; h < H; h++) d += q[i * H + h] * k[j * H + h];
        s[j] = d * scale;
        m = Math.max(m, s[j]);
      }
      let total = 0;
      for (let j = 0; j <= i; j++) total += Math.exp(s[j] - m);
      for (let j = 0; j <= i; j++) wei[i * T + j] = Math.exp(s[j] - m) / total;
    }
    const out = new Float64Array(T * H);
    for (let i = 0; i < T; i++) {
      for (let j = 0; j <= i; j++) {
        for (let h = 0; h < H; h++) out[i * H + h] += wei[i * T + j] * v[j * H + h];
      }
    }
    const dl = new Float64Array(T * V);
    for (let t = 0; t < T; t++) {
      const row = new Float64Array(V);
      let m = -Infinity;
      for (let u = 0; u < V; u++) {
        let s = w.lmBias[u];
        for (let h = 0; h < H; h++) s += out[t * H + h] * w.lmWeight[u * H + h];
        row[u] = s;
        m = Math.max(m, s);
      }
      let total = 0;
      for (let u = 0; u < V; u++) total += Math.exp(row[u] - m);
      const lse = m + Math.log(total);
      const y = targets[b * T + t];
      loss += lse - row[y];
      for (let u = 0; u < V; u++) dl[t * V + u] = (Math.exp(row[u] - lse) - (u === y ? 1 : 0)) / N;
    }
    const dout = new Float64Array(T * H);
    for (let t = 0; t < T; t++) {
      for (let u = 0; u < V; u++) {
        const d = dl[t * V + u];
        g.lmBias[u] += d;
        for (let h = 0; h < H; h++) {
          g.lmWeight[u * H + h] += d * out[t * H + h];
          dout[t * H + h] += d * w.lmWeight[u * H + h];
        }
      }
    }
    const dv = new Float64Array(T * H), dq = new Float64Array(T * H), dk = new Float64Array(T * H);
    for (let i = 0; i < T; i++) {
      const dw = new Float64Array(i + 1);
      let dot = 0;
      for (let j = 0; j <= i; j++) {
        for (let h = 0; h < H; h++) {
          dw[j] += dout[i * H + h] * v[j * H + h];
          dv[j * H + h] += wei[i * T + j] * dout[i * H + h];
        }
        dot += dw[j] * wei[i * T + j];
      }
      for (let j = 0; j <= i; j++) {
        const ds = scale * wei[i * T + j] * (dw[j] - dot);
        for (let h = 0; h < H; h++) {
          dq[i * H + h] += ds * k[j * H + h];
          dk[j * H + h] += ds * q[i * H + h];
        }
      }
    }
    for (
      const [d, W, gW] of [[dk, w.keyWeight, g.keyWeight], [dq, w.queryWeight, g.queryWeight], [
        dv,
        w.valueWeight,
        g.valueWeight,
      ]]
    ) {
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) {
          for (let c = 0; c < C; c++) {
            const dx = d[t * H + h] * W[h * C + c];
            gW[h * C + c] += d[t * H + h] * x[t * C + c];
            g.tokens[ids[t] * C + c] += dx;
            g.positions[t * C + c] += dx;
          }
        }
      }
    }
  }
  if (moments) {
    for (const name of Object.keys(w) as (keyof AttentionHeadValues)[]) {
      adamwReference(w[name], g[name], moments.m[name], moments.v[name], o.c + 1, {
        lr: o.lr,
        weightDecay: o.weightDecay,
      });
    }
  }
  return loss / N;
}
