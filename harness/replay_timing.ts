/**
 * Timing replays of recorded dispatches the way a user could check them by hand: encode N
 * replays into one command buffer, then time submit → a 4-byte readback (which cannot complete
 * before the last dispatch has), less the latency of a readback with nothing queued before it
 * (Deno notices a finished map on a ~10 ms poll, which would otherwise count as device time).
 * Encoding happens before the clock starts, so the figures are the device's time plus the
 * submit, not the host's encoding. N is calibrated so that one submission lasts a set time and
 * the median of a few submissions is kept: the machines' cores are shared.
 */
import type { Gpu } from "../kernels/device.ts";
import type { Dispatch } from "../kernels/program.ts";
import { pipelineFor } from "../kernels/program.ts";
import { readBytes } from "../kernels/tensor.ts";

/** How long each timed submission should last and how many are timed. */
export interface ReplayTimingOptions {
  /** Target seconds per timed submission (default 0.25). */
  trialSeconds?: number;
  /** Timed submissions per figure, median kept (default 3). */
  trials?: number;
}

/** A replay time: milliseconds per replay, and how it was measured. */
export interface ReplayTime {
  msPerReplay: number;
  /** Replays per timed submission. */
  replays: number;
  /** Raw milliseconds of each timed submission (readback included, floor not subtracted). */
  trialsMs: number[];
}

/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** A 16-byte buffer whose readback ends a timed interval. */
export function createFence(gpu: Gpu): GPUBuffer {
  return gpu.device.createBuffer({
    label: "timing.fence",
    size: 16,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
}

/** Milliseconds from submitting `commands` (none: an empty readback) to 4 bytes of `fence` back. */
export async function timeSubmission(
  gpu: Gpu,
  commands: GPUCommandBuffer | undefined,
  fence: GPUBuffer,
): Promise<number> {
  const start = performance.now();
  if (commands) gpu.device.queue.submit([commands]);
  await readBytes(gpu, fence, 0, 4);
  return performance.now() - start;
}

/** Median latency of a readback with nothing queued before it: subtracted from every trial. */
export async function readbackFloorMs(gpu: Gpu, fence: GPUBuffer, samples = 10): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) times.push(await timeSubmission(gpu, undefined, fence));
  return median(times);
}

/** One command buffer holding `times` replays of `dispatches` in one compute pass. */
export function encodeReplays(
  gpu: Gpu,
  dispatches: readonly Dispatch[],
  times: number,
): GPUCommandBuffer {
  const encoder = gpu.device.createCommandEncoder({ label: "timed replays" });
  const pass = encoder.beginComputePass();
  for (let i = 0; i < times; i++) {
    for (const d of dispatches) {
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
    }
  }
  pass.end();
  return encoder.finish();
}

const MAX_REPLAYS = 20_000;

/**
 * Milliseconds per replay of `dispatches` (see the module comment). Calibration doubles as the
 * warm-up: the replay count grows until a submission is clearly above the readback floor.
 */
export async function timeReplays(
  gpu: Gpu,
  floorMs: number,
  fence: GPUBuffer,
  dispatches: readonly Dispatch[],
  opts: ReplayTimingOptions = {},
): Promise<ReplayTime> {
  const trialMs = 1000 * (opts.trialSeconds ?? 0.25);
  const trials = opts.trials ?? 3;
  const timeOnce = (n: number) => timeSubmission(gpu, encodeReplays(gpu, dispatches, n), fence);
  let replays = 1;
  let ms = await timeOnce(replays) - floorMs;
  while (ms < trialMs / 5 && replays < MAX_REPLAYS) {
    replays = Math.min(MAX_REPLAYS, replays * 8);
    ms = await timeOnce(replays) - floorMs;
  }
  replays = Math.max(
    1,
    Math.min(MAX_REPLAYS, Math.round((replays * trialMs) / Math.max(ms, 1e-3))),
  );
  const trialsMs: number[] = [];
  for (let t = 0; t < trials; t++) trialsMs.push(await timeOnce(replays));
  return {
    msPerReplay: Math.max(0, median(trialsMs) - floorMs) / replays,
    replays,
    trialsMs: trialsMs.map((t) => Math.round(t * 100) / 100),
  };
}

// The cheapest dispatch a kernel can make: one invocation that bumps one word of a storage
// buffer, so that consecutive dispatches depend on each other as real kernels' do.
const EMPTY_KERNEL = {
  name: "empty_dispatch",
  code: `@group(0) @binding(0) var<storage, read_write> touched: array<u32>;
@compute @workgroup_size(1) fn main() { touched[0] = touched[0] + 1u; }`,
};

/** Microseconds one near-empty dispatch costs on this adapter, replayed back to back. */
export async function emptyDispatchUs(
  gpu: Gpu,
  floorMs: number,
  fence: GPUBuffer,
  opts: ReplayTimingOptions = {},
): Promise<ReplayTime & { us: number }> {
  const pipeline = pipelineFor(gpu, EMPTY_KERNEL);
  const bindGroup = gpu.device.createBindGroup({
    label: EMPTY_KERNEL.name,
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: fence } }],
  });
  const dispatch: Dispatch = {
    kernel: EMPTY_KERNEL.name,
    pipeline,
    bindGroup,
    workgroups: [1, 1, 1],
  };
  const timed = await timeReplays(gpu, floorMs, fence, [dispatch], opts);
  return { ...timed, us: 1000 * timed.msPerReplay };
}
