/** Dispatchers for Philox fills: raw words (tests), uniform and normal initialisation. */
import philoxSource from "./philox.wgsl" with { type: "text" };
import fillSource from "./random_fill.wgsl" with { type: "text" };
import { grid1d } from "./grid.ts";
import { f32Bits, type Recorder, uniformU32 } from "./program.ts";
import { ShapeError, type Tensor } from "./tensor.ts";

const code = philoxSource + fillSource;

function fill(
  rec: Recorder,
  out: Tensor,
  mode: number,
  key: readonly [number, number],
  c1: number,
  a: number,
  b: number,
  skip = 0,
): void {
  if (!Number.isInteger(skip) || skip < 0 || skip > out.size) {
    throw new ShapeError(`random_fill: skip ${skip} is outside ${out.describe()}`);
  }
  const n = out.size - skip;
  const params = uniformU32(rec.gpu, [key[0], key[1], c1, n, f32Bits(a), f32Bits(b), skip]);
  const invocations = mode === 0 ? Math.ceil(n / 4) : n;
  rec.dispatch(
    { name: "random_fill", code, constants: { MODE: mode } },
    [out, params],
    grid1d(invocations, 256),
  );
}

/** Fills a u32 tensor with raw Philox words (layout of `philoxWords`). */
export function fillPhiloxWords(
  rec: Recorder,
  out: Tensor,
  key: readonly [number, number],
  c1 = 0,
): void {
  if (out.dtype !== "u32") throw new ShapeError(`fillPhiloxWords: ${out.describe()} is not u32`);
  fill(rec, out, 0, key, c1, 0, 0);
}

/**
 * Fills an f32 tensor with U[low, high) draws (PyTorch's Linear init uses ±1/√fan_in). With
 * `skip`, draw i goes to out[skip + i] and the first `skip` elements are left alone: a view
 * must start at an aligned offset, so an unaligned target is filled through the aligned view
 * that contains it.
 */
export function fillUniform(
  rec: Recorder,
  out: Tensor,
  key: readonly [number, number],
  c1: number,
  low: number,
  high: number,
  skip = 0,
): void {
  if (out.dtype !== "f32") throw new ShapeError(`fillUniform: ${out.describe()} is not f32`);
  fill(rec, out, 1, key, c1, low, high, skip);
}

/** Fills an f32 tensor with N(mean, std²) draws (Embedding's init is N(0, 1)); `skip` as above. */
export function fillNormal(
  rec: Recorder,
  out: Tensor,
  key: readonly [number, number],
  c1: number,
  mean: number,
  std: number,
  skip = 0,
): void {
  if (out.dtype !== "f32") throw new ShapeError(`fillNormal: ${out.describe()} is not f32`);
  fill(rec, out, 2, key, c1, mean, std, skip);
}
