/**
 * Recording and replaying kernel dispatches. An op records a dispatch (pipeline, bind group,
 * workgroup counts) into a Recorder; `finish()` turns the list into a Plan that can be replayed
 * any number of times with no host data, the way a CUDA graph is. Pipelines are cached by
 * (kernel, constants), so recording the same op twice compiles once.
 */
import type { Gpu } from "./device.ts";
import { LimitError, type Tensor } from "./tensor.ts";

/** A WGSL compute kernel: its source and the pipeline-overridable constants baked into it. */
export interface Kernel {
  /** Name used for caching, labels and profiling (e.g. "cross_entropy"). */
  name: string;
  /** WGSL source with one `@compute` entry point named `main`. */
  code: string;
  /** Values for the shader's `override` declarations. */
  constants?: Record<string, number>;
}

/** One recorded dispatch. */
export interface Dispatch {
  kernel: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
}

/** A buffer bound to a kernel: a tensor, or a raw buffer (uniform parameters, counters). */
export type Binding = Tensor | GPUBuffer;

const pipelineCache = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();
const moduleCache = new WeakMap<GPUDevice, Map<string, GPUShaderModule>>();

/** Returns the cached compute pipeline for a kernel, creating it on first use. */
export function pipelineFor(gpu: Gpu, kernel: Kernel): GPUComputePipeline {
  let pipelines = pipelineCache.get(gpu.device);
  if (!pipelines) pipelineCache.set(gpu.device, pipelines = new Map());
  const constants = kernel.constants ?? {};
  const key = `${kernel.name}|${JSON.stringify(constants)}|${kernel.code}`;
  let pipeline = pipelines.get(key);
  if (!pipeline) {
    let modules = moduleCache.get(gpu.device);
    if (!modules) moduleCache.set(gpu.device, modules = new Map());
    let module = modules.get(kernel.code);
    if (!module) {
      module = gpu.device.createShaderModule({ label: kernel.name, code: kernel.code });
      modules.set(kernel.code, module);
    }
    pipeline = gpu.device.createComputePipeline({
      label: kernel.name,
      layout: "auto",
      compute: { module, entryPoint: "main", constants },
    });
    pipelines.set(key, pipeline);
  }
  return pipeline;
}

/** The bind-group resource of a buffer or of a tensor (its view: offset and byte length). */
export function bindingResource(b: Binding): GPUBufferBinding {
  return b instanceof GPUBuffer
    ? { buffer: b }
    : { buffer: b.buffer, offset: b.byteOffset, size: Math.max(4, b.byteLength) };
}

/**
 * A small read-only storage buffer of u32 parameters. Not a uniform buffer: lavapipe (Mesa
 * 22.3) inlines uniform values that steer loops into a shader variant and, once that happens,
 * rebuilds the variant whenever a dispatch binds a different uniform buffer, about 1.5 ms per
 * dispatch on llvmpipe. Storage buffers are never inlined.
 */
export function storageU32(gpu: Gpu, values: readonly number[], label = "params"): GPUBuffer {
  return u32Buffer(gpu, values, label, GPUBufferUsage.STORAGE);
}

/** Creates a small uniform buffer holding u32 parameters fixed at record time. */
export function uniformU32(gpu: Gpu, values: readonly number[], label = "params"): GPUBuffer {
  return u32Buffer(gpu, values, label, GPUBufferUsage.UNIFORM);
}

/** A 16-byte-aligned buffer holding `values` as u32, written once at record time. */
function u32Buffer(gpu: Gpu, values: readonly number[], label: string, usage: number): GPUBuffer {
  const buffer = gpu.device.createBuffer({
    label,
    size: Math.max(16, Math.ceil(values.length / 4) * 16),
    usage: usage | GPUBufferUsage.COPY_DST,
  });
  gpu.device.queue.writeBuffer(buffer, 0, Uint32Array.from(values));
  return buffer;
}

/** The u32 bit pattern of an f32, for packing floats into u32 uniform buffers. */
export function f32Bits(x: number): number {
  return new Uint32Array(Float32Array.of(x).buffer)[0];
}

/** Collects dispatches in order; `finish()` validates them and returns a replayable Plan. */
export class Recorder {
  readonly dispatches: Dispatch[] = [];
  #open = true;

  constructor(readonly gpu: Gpu) {
    // Shader or binding mistakes become an exception in finish() instead of silent zeros.
    gpu.device.pushErrorScope("validation");
  }

  /** Records one dispatch of `kernel` with `bindings` at @group(0) @binding(0..n-1). */
  dispatch(kernel: Kernel, bindings: readonly Binding[], workgroups: number | number[]): void {
    const entries = bindings.map((b, binding) => ({ binding, resource: bindingResource(b) }));
    this.dispatchWith(kernel.name, pipelineFor(this.gpu, kernel), entries, workgroups);
  }

  /**
   * Records a dispatch whose bind group the caller describes, for kernels that bind more than
   * buffers (textures): the same open check, workgroup limits and validation scope as
   * `dispatch`.
   */
  dispatchWith(
    name: string,
    pipeline: GPUComputePipeline,
    entries: readonly GPUBindGroupEntry[],
    workgroups: number | number[],
  ): void {
    this.#checkOpen(name);
    const counts = typeof workgroups === "number" ? [workgroups] : workgroups;
    const [x = 1, y = 1, z = 1] = counts;
    const max = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    for (const n of [x, y, z]) {
      if (!Number.isInteger(n) || n < 0) {
        throw new Error(`${name}: invalid workgroup count ${n}`);
      }
      if (n > max) {
        throw new LimitError(
          `${name}: ${n} workgroups in one dimension exceeds the device's ` +
            `maxComputeWorkgroupsPerDimension of ${max}`,
        );
      }
    }
    const bindGroup = this.gpu.device.createBindGroup({
      label: name,
      layout: pipeline.getBindGroupLayout(0),
      entries: [...entries],
    });
    this.dispatches.push({ kernel: name, pipeline, bindGroup, workgroups: [x, y, z] });
  }

  #checkOpen(name: string): void {
    if (!this.#open) throw new Error(`recorder already finished (dispatching ${name})`);
  }

  /** Closes the recording; throws if any pipeline or bind group was invalid. */
  async finish(): Promise<Plan> {
    this.#open = false;
    const error = await this.gpu.device.popErrorScope();
    if (error) throw new Error(`WebGPU validation failed while recording: ${error.message}`);
    return new Plan(this.gpu, this.dispatches);
  }
}

/** A fixed sequence of dispatches that replays with no host input. */
export class Plan {
  constructor(readonly gpu: Gpu, readonly dispatches: readonly Dispatch[]) {}

  /** Encodes the dispatches once into an open compute pass. */
  encodeInto(pass: GPUComputePassEncoder): void {
    for (const d of this.dispatches) {
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
    }
  }

  /** Submits `times` back-to-back replays in one command buffer. */
  submit(times = 1): void {
    const encoder = this.gpu.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (let i = 0; i < times; i++) this.encodeInto(pass);
    pass.end();
    this.gpu.device.queue.submit([encoder.finish()]);
  }

  /** Replays once and waits until the device has finished (tests and one-off ops). */
  async run(): Promise<void> {
    this.submit(1);
    await this.gpu.device.queue.onSubmittedWorkDone();
  }
}

/** Records the dispatches `body` makes, then replays them once and waits. For tests and setup. */
export async function runOnce(gpu: Gpu, body: (rec: Recorder) => void): Promise<void> {
  const rec = new Recorder(gpu);
  try {
    body(rec);
  } catch (e) {
    await rec.finish().catch(() => {});
    throw e;
  }
  await (await rec.finish()).run();
}
