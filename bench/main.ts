/**
 * `deno task bench`: kernel throughput and training steps/s on the experiments' default configs,
 * printed as a table and written to bench/results/<time>.json. With --vs-torch,
 * bench/torch_bench.py trains the same models in PyTorch on the CPU in the same session, once
 * per BLAS installed (bench/torch.ts), and the table gains a column and a ratio per BLAS.
 */
import { fileURLToPath as fromFileUrl } from "node:url";
import { parseArgs } from "node:util";
import { getGpu, NoAdapterError } from "../kernels/device.ts";
import { writeFileAtomic } from "../harness/atomic.ts";
import { ExitCode, UsageError } from "../harness/errors.ts";
import { createFence, emptyDispatchUs, readbackFloorMs } from "../harness/replay_timing.ts";
import { dispatchOverheadShare } from "../harness/step_profile.ts";
import { benchKernels, type BenchResult } from "./kernels_bench.ts";
import { findTorchPython, runTorchBench, type TorchRun, torchVariants } from "./torch.ts";
import { availableBenches, measureBench, torchSpec } from "./training_bench.ts";
import type { TrainPath, TrainTiming } from "../harness/train.ts";

export const USAGE = `usage: deno task bench [--vs-torch] [--python PATH] [--steps N]
                        [--only kernels|training] [--help]

  --vs-torch        also train the same models in PyTorch (bench/torch_bench.py), once per BLAS
                    installed (reference BLAS; OpenBLAS with 1 thread), and print the ratios
  --python PATH     the interpreter for --vs-torch (default: python3, then /usr/bin/python3)
  --steps N         bigram steps per run (default 2000; the other models train a fraction)
  --only WHAT       kernels: only the kernel figures; training: only steps/s
  --help            print this and exit

Writes bench/results/<time>.json. Exit codes: 0 ok, 2 bad arguments, 3 no WebGPU adapter.`;

/** One measured figure, with PyTorch's steps/s per BLAS variant when --vs-torch ran. */
export interface BenchRow extends BenchResult {
  torch?: Record<string, number>;
}

/** A training figure as the JSON records it. */
export interface TrainingRecord {
  experiment: string;
  label: string;
  steps: number;
  stepsPerSec: number;
  path: TrainPath;
  dispatchesPerStep: number;
  /** dispatchesPerStep × emptyDispatchUs over the step's wall time. */
  dispatchOverheadShare: number;
  /** The 1-minute load average when this figure's measurement began. */
  loadavg1: number;
  timing: TrainTiming;
}

interface BenchArgs {
  vsTorch: boolean;
  python?: string;
  steps: number;
  only?: "kernels" | "training";
}

/** Parses the bench's arguments; undefined after --help (usage printed). */
export function parseBenchArgs(args: string[]): BenchArgs | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        "vs-torch": { type: "boolean", default: false },
        python: { type: "string" },
        steps: { type: "string", default: "2000" },
        only: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (e) {
    // node:util's messages go on to suggest "--" quoting that does not apply here.
    const first = (e as Error).message.split(/\.\s|\n/)[0];
    throw new UsageError(`${first} (see deno task bench --help)`);
  }
  if (values.help) {
    console.log(USAGE);
    return undefined;
  }
  const steps = Number(values.steps);
  if (!Number.isInteger(steps) || steps < 1) {
    throw new UsageError(`--steps must be a positive integer, got "${values.steps}"`);
  }
  if (values.only !== undefined && values.only !== "kernels" && values.only !== "training") {
    throw new UsageError(`--only takes kernels or training, got "${values.only}"`);
  }
  return { vsTorch: values["vs-torch"], python: values.python, steps, only: values.only };
}

/** Runs the bench; returns the exit code. */
export async function runBench(argv: string[]): Promise<number> {
  const args = parseBenchArgs(argv);
  if (!args) return ExitCode.ok;
  const gpu = await getGpu();
  // The CI machines are shared: the load average says how far to trust a run's figures.
  const loadBefore = Deno.loadavg();
  const rows: BenchRow[] = [];
  if (args.only !== "training") rows.push(...await benchKernels());
  const fence = createFence(gpu);
  const emptyUs = await emptyDispatchUs(gpu, await readbackFloorMs(gpu, fence), fence);
  fence.destroy();
  const python = args.vsTorch ? await findTorchPython(args.python) : undefined;
  if (args.vsTorch && !python) {
    console.error("PyTorch not found: `apt-get install python3-torch` for --vs-torch");
  }
  const { run: benches, missing } = availableBenches();
  const training: TrainingRecord[] = [];
  const torch = new Map<string, TorchRun>();
  for (const bench of args.only === "kernels" ? [] : benches) {
    const loadavg1 = Deno.loadavg()[0];
    const figure = await measureBench(bench, args.steps);
    const steps = bench.steps(args.steps);
    training.push({
      experiment: bench.experiment,
      label: bench.label,
      steps,
      stepsPerSec: figure.stepsPerSec,
      path: figure.path,
      dispatchesPerStep: figure.dispatchesPerStep,
      dispatchOverheadShare: dispatchOverheadShare(
        figure.dispatchesPerStep,
        emptyUs,
        1000 / figure.stepsPerSec,
      ),
      loadavg1,
      timing: figure.timing,
    });
    const row: BenchRow = { name: bench.label, value: figure.stepsPerSec, unit: "steps/s" };
    rows.push(row);
    const spec = torchSpec(bench, figure, steps);
    if (!python || !spec) continue;
    // PyTorch trains each model right after seedlab did, so both see the machine's load alike.
    for (const run of await runTorchBench(python, [spec], torchVariants())) {
      const label = run.variant.label;
      const merged = torch.get(label) ?? { ...run, figures: {} };
      Object.assign(merged.figures, run.figures);
      torch.set(label, merged);
      (row.torch ??= {})[label] = run.figures[bench.label];
    }
  }
  const loadAfter = Deno.loadavg();
  console.log(`adapter: ${gpu.adapter.description} (${Deno.build.os}/${Deno.build.arch})`);
  // The bench's own work raises the average too, so the figure before it is the telling one.
  console.log(
    `load average: ${loadBefore[0].toFixed(2)} before, ${loadAfter[0].toFixed(2)} after, on ` +
      `${navigator.hardwareConcurrency} cores (figures drop as other work shares them)`,
  );
  for (const run of torch.values()) {
    console.log(
      `PyTorch ${run.torch} (${run.variant.label}): ${run.threads} intra-op thread(s), ` +
        `BLAS in use: ${run.blas.name}${run.blas.library ? ` [${run.blas.library}]` : ""}`,
    );
  }
  if (missing.length > 0) {
    console.log(`not registered, so not benched: ${missing.join(", ")}`);
  }
  console.log(formatRows(rows, [...torch.values()]));
  if (training.length > 0) console.log(`\n${formatDispatches(training, emptyUs)}`);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const path = fromFileUrl(new URL(`./results/${stamp}.json`, import.meta.url));
  const record = {
    adapter: gpu.adapter,
    deno: Deno.version,
    steps: args.steps,
    loadavg: { before: loadBefore, after: loadAfter, cores: navigator.hardwareConcurrency },
    emptyDispatchUs: emptyUs,
    torch: [...torch.values()],
    rows,
    training,
  };
  await writeFileAtomic(path, JSON.stringify(record, null, 2) + "\n");
  console.log(`wrote ${path}`);
  return ExitCode.ok;
}

/** The figures table: value and unit, then per PyTorch run its figure and the ratio to it. */
export function formatRows(rows: readonly BenchRow[], torch: readonly TorchRun[]): string {
  const width = Math.max(...rows.map((r) => r.name.length));
  return rows.map((r) => {
    const ratios = torch.map((run) => {
      const t = r.torch?.[run.variant.label];
      return t ? `   ${run.variant.label} ${t.toFixed(1)} → ×${(r.value / t).toFixed(2)}` : "";
    }).join("");
    return `${r.name.padEnd(width)}  ${r.value.toFixed(1).padStart(10)} ${r.unit}${ratios}`;
  }).join("\n");
}

/** Per training figure: dispatches per step and the share of the step that launching them is. */
export function formatDispatches(training: readonly TrainingRecord[], emptyUs: number): string {
  const lines = training.map((t) =>
    `${t.experiment} (${t.path} path): ${t.dispatchesPerStep} ` +
    `dispatches/step × ${emptyUs.toFixed(1)} µs = ` +
    `${((t.dispatchesPerStep * emptyUs) / 1000).toFixed(2)} ms of a ` +
    `${(1000 / t.stepsPerSec).toFixed(2)} ms step (${
      (100 * t.dispatchOverheadShare).toFixed(1)
    }%); ` +
    `load average ${t.loadavg1.toFixed(1)} when its measurement began`
  );
  return [
    `dispatch overhead (an empty dispatch costs ${emptyUs.toFixed(1)} µs on this adapter):`,
    ...lines.map((l) => `  ${l}`),
  ].join("\n");
}

if (import.meta.main) {
  let code: number;
  try {
    code = await runBench(Deno.args);
  } catch (e) {
    if (!(e instanceof UsageError || e instanceof NoAdapterError)) throw e;
    console.error(`error: ${e.message}`);
    code = e instanceof UsageError ? ExitCode.usage : ExitCode.noAdapter;
  }
  Deno.exit(code);
}
