/**
 * Planning for the fused attention_head kernels (kernels/fused_attention_head.ts): the model's
 * shape, the loop counts llvmpipe's limit is checked against, the scratch layout, and whether a
 * shape can run fused at all. Kept apart from the dispatch code so that an experiment can ask
 * `planFusedAttentionHead` without reading how the kernels are recorded.
 */
import type { Gpu } from "./device.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";
import type { Tensor } from "./tensor.ts";
import { tuningFor } from "./tuning.ts";

/** The model's dimensions: batch B, block T, embedding C, head H, vocabulary V. */
export interface AttentionHeadShape {
  B: number;
  T: number;
  C: number;
  H: number;
  V: number;
}

/** Where a fused step keeps a sequence's activations, or why it cannot run. */
export type FusedAttentionHeadPlan =
  | { ok: true; store: "workgroup" | "storage"; loops: number }
  | { ok: false; reason: string };

/** Logit rows padded to whole 8-wide tiles. */
function paddedVocab(V: number): number {
  return Math.ceil(V / 8) * 8;
}

/** Floats of one sequence's activations (the layout at the top of the .wgsl file). */
export function activationFloats({ T, C, H, V }: AttentionHeadShape): number {
  return T * C + 8 * T * H + 4 * T * T + 2 * T * paddedVocab(V) + 2 * T;
}

/**
 * SIMD rows of work units of the `update` kernel (ROWS in the .wgsl file): each kind of unit
 * padded to whole rows of 8, the two weight-tile kinds together.
 */
export function updateRows({ T, C, H, V }: AttentionHeadShape): number {
  const VP = paddedVocab(V);
  const rows = (units: number) => Math.ceil(units / 8);
  return rows((VP / 8) * (H / 8) + 3 * (H / 8) * (C / 8)) + rows((VP / 8) * (C / 4)) +
    rows(VP / 4) + rows(T * C / 4);
}

/**
 * Upper bound on the loop iterations one invocation of the `sequence` kernel runs (each loop
 * also pays one evaluation of its exit test), phase by phase as in the .wgsl file.
 */
export function sequenceLoopCount(s: AttentionHeadShape, withGrad: boolean, wg: number) {
  const { T, C, H, V } = s;
  const VP = paddedVocab(V);
  const phase = (items: number, inner: number) => Math.ceil(items / wg) * (inner + 2) + 1;
  // An 8×8 tile's store is a loop of 8 rows (store_tile8).
  const store8 = 9;
  let n = phase(T, 0) + phase(T * C / 4, 0) + phase(3 * (T / 8) * (H / 8), C / 4 + store8) +
    phase((T / 4) ** 2, H / 4) + phase(T, 2 * T + T / 4 + 3) + phase((T / 4) * (H / 4), T) +
    phase((T / 8) * (VP / 8), H / 4 + store8) + phase(T, VP / 2) + T + 1;
  if (withGrad) {
    // d(out) and d(x) tiles have 4 or 8 rows (DO_ROWS, DX_ROWS); 4 is the upper bound.
    n += phase((T / 4) * (VP / 4), 0) + phase((T / 4) * (H / 8), V) +
      phase((T / 4) ** 2 + (T / 4) * (H / 4), Math.max(H / 4, T)) + phase(T, T + T / 4 + 1) +
      phase(2 * (T / 4) * (H / 4), T) + phase((T / 4) * (C / 8), 4 * H + 1);
  }
  return n;
}

/**
 * Upper bound on the loop iterations of one invocation of the `update` kernel: one unit (its
 * sum over all B·T positions, then AdamW over at most 8 rows of two vec4s), and the loss sum.
 */
function updateLoopCount(s: AttentionHeadShape): number {
  return 2 * (s.B * s.T + 1 + 8 * 3 + 1) + s.B + 4;
}

/**
 * Whether the fused kernels can run a shape on `gpu`: activations in workgroup memory when
 * they fit maxComputeWorkgroupStorageSize, else in a storage scratch buffer; not at all when
 * an invocation would pass llvmpipe's loop limit or the scratch would pass the binding limit.
 */
export function planFusedAttentionHead(
  gpu: Gpu,
  s: AttentionHeadShape,
  forceStorage = false,
): FusedAttentionHeadPlan {
  for (const [name, n] of [["blockSize", s.T], ["nEmbd", s.C], ["headSize", s.H]] as const) {
    // The kernels' 8×8 register tiles need whole tiles along every axis but V's (padded).
    if (n % 8 !== 0) return { ok: false, reason: `${name} = ${n} is not a multiple of 8` };
  }
  const wg = tuningFor(gpu.adapter).sequenceWorkgroupSize;
  const loops = Math.max(sequenceLoopCount(s, true, wg), updateLoopCount(s));
  if (loops > MAX_LOOP_ITERATIONS) {
    return {
      ok: false,
      reason: `an invocation would run ${loops} loop iterations, above llvmpipe's limit of ` +
        `${MAX_LOOP_ITERATIONS}`,
    };
  }
  // ids and targets are u32 workgroup arrays of T each, next to the activations.
  const workgroupBytes = 4 * (activationFloats(s) + 2 * s.T);
  const store = workgroupBytes <= gpu.limits.maxComputeWorkgroupStorageSize && !forceStorage
    ? "workgroup"
    : "storage";
  const bytes = 4 * scratchLayout(s, store).words;
  if (bytes > gpu.limits.maxStorageBufferBindingSize) {
    return {
      ok: false,
      reason: `its scratch buffer of ${bytes} bytes exceeds maxStorageBufferBindingSize ` +
        `(${gpu.limits.maxStorageBufferBindingSize})`,
    };
  }
  return { ok: true, store, loops };
}

/** Where the scratch buffer keeps the loss, the per-position gradients and the activations. */
export function scratchLayout(s: AttentionHeadShape, store: "workgroup" | "storage") {
  const lossAt = 4;
  const gAt = Math.ceil((lossAt + s.B) / 4) * 4;
  const N = s.B * s.T;
  const perPosition = N * (2 * s.C + 4 * s.H + paddedVocab(s.V)) + Math.ceil(N / 4) * 4;
  const actAt = gAt + perPosition;
  const words = actAt + (store === "storage" ? s.B * activationFloats(s) : 0);
  return { lossAt, gAt, actAt, words };
}

/** The model's parameters: views into one arena (the ParamStore's). */
export interface AttentionHeadWeights {
  /** token_embedding_table.weight [V, C] */
  tokens: Tensor;
  /** position_embedding_table.weight [T, C] */
  positions: Tensor;
  /** sa_head.{key,query,value}.weight [H, C] */
  keyWeight: Tensor;
  queryWeight: Tensor;
  valueWeight: Tensor;
  /** lm_head.weight [V, H] and lm_head.bias [V] */
  lmWeight: Tensor;
  lmBias: Tensor;
}
