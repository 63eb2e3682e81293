/** Reading the per-step losses back from the device without stalling the training loop. */
import type { Gpu } from "../kernels/device.ts";
import type { Tensor } from "../kernels/tensor.ts";

/**
 * Readback of per-step losses, one staging buffer per chunk, copied at the end of the chunk's
 * own command buffer. On Deno's WebGPU (measured on llvmpipe) a submit and a mapAsync call both
 * block until the work already submitted is done, and a map resolves only at the next poll
 * (~11 ms later); the loop therefore maps a chunk right after submitting it and awaits the
 * result only after submitting the next one.
 */
export class LossReadback {
  readonly #queue: { from: number; n: number; staging: GPUBuffer; mapped?: Promise<void> }[] = [];
  constructor(readonly gpu: Gpu, readonly losses: Tensor) {}

  get pending(): number {
    return this.#queue.length;
  }

  /** Returns the encoder step that copies steps [from, from + n) of the chunk it ends. */
  request(from: number, n: number): (encoder: GPUCommandEncoder) => void {
    const bytes = n * 4;
    const staging = this.gpu.device.createBuffer({
      label: "losses.readback",
      size: Math.max(4, bytes),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.#queue.push({ from, n, staging });
    return (encoder) =>
      encoder.copyBufferToBuffer(
        this.losses.buffer,
        this.losses.byteOffset + from * 4,
        staging,
        0,
        bytes,
      );
  }

  /** Requests the maps of every chunk submitted so far (blocks until the device is done). */
  startMaps(): void {
    for (const entry of this.#queue) entry.mapped ??= entry.staging.mapAsync(GPUMapMode.READ);
  }

  /** The oldest chunk's losses (maps its staging buffer if not yet requested). */
  async next(): Promise<{ from: number; losses: Float32Array }> {
    const head = this.#queue.shift();
    if (!head) throw new Error("no readback pending");
    await (head.mapped ?? head.staging.mapAsync(GPUMapMode.READ));
    const losses = new Float32Array(head.staging.getMappedRange().slice(0, head.n * 4));
    head.staging.unmap();
    head.staging.destroy();
    return { from: head.from, losses };
  }
}
