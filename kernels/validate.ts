/** Record-time checks every kernel family shares: dtype, shape and buffer aliasing. */
import { ShapeError, type Tensor } from "./tensor.ts";

/** Throws ShapeError naming `op` unless every tensor holds f32. */
export function requireF32(op: string, ...tensors: readonly Tensor[]): void {
  for (const t of tensors) {
    if (t.dtype !== "f32") throw new ShapeError(`${op}: ${t.describe()} must be f32`);
  }
}

/** Throws ShapeError naming `op` and both shapes unless `b` has exactly the shape of `a`. */
export function requireSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new ShapeError(`${op}: ${b.describe()} must have the shape of ${a.describe()}`);
  }
}

/**
 * Throws unless no output shares a GPU buffer with an input: WebGPU rejects a dispatch that
 * binds one buffer both read-only and writable, and the error would only surface at submit.
 */
export function requireDisjoint(
  op: string,
  outputs: readonly Tensor[],
  inputs: readonly Tensor[],
): void {
  for (const o of outputs) {
    for (const i of inputs) {
      if (o.buffer === i.buffer) {
        throw new ShapeError(
          `${op}: output ${o.describe()} shares a GPU buffer with input ${i.describe()}; ` +
            `WebGPU cannot bind one buffer as both read-only and writable in a dispatch`,
        );
      }
    }
  }
}
