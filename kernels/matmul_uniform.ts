/**
 * When the buffer matmul may read an operand through a uniform binding. llvmpipe (Mesa 22.3)
 * loads a storage-buffer element lane by lane, in a loop with a branch per lane and component;
 * a uniform array element is one branch-free gather. Uniform bindings hold at most
 * maxUniformBufferBindingSize (64 KiB here): every weight of the lecture's GPT fits, and an
 * activation [512, 64] fits in two halves, so a product over such an a runs as one dispatch
 * per block of rows with both operands uniform (at 512×64×64 about 15% and at 512×192×64 about
 * 35% less CPU time than one dispatch reading a from storage, measured with
 * bench/gpt_matmul_bench.ts).
 */
import type { Gpu } from "./device.ts";
import type { Tensor } from "./tensor.ts";

/**
 * How many vec4s `t` spans when a dispatch can bind it as a uniform array, else 0: one 2-D
 * matrix whose vec4s fill it exactly, within the binding limit, at an aligned offset, in a
 * buffer that the dispatch does not also write (a buffer may not be bound as uniform and as
 * writable storage at once).
 */
export function uniformVec4s(gpu: Gpu, t: Tensor, written: readonly Tensor[]): number {
  const bytes = t.byteLength;
  const fits = t.shape.length === 2 && bytes > 0 && bytes % 16 === 0 &&
    bytes <= gpu.limits.maxUniformBufferBindingSize &&
    t.byteOffset % gpu.limits.minUniformBufferOffsetAlignment === 0 &&
    (t.buffer.usage & GPUBufferUsage.UNIFORM) !== 0 &&
    written.every((w) => w.buffer !== t.buffer);
  return fits ? bytes / 16 : 0;
}

/** More dispatches than this cost more in dispatch overhead than uniform reads save. */
const MAX_ROW_BLOCKS = 4;

/**
 * Rows per block when an untransposed 2-D a [M, K] too large for one uniform binding should be
 * multiplied block by block (each block of a, and b, uniform), else 0. Blocks are a multiple
 * of 64 rows, so every block of a and of out starts 256-byte aligned.
 */
export function uniformRowBlock(
  gpu: Gpu,
  a: Tensor,
  b: Tensor,
  written: readonly Tensor[],
  { M, K, transA, vecB }: { M: number; K: number; transA: boolean; vecB: boolean },
): number {
  const limit = gpu.limits.maxUniformBufferBindingSize;
  if (transA || a.shape.length !== 2 || K % 4 !== 0 || K === 0 || a.byteLength <= limit) return 0;
  if (!vecB || uniformVec4s(gpu, b, written) === 0) return 0;
  const rows = Math.floor(limit / (4 * K) / 64) * 64;
  return rows > 0 && Math.ceil(M / rows) <= MAX_ROW_BLOCKS ? rows : 0;
}
