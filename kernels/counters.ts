/**
 * Device-side counters: the state that lets a captured step replay with no host data.
 * The batch sampler reads its counter and increments it, so every later kernel of the same
 * step sees the 1-based number of batches drawn (AdamW uses it as the bias-correction step t).
 */
import type { Gpu } from "./device.ts";
import { createTensor, type Tensor } from "./tensor.ts";

/** Slots of the counters tensor. */
export const Counter = {
  /** Training batches drawn so far (= optimizer steps started). */
  trainBatch: 0,
  /** Evaluation batches drawn so far (train and val estimates share the eval stream). */
  evalBatch: 1,
  /** Index of the last generated token. */
  genPos: 2,
} as const;

/** Number of u32 slots in a counters tensor. */
export const COUNTER_SLOTS = 8;

/** Allocates a zeroed counters tensor. */
export function createCounters(gpu: Gpu, initial: readonly number[] = []): Tensor {
  const values = new Array(COUNTER_SLOTS).fill(0);
  initial.forEach((v, i) => values[i] = v);
  return createTensor(gpu, [COUNTER_SLOTS], "u32", "counters", values);
}
