/** Device tensors: a GPU storage buffer with a shape, a dtype and a name for error messages. */
import type { Gpu } from "./device.ts";

/** Element types the kernels use: activations and parameters in f32, token ids in u32. */
export type DType = "f32" | "u32";

/** Raised before dispatch when a tensor would exceed a device limit. */
export class LimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LimitError";
  }
}

/** Raised when an op is given tensors whose shapes do not fit together. */
export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ShapeError";
  }
}

/** A tensor living in a GPU storage buffer. Row-major, contiguous. */
export class Tensor {
  /** Number of elements. */
  readonly size: number;
  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly name: string,
    /** Byte offset into `buffer` (non-zero for views into an arena). */
    readonly byteOffset = 0,
  ) {
    this.size = shape.reduce((a, b) => a * b, 1);
  }
  /** Bytes of payload (the buffer may be padded). */
  get byteLength(): number {
    return this.size * 4;
  }
  /** Human-readable shape, used in error messages. */
  describe(): string {
    return `${this.name} (${this.dtype} [${this.shape.join(", ")}])`;
  }
}

/** Allocates a tensor, optionally filled from host data. */
export function createTensor(
  gpu: Gpu,
  shape: readonly number[],
  dtype: DType,
  name: string,
  data?: ArrayLike<number>,
): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  if (!Number.isInteger(size) || size < 0) {
    throw new ShapeError(`tensor ${name}: invalid shape [${shape.join(", ")}]`);
  }
  const bytes = size * 4;
  const limit = gpu.limits.maxStorageBufferBindingSize;
  if (bytes > limit) {
    throw new LimitError(
      `tensor ${name} [${shape.join(", ")}] needs ${bytes} bytes, above the device's ` +
        `maxStorageBufferBindingSize of ${limit}`,
    );
  }
  const buffer = gpu.device.createBuffer({
    label: name,
    // WebGPU forbids zero-sized bindings; round up to a vec4 so vectorised kernels may overread.
    size: Math.max(16, Math.ceil(bytes / 16) * 16),
    // UNIFORM too: matmul reads a small shared operand (a weight) through a uniform binding,
    // which llvmpipe loads with a branch-free gather instead of a per-lane loop.
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_SRC |
      GPUBufferUsage.COPY_DST,
  });
  const tensor = new Tensor(gpu, buffer, [...shape], dtype, name);
  if (data !== undefined) writeTensor(tensor, data);
  return tensor;
}

/**
 * A tensor viewing part of an existing buffer, e.g. one parameter inside the parameter arena.
 * `byteOffset` must be a multiple of the device's minStorageBufferOffsetAlignment.
 */
export function tensorView(
  base: Tensor,
  byteOffset: number,
  shape: readonly number[],
  name: string,
): Tensor {
  const align = base.gpu.limits.minStorageBufferOffsetAlignment;
  const view = new Tensor(
    base.gpu,
    base.buffer,
    [...shape],
    base.dtype,
    name,
    base.byteOffset + byteOffset,
  );
  if (view.byteOffset % align !== 0) {
    throw new LimitError(`view ${name}: offset ${view.byteOffset} is not a multiple of ${align}`);
  }
  if (view.byteOffset + view.byteLength > base.byteOffset + base.byteLength) {
    throw new ShapeError(`view ${view.describe()} runs past the end of ${base.describe()}`);
  }
  return view;
}

/** Copies host data into a tensor (queued; ordered before later submits). */
export function writeTensor(tensor: Tensor, data: ArrayLike<number>): void {
  if (data.length !== tensor.size) {
    throw new ShapeError(`write to ${tensor.describe()}: got ${data.length} values`);
  }
  const typed = tensor.dtype === "f32" ? Float32Array.from(data) : Uint32Array.from(data);
  tensor.gpu.device.queue.writeBuffer(tensor.buffer, tensor.byteOffset, typed);
}

/** Reads a whole tensor back to the host (one mapAsync round trip: never inside a step). */
export async function readTensor(tensor: Tensor): Promise<Float32Array | Uint32Array> {
  const bytes = await readBytes(tensor.gpu, tensor.buffer, tensor.byteOffset, tensor.byteLength);
  return tensor.dtype === "f32" ? new Float32Array(bytes) : new Uint32Array(bytes);
}

/** Reads a tensor known to hold f32 values. */
export async function readF32(tensor: Tensor): Promise<Float32Array> {
  if (tensor.dtype !== "f32") throw new ShapeError(`readF32 on ${tensor.describe()}`);
  return await readTensor(tensor) as Float32Array;
}

/** Reads a tensor known to hold u32 values. */
export async function readU32(tensor: Tensor): Promise<Uint32Array> {
  if (tensor.dtype !== "u32") throw new ShapeError(`readU32 on ${tensor.describe()}`);
  return await readTensor(tensor) as Uint32Array;
}

/** Copies a byte range of a buffer to the host through a staging buffer. */
export async function readBytes(
  gpu: Gpu,
  buffer: GPUBuffer,
  offset: number,
  length: number,
): Promise<ArrayBuffer> {
  const padded = Math.max(4, Math.ceil(length / 4) * 4);
  const staging = gpu.device.createBuffer({
    size: padded,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = gpu.device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, offset, staging, 0, padded);
  gpu.device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const copy = staging.getMappedRange().slice(0, length);
  staging.unmap();
  staging.destroy();
  return copy;
}

/** The same storage seen with another shape of equal size (row-major, no copy). */
export function reshape(t: Tensor, shape: readonly number[], name = t.name): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== t.size) {
    throw new ShapeError(`reshape ${t.describe()} to [${shape.join(", ")}]: sizes differ`);
  }
  return new Tensor(t.gpu, t.buffer, [...shape], t.dtype, name, t.byteOffset);
}
