/**
 * `deno task exp NAME --profile`: per-kernel device time from timestamp queries, and where the
 * host's time went. A profiled run encodes every dispatch as its own compute pass with
 * `timestampWrites` (a diagnostic: the extra passes and readbacks slow the run); the normal
 * path is untouched. Results are unchanged: the same dispatches run in the same order.
 */
import type { Gpu } from "../kernels/device.ts";
import type { Plan } from "../kernels/program.ts";
import type { PlanSubmitter, TrainTiming } from "./train.ts";

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
    replays: readonly { plan: Plan; times: number }[],
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

/** The per-kernel table: kernel, calls, total ms, mean µs per call, share of the device time. */
export function formatKernelTable(rows: readonly KernelTime[]): string {
  const total = rows.reduce((s, r) => s + r.totalMs, 0);
  const cells = rows.map((r) => [
    r.kernel,
    String(r.calls),
    r.totalMs.toFixed(1),
    (r.calls > 0 ? (1000 * r.totalMs) / r.calls : 0).toFixed(1),
    `${(total > 0 ? (100 * r.totalMs) / total : 0).toFixed(1)}%`,
  ]);
  cells.push([
    "total",
    String(rows.reduce((s, r) => s + r.calls, 0)),
    total.toFixed(1),
    "",
    total > 0 ? "100.0%" : "0.0%",
  ]);
  return table(["kernel", "calls", "total ms", "µs/call", "share"], cells);
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
  return table(["host time", "ms", "share"], cells);
}

function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r.map((cell, c) => c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** What `exp --profile` needs: a submitter for the run and the report printed after it. */
export interface RunProfile {
  /** Undefined when the adapter has no timestamps (the host-time table is still printed). */
  submitter?: PlanSubmitter;
  /** The tables, as text. */
  report(timing: TrainTiming): Promise<string>;
}

/** Starts profiling a run on `gpu`; per-kernel times only where timestamps are supported. */
export function createRunProfile(gpu: Gpu): RunProfile {
  let profiler: KernelProfiler | undefined;
  let unsupported = "";
  try {
    profiler = new KernelProfiler(gpu);
  } catch (e) {
    unsupported = (e as Error).message;
  }
  return {
    submitter: profiler,
    async report(timing) {
      const kernels = profiler
        ? formatKernelTable(await profiler.results())
        : `per-kernel times unavailable: ${unsupported}`;
      return `${kernels}\n\n${formatHostTime(timing)}\n` +
        "(--profile times each dispatch in its own compute pass: the host times above include " +
        "that overhead; run without --profile for undisturbed figures)";
    },
  };
}
