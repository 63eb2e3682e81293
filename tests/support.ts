/**
 * Test data and comparisons shared by the kernel tests. Data comes from the project's own
 * Philox generator, so every run (and every machine) sees the same inputs.
 */
import { philoxWords, unitFloat } from "../kernels/philox.ts";

// A key of its own so test data never coincides with a run's streams.
const TEST_STREAM = 0x7e57;

/** Uniform floats in [offset − amp, offset + amp), rounded to f32 as the device sees them. */
export function randomF32(n: number, seed: number, amp = 1, offset = 0): Float32Array {
  return Float32Array.from(
    philoxWords(n, [seed, TEST_STREAM]),
    (w) => offset + amp * (2 * unitFloat(w) - 1),
  );
}

/** Token ids uniform in [0, vocab). */
export function randomIds(n: number, vocab: number, seed: number): Uint32Array {
  return Uint32Array.from(philoxWords(n, [seed, TEST_STREAM + 1]), (w) => w % vocab);
}

/** max |got − want| / max |want|: the error relative to the result's scale. */
export function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) {
    throw new Error(`relError: lengths differ (${got.length} vs ${want.length})`);
  }
  let err = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return err / Math.max(scale, 1e-30);
}

/** Central finite differences of a float64 scalar function of one flat parameter vector. */
export function finiteDifferences(
  x: Float64Array,
  loss: (x: Float64Array) => number,
  h = 1e-6,
): Float64Array {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + h;
    const up = loss(x);
    x[i] = keep - h;
    const down = loss(x);
    x[i] = keep;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}
