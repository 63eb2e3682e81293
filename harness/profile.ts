/**
 * `deno task exp NAME --profile`: where a training step's wall time goes, and where the run's
 * host time went. The run itself is undisturbed (plain submits; the profiler only notes which
 * plan is the training step); after it, the step plan is replayed kernel by kernel and whole
 * (harness/step_profile.ts) so that the per-kernel table adds up to the step's wall time, and,
 * where the adapter has timestamp queries, once more with each dispatch in its own timed pass,
 * to show what timestamps alone would attribute.
 */
import type { Gpu } from "../kernels/device.ts";
import type { Plan } from "../kernels/program.ts";
import { formatStepProfile, profileStep, type StepProfile, textTable } from "./step_profile.ts";
import { plainSubmitter, type PlanSubmitter, type Replay } from "./submitter.ts";
import type { TrainTiming } from "./train.ts";

/** Device time of one kernel over a run. */
export interface KernelTime {
  kernel: string;
  calls: number;
  totalMs: number;
}

// WebGPU caps a query set at 4096 queries: two per pass.
const PASSES_PER_QUERY_SET = 2048;

/** A PlanSubmitter that times every dispatch on the device with timestamp queries. */
export class KernelProfiler implements PlanSubmitter {
  readonly #totals = new Map<string, { calls: number; ns: number }>();
  readonly #pending: Promise<void>[] = [];

  constructor(readonly gpu: Gpu) {
    if (!gpu.hasTimestamps || !gpu.device.features.has("timestamp-query")) {
      throw new Error(
        `--profile needs the WebGPU feature "timestamp-query", which the adapter ` +
          `${gpu.adapter.description || gpu.adapter.vendor} does not offer`,
      );
    }
  }

  /** Encodes each dispatch of each replay as one timed compute pass, then submits. */
  submit(
    replays: readonly Replay[],
    then?: (encoder: GPUCommandEncoder) => void,
  ): void {
    const { device } = this.gpu;
    const names: string[] = [];
    const encoder = device.createCommandEncoder({ label: "profile" });
    let querySet: GPUQuerySet | undefined;
    let inSet = 0;
    // Readbacks start after the submit: mapping a buffer still used by it fails validation.
    const reads: (() => Promise<void>)[] = [];
    const flush = () => {
      if (!querySet || inSet === 0) return;
      const bytes = inSet * 16;
      const resolved = device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      const staging = device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      encoder.resolveQuerySet(querySet, 0, inSet * 2, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, staging, 0, bytes);
      const kernels = names.splice(0, names.length);
      const set = querySet;
      reads.push(async () => {
        await staging.mapAsync(GPUMapMode.READ);
        const stamps = new BigUint64Array(staging.getMappedRange().slice(0));
        staging.unmap();
        for (const b of [staging, resolved]) b.destroy();
        set.destroy();
        kernels.forEach((kernel, i) => this.#add(kernel, stamps[2 * i], stamps[2 * i + 1]));
      });
      querySet = undefined;
      inSet = 0;
    };
    for (const { plan, times } of replays) {
      for (let t = 0; t < times; t++) {
        for (const d of plan.dispatches) {
          if (inSet === PASSES_PER_QUERY_SET) flush();
          querySet ??= device.createQuerySet({
            type: "timestamp",
            count: 2 * PASSES_PER_QUERY_SET,
          });
          const pass = encoder.beginComputePass({
            timestampWrites: {
              querySet,
              beginningOfPassWriteIndex: 2 * inSet,
              endOfPassWriteIndex: 2 * inSet + 1,
            },
          });
          pass.setPipeline(d.pipeline);
          pass.setBindGroup(0, d.bindGroup);
          pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
          pass.end();
          names.push(d.kernel);
          inSet++;
        }
      }
    }
    flush();
    then?.(encoder);
    device.queue.submit([encoder.finish()]);
    for (const read of reads) this.#pending.push(read());
  }

  #add(kernel: string, begin: bigint, end: bigint): void {
    const entry = this.#totals.get(kernel) ?? { calls: 0, ns: 0 };
    entry.calls++;
    // Timestamps are nanoseconds; a pair out of order (a clock hiccup) counts as zero.
    entry.ns += end > begin ? Number(end - begin) : 0;
    this.#totals.set(kernel, entry);
  }

  /** Waits for every pending timestamp readback; returns kernels by total time, largest first. */
  async results(): Promise<KernelTime[]> {
    await Promise.all(this.#pending.splice(0));
    return [...this.#totals].map(([kernel, t]) => ({
      kernel,
      calls: t.calls,
      totalMs: t.ns / 1e6,
    })).sort((a, b) => b.totalMs - a.totalMs || a.kernel.localeCompare(b.kernel));
  }
}

/** The host-time breakdown of a training run, each part as a share of its wall time. */
export function formatHostTime(t: TrainTiming): string {
  const parts: [string, number][] = [
    ["setup (upload, init, record, step-0 estimate)", t.setupMs],
    ["step loop: encode + submit (host)", t.encodeSubmitMs],
    ["step loop: awaiting loss readbacks", t.readbackWaitMs],
    ["estimates (encode, submit, wait)", t.evalMs],
    ["sample, final state, fingerprint", t.finishMs],
  ];
  const cells = parts.map(([name, ms]) => [
    name,
    ms.toFixed(1),
    `${(t.totalMs > 0 ? (100 * ms) / t.totalMs : 0).toFixed(1)}%`,
  ]);
  cells.push(["training run wall time", t.totalMs.toFixed(1), "100.0%"]);
  return textTable(["host time", "ms", "share"], cells);
}

/** What `exp --profile` needs: a submitter for the run and the report printed after it. */
export interface RunProfile {
  /** Submits like the default and keeps the training step's plan for the report. */
  submitter: PlanSubmitter;
  /** Measures the step (after the run: it overwrites the run's device state) and the tables. */
  report(run: ProfiledRun): Promise<string>;
  /** The last report's measurements (undefined before a report or without training steps). */
  readonly measured?: StepProfile;
}

/** What the report needs from the finished run. */
export interface ProfiledRun {
  timing: TrainTiming;
  /** Training-loop milliseconds (evaluation excluded) over `stepsTrained` steps. */
  trainMs: number;
  stepsTrained: number;
}

/** Timestamped replays of the step for the comparison column: enough to average, few. */
const TIMESTAMP_REPLAYS = 20;

/** A default submitter that also keeps the last plan submitted as the training step. */
export function stepCapturingSubmitter(
  gpu: Gpu,
): { submitter: PlanSubmitter; stepPlan(): Plan | undefined } {
  const plain = plainSubmitter(gpu);
  let stepPlan: Plan | undefined;
  return {
    submitter: {
      submit(replays, then) {
        for (const r of replays) if (r.role === "step") stepPlan = r.plan;
        plain.submit(replays, then);
      },
    },
    stepPlan: () => stepPlan,
  };
}

/** Starts profiling a run on `gpu`. */
export function createRunProfile(gpu: Gpu, opts: { trialSeconds?: number } = {}): RunProfile {
  const capture = stepCapturingSubmitter(gpu);
  let measured: StepProfile | undefined;
  const loadAtStart = Deno.loadavg()[0];
  return {
    submitter: capture.submitter,
    get measured() {
      return measured;
    },
    async report(run) {
      const host = formatHostTime(run.timing);
      const stepPlan = capture.stepPlan();
      if (!stepPlan || run.stepsTrained === 0) {
        return `no training steps ran: nothing to profile\n\n${host}`;
      }
      // Five trials per figure: on a shared machine single submissions vary by ±50%.
      measured = await profileStep(gpu, stepPlan, { trialSeconds: opts.trialSeconds, trials: 5 });
      measured.timestampMsPerStep = await timestampsPerStep(gpu, stepPlan);
      const stepWallMs = run.trainMs / run.stepsTrained;
      // The run and the replays happen at different times: on a shared machine the last
      // remainder also carries any change in load between them, so both loads are printed.
      const load = `load average (1 min): ${loadAtStart.toFixed(2)} when the run began, ` +
        `${Deno.loadavg()[0].toFixed(2)} after the replays, on ${navigator.hardwareConcurrency} ` +
        "cores; the host row also absorbs any change in load between the run and the replays.";
      return `${formatStepProfile(measured, stepWallMs)}\n${load}\n\n${host}`;
    },
  };
}

/** Per kernel, timestamp-query milliseconds per step over a few replays; undefined without. */
async function timestampsPerStep(
  gpu: Gpu,
  plan: Plan,
): Promise<Record<string, number> | undefined> {
  if (!gpu.hasTimestamps) return undefined;
  const profiler = new KernelProfiler(gpu);
  profiler.submit([{ plan, times: TIMESTAMP_REPLAYS }]);
  const rows = await profiler.results();
  return Object.fromEntries(rows.map((r) => [r.kernel, r.totalMs / TIMESTAMP_REPLAYS]));
}
