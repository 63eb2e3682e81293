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
 * Replays per submission so that one lasts about `trialSeconds`; doubles as the warm-up: the
 * count grows until a submission is clearly above the readback floor.
 */
export async function calibrateReplays(
  gpu: Gpu,
  floorMs: number,
  fence: GPUBuffer,
  dispatches: readonly Dispatch[],
  opts: ReplayTimingOptions = {},
): Promise<number> {
  const trialMs = 1000 * (opts.trialSeconds ?? 0.25);
  const timeOnce = (n: number) => timeSubmission(gpu, encodeReplays(gpu, dispatches, n), fence);
  let replays = 1;
  let ms = await timeOnce(replays) - floorMs;
  while (ms < trialMs / 5 && replays < MAX_REPLAYS) {
    replays = Math.min(MAX_REPLAYS, replays * 8);
    ms = await timeOnce(replays) - floorMs;
  }
  return Math.max(1, Math.min(MAX_REPLAYS, Math.round((replays * trialMs) / Math.max(ms, 1e-3))));
}

/**
 * Milliseconds per replay of each group of dispatches (see the module comment). The groups take
 * turns, trial by trial, so that a change in the machine's load reaches all of them alike.
 */
export async function timeReplaysInTurn(
  gpu: Gpu,
  floorMs: number,
  fence: GPUBuffer,
  groups: readonly (readonly Dispatch[])[],
  opts: ReplayTimingOptions = {},
): Promise<ReplayTime[]> {
  const counts: number[] = [];
  for (const g of groups) counts.push(await calibrateReplays(gpu, floorMs, fence, g, opts));
  const trials = groups.map((): number[] => []);
  for (let t = 0; t < (opts.trials ?? 3); t++) {
    for (const [i, g] of groups.entries()) {
      trials[i].push(await timeSubmission(gpu, encodeReplays(gpu, g, counts[i]), fence));
    }
  }
  return trials.map((ms, i) => ({
    msPerReplay: Math.max(0, median(ms) - floorMs) / counts[i],
    replays: counts[i],
    trialsMs: ms.map((t) => Math.round(t * 100) / 100),
  }));
}

/** Milliseconds per replay of one group of dispatches. */
export async function timeReplays(
  gpu: Gpu,
  floorMs: number,
  fence: GPUBuffer,
  dispatches: readonly Dispatch[],
  opts: ReplayTimingOptions = {},
): Promise<ReplayTime> {
  const [time] = await timeReplaysInTurn(gpu, floorMs, fence, [dispatches], opts);
  return time;
}

// The cheapest dispatch a kernel can make: one invocation that bumps one word of a storage
// buffer, so that consecutive dispatches depend on each other as real kernels' do.
const EMPTY_KERNEL = {
  name: "empty_dispatch",
  code: `@group(0) @binding(0) var<storage, read_write> touched: array<u32>;
@compute @workgroup_size(1) fn main() { touched[0] = touched[0] + 1u; }`,
};

/** A near-empty dispatch that bumps the first word of `fence` (see createFence). */
export function emptyDispatch(gpu: Gpu, fence: GPUBuffer): Dispatch {
  const pipeline = pipelineFor(gpu, EMPTY_KERNEL);
  const bindGroup = gpu.device.createBindGroup({
    label: EMPTY_KERNEL.name,
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: fence } }],
  });
  return { kernel: EMPTY_KERNEL.name, pipeline, bindGroup, workgroups: [1, 1, 1] };
}

/** Microseconds one near-empty dispatch costs on this adapter, replayed back to back. */
export async function emptyDispatchUs(
  gpu: Gpu,
  floorMs: number,
  fence: GPUBuffer,
  opts: ReplayTimingOptions = {},
): Promise<number> {
  const timed = await timeReplays(gpu, floorMs, fence, [emptyDispatch(gpu, fence)], opts);
  return 1000 * timed.msPerReplay;
}
