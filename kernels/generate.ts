/**
 * Generation on the device: `contextWindow` builds the model's input from the tokens so far and
 * `sampleNext` draws the next token from the logits, so one recorded plan (window → model →
 * sample) replays once per token with no readback until the end.
 */
import philoxSource from "./philox.wgsl" with { type: "text" };
import sampleSource from "./generate.wgsl" with { type: "text" };
import rowStatsSource from "./row_stats.wgsl" with { type: "text" };
import windowSource from "./generate.window.wgsl" with { type: "text" };
import { Counter } from "./counters.ts";
import { requireDisjoint, requireF32 } from "./validate.ts";
import { grid1d } from "./grid.ts";
import { type Recorder, uniformU32 } from "./program.ts";
import { LimitError, ShapeError, type Tensor } from "./tensor.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";

const sampleCode = philoxSource + rowStatsSource + sampleSource;

function requireU32(op: string, ...tensors: Tensor[]): void {
  for (const t of tensors) {
    if (t.dtype !== "u32") throw new ShapeError(`${op}: ${t.describe()} must be u32`);
  }
}

function requireSlot(op: string, counters: Tensor, slot: number): void {
  if (!Number.isInteger(slot) || slot < 0 || slot >= counters.size) {
    throw new ShapeError(`${op}: counter slot ${slot} outside ${counters.describe()}`);
  }
}

/** Arguments of `contextWindow`. */
export interface ContextWindowArgs {
  /** u32 [L]: generated[0] is the start token, generated[1..pos] the tokens drawn so far. */
  generated: Tensor;
  counters: Tensor;
  /** Output u32 [T] (or [1, T]): the model's input. */
  idx: Tensor;
  /** Counters slot holding the position (default Counter.genPos). */
  counterIndex?: number;
}

/** Records idx[t] = generated[min(max(0, pos + 1 − T) + t, pos)] with pos = counters[genPos]. */
export function contextWindow(rec: Recorder, args: ContextWindowArgs): void {
  const op = "contextWindow";
  const { generated, counters, idx } = args;
  const counterIndex = args.counterIndex ?? Counter.genPos;
  requireU32(op, generated, counters, idx);
  requireSlot(op, counters, counterIndex);
  if (generated.size === 0) throw new ShapeError(`${op}: ${generated.describe()} is empty`);
  requireDisjoint(op, [idx], [generated, counters]);
  if (idx.size === 0) return;
  rec.dispatch(
    {
      name: "context_window",
      code: windowSource,
      constants: { T: idx.size, L: generated.size, COUNTER: counterIndex },
    },
    [generated, counters, idx],
    grid1d(idx.size, 64),
  );
}

/** Arguments of `sampleNext`. */
export interface SampleNextArgs {
  /** f32 [T, V] (or [1, T, V]): logits for the window `contextWindow` built. */
  logits: Tensor;
  counters: Tensor;
  /** Philox key of the stream (e.g. `streamKey(seed, "sample")`). */
  key: readonly [number, number];
  /** u32 [L]: receives the draw at pos + 1 (dropped when pos + 1 ≥ L). */
  generated: Tensor;
  /** Counters slot holding the position (default Counter.genPos). */
  counterIndex?: number;
}

/** Per-invocation loop iterations of `sampleNext` for V classes (llvmpipe's budget). */
export function sampleNextLoopCount(V: number): number {
  // Three passes over the row, each with its exit test, plus Philox's ten rounds.
  return V + (V + 1) + (V + 1) + 11;
}

/** Records one draw from softmax(logits[min(pos, T − 1)]); generated[pos + 1] = it; pos += 1. */
export function sampleNext(rec: Recorder, args: SampleNextArgs): void {
  const op = "sampleNext";
  const { logits, counters, key, generated } = args;
  const counterIndex = args.counterIndex ?? Counter.genPos;
  requireF32(op, logits);
  requireU32(op, counters, generated);
  requireSlot(op, counters, counterIndex);
  const V = logits.shape[logits.shape.length - 1] ?? 0;
  if (logits.shape.length < 2 || V === 0 || logits.size === 0) {
    throw new ShapeError(`${op}: ${logits.describe()} must be [T, V] with T, V > 0`);
  }
  const T = logits.size / V;
  if (generated.size === 0) throw new ShapeError(`${op}: ${generated.describe()} is empty`);
  requireDisjoint(op, [counters, generated], [logits]);
  const loops = sampleNextLoopCount(V);
  if (loops > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `${op}: ${logits.describe()} (V=${V}) needs ${loops} loop iterations in one invocation, ` +
        `above llvmpipe's limit of ${MAX_LOOP_ITERATIONS}`,
    );
  }
  const params = uniformU32(rec.gpu, [key[0], key[1]], "sample_next.key");
  rec.dispatch(
    {
      name: "sample_next",
      code: sampleCode,
      constants: { T, V, L: generated.size, COUNTER: counterIndex },
    },
    [logits, counters, generated, params],
    1,
  );
}

/** Reference for `contextWindow`: the T-token input at position pos. */
export function contextWindowReference(
  generated: ArrayLike<number>,
  pos: number,
  T: number,
): Uint32Array {
  const start = Math.max(0, pos + 1 - T);
  return Uint32Array.from({ length: T }, (_, t) => generated[Math.min(start + t, pos)]);
}

/** Reference for `sampleNext`'s draw: first index whose cumulative softmax exceeds u. */
export function sampleNextReference(logitsRow: Float32Array, u: number): number {
  let m = -Infinity;
  for (const x of logitsRow) m = Math.max(m, x);
  let s = 0;
  for (const x of logitsRow) s += Math.exp(x - m);
  let cumulative = 0;
  for (let j = 0; j < logitsRow.length; j++) {
    cumulative += Math.exp(logitsRow[j] - m) / s;
    if (cumulative > u) return j;
  }
  return logitsRow.length - 1;
}
