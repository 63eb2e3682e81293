/**
 * Dropout whose mask is drawn on the device from Philox4x32-10: a function of the run's key,
 * the call site, a step counter held in a GPU buffer, and the element index, so a captured
 * training step replays with a new mask each step and no host data.
 */
import philoxSource from "./philox.wgsl" with { type: "text" };
import source from "./dropout.wgsl" with { type: "text" };
import { mul } from "./elementwise.ts";
import { requireDisjoint, requireF32, requireSameShape } from "./validate.ts";
import { grid1d } from "./grid.ts";
import { philox4x32, unitFloat } from "./philox.ts";
import { f32Bits, type Recorder, uniformU32 } from "./program.ts";
import { ShapeError, type Tensor } from "./tensor.ts";

/** Where dropout's randomness comes from. */
export interface DropoutArgs {
  /** Probability of zeroing an element, in [0, 1]. */
  p: number;
  /** Philox key (the run's dropout stream: `streamKey(seed, "dropout")`). */
  key: readonly [number, number];
  /** u32 tensor of device counters; the step counter is read on the device at replay time. */
  counters: Tensor;
  /** Slot of `counters` holding the step counter. */
  counterIndex: number;
  /** Distinct number per dropout site within a step, so sites draw independent masks. */
  callIndex: number;
}

const code = philoxSource + source;

/** 1/(1 − p) as the kernel stores it (f32), 0 when everything is dropped. */
export function keepScale(p: number): number {
  return p < 1 ? Math.fround(1 / (1 - p)) : 0;
}

/**
 * Records mask = keep ? 1/(1−p) : 0 (f32) and out = x ⊙ mask, keeping element i iff its Philox
 * draw (word i%4 of counter (i/4, callIndex, counters[counterIndex], 0)) is at least p.
 */
export function dropout(
  rec: Recorder,
  x: Tensor,
  out: Tensor,
  mask: Tensor,
  args: DropoutArgs,
): void {
  requireF32("dropout", x, out, mask);
  requireSameShape("dropout", x, out);
  requireSameShape("dropout", x, mask);
  requireDisjoint("dropout", [out, mask], [x, args.counters]);
  if (!(args.p >= 0 && args.p <= 1)) {
    throw new RangeError(`dropout: p = ${args.p} is not in [0, 1]`);
  }
  if (args.counters.dtype !== "u32") {
    throw new ShapeError(`dropout: counters ${args.counters.describe()} must be u32`);
  }
  if (
    !Number.isInteger(args.counterIndex) || args.counterIndex < 0 ||
    args.counterIndex >= args.counters.size
  ) {
    throw new ShapeError(
      `dropout: counterIndex ${args.counterIndex} is outside counters ${args.counters.describe()}`,
    );
  }
  if (x.size === 0) return;
  const params = uniformU32(rec.gpu, [
    args.key[0] >>> 0,
    args.key[1] >>> 0,
    args.callIndex >>> 0,
    args.counterIndex,
    x.size,
    f32Bits(args.p),
    f32Bits(keepScale(args.p)),
  ], "dropout.params");
  rec.dispatch(
    { name: "dropout", code },
    [x, out, mask, args.counters, params],
    grid1d(Math.ceil(x.size / 4), 64),
  );
}

/** Records dX = dOut ⊙ mask (dX += … when `accumulate`), with the mask `dropout` stored. */
export function dropoutBackward(
  rec: Recorder,
  dOut: Tensor,
  mask: Tensor,
  dX: Tensor,
  accumulate = false,
): void {
  requireSameShape("dropoutBackward", dOut, mask);
  mul(rec, dOut, mask, dX, accumulate);
}

/**
 * float32-exact reference of `dropout` for a counter value read on the host: returns the mask
 * and out = x ⊙ mask as the kernel computes them.
 */
export function dropoutReference(
  x: ArrayLike<number>,
  p: number,
  key: readonly [number, number],
  counter: number,
  callIndex: number,
): { out: Float32Array; mask: Float32Array } {
  const n = x.length;
  const out = new Float32Array(n), mask = new Float32Array(n);
  const threshold = Math.fround(p), scale = keepScale(p);
  for (let q = 0; q * 4 < n; q++) {
    const w = philox4x32([q, callIndex, counter, 0], key);
    for (let j = 0; j < 4 && 4 * q + j < n; j++) {
      const i = 4 * q + j;
      mask[i] = unitFloat(w[j]) >= threshold ? scale : 0;
      out[i] = x[i] * mask[i];
    }
  }
  return { out, mask };
}
