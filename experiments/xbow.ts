/**
 * The averaging trick of the lecture done every way: x[b,t] = mean(x[b,0..t]) by an explicit
 * loop (the reference), by tril-normalised weights @ x, by a masked softmax of zeros @ x, by
 * the cumulative-mean kernel, and the single-head forward of the notebook against its
 * reference. Each device result must agree with the loop within the bounds below.
 */
import { z } from "zod";
import { cumulativeMean } from "../kernels/cumulative_mean.ts";
import { matmul } from "../kernels/matmul.ts";
import { streamKey } from "../kernels/philox.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import { fillNormal } from "../kernels/random_fill.ts";
import { softmax } from "../kernels/softmax.ts";
import type { Gpu } from "../kernels/device.ts";
import { createTensor, LimitError, readF32 } from "../kernels/tensor.ts";
import { Graph } from "../nn/graph.ts";
import { Head } from "../nn/modules.ts";
import { ParamStore } from "../nn/params.ts";
import type { CheckExperiment } from "./types.ts";

const schema = z.object({
  shape: z.object({
    B: z.number().int().positive().default(4),
    T: z.number().int().positive().default(8),
    C: z.number().int().positive().default(2),
  }).prefault({}),
  head: z.object({
    headSize: z.number().int().positive().default(16),
  }).prefault({}),
});

type XbowConfig = z.infer<typeof schema>;

/** The bounds the device results must meet against the float64 loop. */
export const XBOW_BOUNDS = {
  maxAbsDiffTril: 1e-6,
  maxAbsDiffSoftmax: 1e-6,
  maxAbsDiffCumulative: 1e-6,
  maxAbsDiffHead: 1e-5,
} as const;

/**
 * The bounds `final` exceeds, as sentences (empty: pass). A missing or NaN measurement fails
 * too, so a broken comparison can never pass.
 */
export function xbowFailures(final: Readonly<Record<string, number>>): string[] {
  return Object.entries(XBOW_BOUNDS)
    .filter(([key, bound]) => !(final[key] <= bound))
    .map(([key, bound]) => `${key} = ${final[key]} > ${bound}`);
}

/** x̄[b,t,c] = mean over t' ≤ t of x[b,t',c], by the explicit loop of the notebook. */
export function loopAverage(x: Float32Array, B: number, T: number, C: number): Float64Array {
  const out = new Float64Array(B * T * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) {
        let sum = 0;
        for (let s = 0; s <= t; s++) sum += x[(b * T + s) * C + c];
        out[(b * T + t) * C + c] = sum / (t + 1);
      }
    }
  }
  return out;
}

/**
 * The [B, T, T] weight matrices are the largest buffers (and host arrays) xbow makes: checked
 * before anything is allocated, so an oversized T is a one-line error naming the largest T
 * that fits instead of a failed allocation.
 */
export function checkXbowFits(gpu: Gpu, B: number, T: number): void {
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  if (B * T * T * 4 <= limit) return;
  const largestT = Math.floor(Math.sqrt(limit / (4 * B)));
  throw new LimitError(
    `xbow: the [B, T, T] = [${B}, ${T}, ${T}] weights need ${B * T * T * 4} bytes, above the ` +
      `device's buffer limit of ${limit}; the largest shape.T that fits with shape.B=${B} is ` +
      `${largestT}`,
  );
}

/** Single-head causal attention in float64: softmax(mask(q·kᵀ)/√hs)·v with q,k,v = x·Wᵀ. */
export function headReference(
  x: Float32Array,
  wk: Float32Array,
  wq: Float32Array,
  wv: Float32Array,
  B: number,
  T: number,
  C: number,
  hs: number,
): Float64Array {
  const proj = (w: Float32Array) => {
    const out = new Float64Array(B * T * hs);
    for (let r = 0; r < B * T; r++) {
      for (let h = 0; h < hs; h++) {
        let s = 0;
        for (let c = 0; c < C; c++) s += x[r * C + c] * w[h * C + c];
        out[r * hs + h] = s;
      }
    }
    return out;
  };
  const k = proj(wk), q = proj(wq), v = proj(wv);
  const out = new Float64Array(B * T * hs);
  const scale = 1 / Math.sqrt(hs);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const scores = new Float64Array(t + 1);
      let max = -Infinity;
      for (let s = 0; s <= t; s++) {
        let dot = 0;
        for (let h = 0; h < hs; h++) dot += q[(b * T + t) * hs + h] * k[(b * T + s) * hs + h];
        scores[s] = dot * scale;
        max = Math.max(max, scores[s]);
      }
      let denom = 0;
      for (let s = 0; s <= t; s++) denom += scores[s] = Math.exp(scores[s] - max);
      for (let h = 0; h < hs; h++) {
        let acc = 0;
        for (let s = 0; s <= t; s++) acc += scores[s] / denom * v[(b * T + s) * hs + h];
        out[(b * T + t) * hs + h] = acc;
      }
    }
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** The xbow experiment. */
export const xbow: CheckExperiment<XbowConfig> = {
  kind: "check",
  name: "xbow",
  summary:
    "averaging trick: loop vs tril matmul vs masked softmax vs kernel; one head vs reference",
  schema,
  async run(gpu, config, seed) {
    const { B, T, C } = config.shape;
    const hs = config.head.headSize;
    checkXbowFits(gpu, B, T);
    const x = createTensor(gpu, [B, T, C], "f32", "x");
    const store = new ParamStore(gpu);
    const head = new Head(store, "head", C, hs);
    store.finalize();
    // Counter word 1000 keeps x apart from the head's parameter streams (indices 0..2).
    await runOnce(gpu, (rec) => {
      fillNormal(rec, x, streamKey(seed, "init"), 1000, 0, 1);
      store.recordInit(rec, seed);
    });

    // tril(ones) normalised by row sums, replicated per batch.
    const tril = new Float32Array(B * T * T);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        for (let s = 0; s <= t; s++) tril[(b * T + t) * T + s] = 1 / (t + 1);
      }
    }
    const wTril = createTensor(gpu, [B, T, T], "f32", "wei.tril", tril);
    const zeros = createTensor(gpu, [B, T, T], "f32", "wei.zeros", new Float32Array(B * T * T));
    const wSoftmax = createTensor(gpu, [B, T, T], "f32", "wei.softmax");
    const viaTril = createTensor(gpu, [B, T, C], "f32", "xbow2");
    const viaSoftmax = createTensor(gpu, [B, T, C], "f32", "xbow3");
    const viaKernel = createTensor(gpu, [B, T, C], "f32", "xbow.kernel");
    const rec = new Recorder(gpu);
    matmul(rec, wTril, x, viaTril);
    softmax(rec, zeros, wSoftmax, { causal: true });
    matmul(rec, wSoftmax, x, viaSoftmax);
    cumulativeMean(rec, x, viaKernel);
    const g = new Graph(rec, false);
    const headOut = head.call(g, g.constant(x));
    await (await rec.finish()).run();

    const xs = await readF32(x);
    const reference = loopAverage(xs, B, T, C);
    const params = await store.read();
    const headWant = headReference(
      xs,
      params.get("head.key.weight")!,
      params.get("head.query.weight")!,
      params.get("head.value.weight")!,
      B,
      T,
      C,
      hs,
    );
    const final = {
      maxAbsDiffTril: maxAbsDiff(await readF32(viaTril), reference),
      maxAbsDiffSoftmax: maxAbsDiff(await readF32(viaSoftmax), reference),
      maxAbsDiffCumulative: maxAbsDiff(await readF32(viaKernel), reference),
      maxAbsDiffHead: maxAbsDiff(await readF32(headOut.data), headWant),
    };
    return { final, failures: xbowFailures(final) };
  },
};
