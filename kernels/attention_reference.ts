/**
 * float64 references of kernels/attention.ts: causal multi-head attention forward and backward
 * on contiguous [B, T, nHead·headSize] arrays, and the dropout mask its forward draws.
 */
import { keepScale } from "./dropout.ts";
import { philox4x32, unitFloat } from "./philox.ts";

/** Dimensions of an attention call; scale defaults to 1/√headSize. */
export interface AttentionShape {
  B: number;
  T: number;
  nHead: number;
  headSize: number;
  scale?: number;
}

/**
 * The dropout factors the forward kernel draws for one step: [B, nHead, T, T], weight (i, j)
 * of row r = (b·nHead + h)·T + i kept (factor 1/(1 − p)) iff word j%4 of
 * Philox((r·⌈T/4⌉ + ⌊j/4⌋, callIndex, counter, 0)) is at least p, for j ≤ i; 0 elsewhere.
 */
export function attentionDropoutMask(
  s: AttentionShape,
  p: number,
  key: readonly [number, number],
  counter: number,
  callIndex: number,
): Float64Array {
  const { B, T, nHead } = s;
  const groups = Math.ceil(T / 4), threshold = Math.fround(p), factor = keepScale(p);
  const mask = new Float64Array(B * nHead * T * T);
  for (let row = 0; row < B * nHead * T; row++) {
    const i = row % T;
    for (let j4 = 0; 4 * j4 <= i; j4++) {
      const w = philox4x32([row * groups + j4, callIndex, counter, 0], key);
      for (let j = 4 * j4; j < Math.min(4 * j4 + 4, i + 1); j++) {
        mask[row * T + j] = unitFloat(w[j % 4]) >= threshold ? factor : 0;
      }
    }
  }
  return mask;
}

/** Index of element (b, t, h, d) in a contiguous [B, T, nHead·headSize] array. */
function at(s: AttentionShape, b: number, t: number, h: number): number {
  return (b * s.T + t) * s.nHead * s.headSize + h * s.headSize;
}

function dot(x: ArrayLike<number>, xa: number, y: ArrayLike<number>, ya: number, n: number) {
  let sum = 0;
  for (let d = 0; d < n; d++) sum += x[xa + d] * y[ya + d];
  return sum;
}

/** Softmax weights P [B, nHead, T, T] (causal, before dropout) and per-row log-sum-exp. */
function weights(s: AttentionShape, q: ArrayLike<number>, k: ArrayLike<number>) {
  const { B, T, nHead, headSize } = s;
  const scale = s.scale ?? 1 / Math.sqrt(headSize);
  const P = new Float64Array(B * nHead * T * T);
  const lse = new Float64Array(B * nHead * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHead; h++) {
      for (let i = 0; i < T; i++) {
        const row = (b * nHead + h) * T + i;
        const scores = [];
        for (let j = 0; j <= i; j++) {
          scores.push(scale * dot(q, at(s, b, i, h), k, at(s, b, j, h), headSize));
        }
        const m = Math.max(...scores);
        const total = scores.reduce((acc, x) => acc + Math.exp(x - m), 0);
        for (let j = 0; j <= i; j++) P[row * T + j] = Math.exp(scores[j] - m) / total;
        lse[row] = m + Math.log(total);
      }
    }
  }
  return { P, lse };
}

/**
 * out [B, T, C] = per head softmax(scale·q·kᵀ, causal) ⊙ mask · v, and the log-sum-exp
 * [B, nHead, T] of the scaled scores; `mask` is attentionDropoutMask's (none: all ones).
 */
export function attentionReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  s: AttentionShape,
  mask?: ArrayLike<number>,
): { out: Float64Array; lse: Float64Array } {
  const { B, T, nHead, headSize } = s;
  const { P, lse } = weights(s, q, k);
  const out = new Float64Array(B * T * nHead * headSize);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHead; h++) {
      for (let i = 0; i < T; i++) {
        const row = (b * nHead + h) * T + i, o = at(s, b, i, h);
        for (let j = 0; j <= i; j++) {
          const w = P[row * T + j] * (mask ? mask[row * T + j] : 1);
          const va = at(s, b, j, h);
          for (let d = 0; d < headSize; d++) out[o + d] += w * v[va + d];
        }
      }
    }
  }
  return { out, lse };
}

/** dq, dk, dv of Σ dOut ⊙ attentionReference(q, k, v, s, mask).out, in float64. */
export function attentionBackwardReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dOut: ArrayLike<number>,
  s: AttentionShape,
  mask?: ArrayLike<number>,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, T, nHead, headSize } = s;
  const scale = s.scale ?? 1 / Math.sqrt(headSize);
  const { P } = weights(s, q, k);
  const n = B * T * nHead * headSize;
  const dq = new Float64Array(n), dk = new Float64Array(n), dv = new Float64Array(n);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHead; h++) {
      for (let i = 0; i < T; i++) {
        const row = (b * nHead + h) * T + i, o = at(s, b, i, h);
        // d(weights after dropout) = dOut_i·v_j; through the mask and the softmax to scores.
        const dW = [];
        let total = 0;
        for (let j = 0; j <= i; j++) {
          const m = mask ? mask[row * T + j] : 1;
          dW.push(m * dot(dOut, o, v, at(s, b, j, h), headSize));
          total += dW[j] * P[row * T + j];
          const pm = P[row * T + j] * m, va = at(s, b, j, h);
          for (let d = 0; d < headSize; d++) dv[va + d] += pm * dOut[o + d];
        }
        for (let j = 0; j <= i; j++) {
          const dScore = scale * P[row * T + j] * (dW[j] - total);
          const ka = at(s, b, j, h);
          for (let d = 0; d < headSize; d++) {
            dq[o + d] += dScore * k[ka + d];
            dk[ka + d] += dScore * q[o + d];
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
