/**
 * The batch sampler: B random windows of a token split, drawn on the device from the Philox
 * stream and the batch counter, so a captured training step replays with no host data.
 */
import philoxSource from "./philox.wgsl" with { type: "text" };
import batchSource from "./batch.wgsl" with { type: "text" };
import { requireDisjoint } from "./validate.ts";
import { philox4x32 } from "./philox.ts";
import { type Recorder, uniformU32 } from "./program.ts";
import { LimitError, ShapeError, type Tensor } from "./tensor.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";

const code = philoxSource + batchSource;

/** Arguments of `sampleBatch`. */
export interface SampleBatchArgs {
  /** The token split, u32 [N]. */
  tokens: Tensor;
  /** Device counters; slot `counterIndex` is read as the batch number, then incremented. */
  counters: Tensor;
  counterIndex: number;
  /** Philox key of the stream (e.g. `streamKey(seed, "train")`). */
  key: readonly [number, number];
  /** Output u32 [B, T]: tokens[offset_b + t]. */
  inputs: Tensor;
  /** Output u32 [B, T]: tokens[offset_b + t + 1]. */
  targets: Tensor;
}

/**
 * Where a fused training or evaluation kernel draws its batch and writes its loss: the fields
 * the harness hands to every model's fused step (experiments/types.ts's BatchStep adds the
 * recorder).
 */
export interface DeviceBatch {
  /** The token split, u32 [N]. */
  tokens: Tensor;
  /** Device counters; slot `counterIndex` is read as the batch number, then incremented. */
  counters: Tensor;
  counterIndex: number;
  /** Philox key of the batch stream (e.g. `streamKey(seed, "train")`). */
  key: readonly [number, number];
  batchSize: number;
  blockSize: number;
  /** f32 loss history: slot (batch number before the increment) mod capacity is written. */
  losses: Tensor;
}

/** Checks what a fused kernel's batch must satisfy whatever the model: tokens, counter, losses. */
export function checkDeviceBatch(op: string, args: DeviceBatch): void {
  const { tokens, counters, counterIndex, losses, blockSize: T } = args;
  if (tokens.size < T + 1) {
    throw new ShapeError(
      `${op}: ${tokens.describe()} holds ${tokens.size} tokens; a window of T + 1 = ${T + 1} ` +
        `needs at least that many`,
    );
  }
  if (!Number.isInteger(counterIndex) || counterIndex < 0 || counterIndex >= counters.size) {
    throw new ShapeError(`${op}: counter slot ${counterIndex} outside ${counters.describe()}`);
  }
  if (losses.size === 0) throw new ShapeError(`${op}: ${losses.describe()} has no slots`);
}

/** Records one batch draw: row b starts at philox((b, c, 0, 0), key).x mod (N − T); c += 1. */
export function sampleBatch(rec: Recorder, args: SampleBatchArgs): void {
  const { tokens, counters, counterIndex, key, inputs, targets } = args;
  for (const t of [tokens, counters, inputs, targets]) {
    if (t.dtype !== "u32") throw new ShapeError(`sampleBatch: ${t.describe()} must be u32`);
  }
  if (inputs.shape.length !== 2) {
    throw new ShapeError(`sampleBatch: ${inputs.describe()} must be [B, T]`);
  }
  const [B, T] = inputs.shape;
  if (targets.shape.length !== 2 || targets.shape[0] !== B || targets.shape[1] !== T) {
    throw new ShapeError(
      `sampleBatch: ${targets.describe()} must have the shape of inputs [${B}, ${T}]`,
    );
  }
  const N = tokens.size;
  const window = T + 1;
  if (N < window) {
    throw new ShapeError(
      `sampleBatch: ${tokens.describe()} holds ${N} tokens; a window of T + 1 = ${window} ` +
        `needs at least that many`,
    );
  }
  if (!Number.isInteger(counterIndex) || counterIndex < 0 || counterIndex >= counters.size) {
    throw new ShapeError(
      `sampleBatch: counter slot ${counterIndex} outside ${counters.describe()}`,
    );
  }
  requireDisjoint("sampleBatch", [inputs, targets, counters], [tokens]);
  // Philox's 10 rounds + the token loop per row, rows strided over 256 invocations.
  const loops = Math.ceil(B / 256) * (11 + T + 1) + 1;
  if (loops > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `sampleBatch: [B=${B}, T=${T}] needs ${loops} loop iterations per invocation, above ` +
        `llvmpipe's limit of ${MAX_LOOP_ITERATIONS}`,
    );
  }
  const params = uniformU32(rec.gpu, [key[0], key[1]], "sample_batch.key");
  rec.dispatch(
    { name: "sample_batch", code, constants: { N, B, T, COUNTER: counterIndex } },
    [tokens, counters, inputs, targets, params],
    1,
  );
}

/** Reference for `sampleBatch` with batch counter `c` (before the increment). */
export function sampleBatchReference(
  tokens: Uint32Array,
  B: number,
  T: number,
  key: readonly [number, number],
  c: number,
): { inputs: Uint32Array; targets: Uint32Array } {
  const N = tokens.length;
  if (N < T + 1) throw new ShapeError(`sampleBatchReference: ${N} tokens < T + 1 = ${T + 1}`);
  const inputs = new Uint32Array(B * T);
  const targets = new Uint32Array(B * T);
  for (let b = 0; b < B; b++) {
    const offset = philox4x32([b, c, 0, 0], key)[0] % (N - T);
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = tokens[offset + t];
      targets[b * T + t] = tokens[offset + t + 1];
    }
  }
  return { inputs, targets };
}
