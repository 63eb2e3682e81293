/**
 * Fused log-softmax + cross-entropy: the mean loss of a batch written into a device-side loss
 * history, and optionally d(mean loss)/d(logits), in one deterministic dispatch.
 */
import source from "./cross_entropy.wgsl" with { type: "text" };
import rowStatsSource from "./row_stats.wgsl" with { type: "text" };
import { requireDisjoint, requireF32 } from "./validate.ts";
import type { Recorder } from "./program.ts";
import { LimitError, ShapeError, type Tensor } from "./tensor.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";

const WITH_GRAD_PRELUDE = `
@group(0) @binding(4) var<storage, read_write> d_logits: array<f32>;
fn write_grad(i: u32, g: f32) {
  d_logits[i] = g;
}
`;

const NO_GRAD_PRELUDE = `
fn write_grad(i: u32, g: f32) {}
`;

// The bias gradient of a classifier (logits = x·Wᵀ + b): Σ_rows d_logits, one column per
// invocation, rows in order, after every invocation's d_logits stores are visible.
const BIAS_GRAD_PRELUDE = `
@group(0) @binding(5) var<storage, read_write> d_bias: array<f32>;
override ACCUMULATE_BIAS: bool = false;
fn sum_bias_grad(li: u32) {
  storageBarrier();
  for (var col = li; col < V; col = col + 256u) {
    var s = 0.0;
    for (var r = 0u; r < N; r = r + 1u) {
      s = s + d_logits[r * V + col];
    }
    d_bias[col] = select(s, d_bias[col] + s, ACCUMULATE_BIAS);
  }
}
`;

const NO_BIAS_GRAD_PRELUDE = `
fn sum_bias_grad(li: u32) {}
`;

/** Arguments of `crossEntropy`. */
export interface CrossEntropyArgs {
  /** f32 [N, V] or [B, T, V]. */
  logits: Tensor;
  /** u32 class per row: [N] or [B, T]. */
  targets: Tensor;
  /** f32 [capacity]: the loss history; slot (counters[counterIndex] − 1) mod capacity is written. */
  losses: Tensor;
  counters: Tensor;
  counterIndex: number;
  /** When given, receives (softmax(row) − onehot(target)) / N, the gradient of the mean. */
  dLogits?: Tensor;
  /**
   * With dLogits: receives Σ_rows dLogits [V], the bias gradient of a classifier whose logits
   * are x·Wᵀ + b, in the same dispatch.
   */
  dBias?: Tensor;
  /** dBias += … instead of overwriting. */
  accumulateBias?: boolean;
}

/** Per-invocation loop iterations of the kernel for N rows of V classes (llvmpipe's budget). */
export function crossEntropyLoopCount(
  N: number,
  V: number,
  withGrad: boolean,
  withBiasGrad = false,
): number {
  const rows = Math.ceil(N / 256);
  // Each loop also pays one evaluation for its exit test.
  const perRow = V + (V + 1) + (withGrad ? V + 1 : 0) + 1;
  const cols = Math.ceil(V / 256);
  return rows * perRow + 1 + 9 + (withBiasGrad ? cols * (N + 1) + 1 : 0);
}

/** Records the mean cross-entropy of logits against targets (and its gradient if dLogits). */
export function crossEntropy(rec: Recorder, args: CrossEntropyArgs): void {
  const { logits, targets, losses, counters, counterIndex, dLogits, dBias } = args;
  const op = "crossEntropy";
  if (dBias && !dLogits) throw new ShapeError(`${op}: a bias gradient needs dLogits`);
  const outputs = [losses, ...(dLogits ? [dLogits] : []), ...(dBias ? [dBias] : [])];
  requireF32(op, logits, ...outputs);
  for (const t of [targets, counters]) {
    if (t.dtype !== "u32") throw new ShapeError(`${op}: ${t.describe()} must be u32`);
  }
  const V = logits.shape[logits.shape.length - 1] ?? 0;
  if (logits.shape.length < 2 || V === 0) {
    throw new ShapeError(`${op}: ${logits.describe()} must be [N, V] or [B, T, V] with V > 0`);
  }
  const N = logits.size / V;
  if (targets.size !== N) {
    throw new ShapeError(
      `${op}: ${targets.describe()} must hold one target per row of ${logits.describe()}`,
    );
  }
  if (N === 0) throw new ShapeError(`${op}: ${logits.describe()} has no rows to average`);
  if (dLogits && (dLogits.size !== logits.size || dLogits.shape.at(-1) !== V)) {
    throw new ShapeError(
      `${op}: ${dLogits.describe()} must have the shape of ${logits.describe()}`,
    );
  }
  if (dBias && (dBias.shape.length !== 1 || dBias.shape[0] !== V)) {
    throw new ShapeError(`${op}: bias gradient ${dBias.describe()} must be [${V}]`);
  }
  if (losses.size === 0) throw new ShapeError(`${op}: ${losses.describe()} has no slots`);
  if (!Number.isInteger(counterIndex) || counterIndex < 0 || counterIndex >= counters.size) {
    throw new ShapeError(`${op}: counter slot ${counterIndex} outside ${counters.describe()}`);
  }
  requireDisjoint(op, outputs, [logits, targets, counters]);
  if (dLogits && dBias) requireDisjoint(op, [dBias], [dLogits, losses]);
  const loops = crossEntropyLoopCount(N, V, dLogits !== undefined, dBias !== undefined);
  if (loops > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `${op}: ${logits.describe()} (N=${N} rows, V=${V}) needs ${loops} loop iterations per ` +
        `invocation of its single workgroup, above llvmpipe's limit of ${MAX_LOOP_ITERATIONS}`,
    );
  }
  const code = (dLogits ? WITH_GRAD_PRELUDE : NO_GRAD_PRELUDE) +
    (dBias ? BIAS_GRAD_PRELUDE : NO_BIAS_GRAD_PRELUDE) + rowStatsSource + source;
  rec.dispatch(
    {
      name: dBias ? "cross_entropy_bias" : "cross_entropy",
      code,
      constants: {
        N,
        V,
        CAPACITY: losses.size,
        COUNTER: counterIndex,
        WITH_GRAD: dLogits ? 1 : 0,
        ...(dBias ? { ACCUMULATE_BIAS: args.accumulateBias ? 1 : 0 } : {}),
      },
    },
    [logits, targets, counters, losses, ...(dLogits ? [dLogits] : []), ...(dBias ? [dBias] : [])],
    1,
  );
}

/** Float64 reference: mean over rows of logsumexp(row) − row[target], and its gradient. */
export function crossEntropyReference(
  logits: ArrayLike<number>,
  targets: ArrayLike<number>,
  N: number,
  V: number,
): { loss: number; dLogits: Float64Array } {
  const dLogits = new Float64Array(N * V);
  let total = 0;
  for (let r = 0; r < N; r++) {
    const target = targets[r];
    if (target >= V) {
      throw new RangeError(`crossEntropyReference: target ${target} at ${r} ≥ V = ${V}`);
    }
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, logits[r * V + j]);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(logits[r * V + j] - m);
    const lse = m + Math.log(s);
    total += lse - logits[r * V + target];
    for (let j = 0; j < V; j++) {
      dLogits[r * V + j] = (Math.exp(logits[r * V + j] - lse) - (j === target ? 1 : 0)) / N;
    }
  }
  return { loss: total / N, dLogits };
}
