/**
 * `deno task bench [--vs-torch] [--python PATH] [--steps N] [--only kernels|training]`: kernel
 * throughput and training steps/s on the notebook configs, printed as a table and written to
 * bench/results/<time>.json. With --vs-torch, bench/torch_bench.py runs the same configs on the
 * CPU in the same session and the table gains seedlab/PyTorch ratios. Training figures are the
 * best of a few runs: the CI machines' two cores are shared, so single runs are noisy.
 */
import { fileURLToPath as fromFileUrl } from "node:url";
import { parseArgs } from "node:util";
import { getGpu } from "../kernels/device.ts";
import { experiments } from "../experiments/mod.ts";
import type { LanguageModelConfig, LanguageModelExperiment } from "../experiments/types.ts";
import { ParamStore } from "../nn/params.ts";
import { writeFileAtomic } from "../harness/atomic.ts";
import { resolveConfig } from "../harness/config.ts";
import { loadCorpus, tokenize } from "../harness/data.ts";
import { createProgress } from "../harness/progress.ts";
import { trainLanguageModel, type TrainTiming } from "../harness/train.ts";
import { benchKernels, type BenchResult } from "./kernels_bench.ts";

/** One measured figure, with the PyTorch figure for the same config when --vs-torch ran. */
export interface BenchRow extends BenchResult {
  torch?: number;
}

/** A training measurement: steps/s over the step loop, and where the run's host time went. */
export interface TrainingFigure {
  stepsPerSec: number;
  timing: TrainTiming;
}

/**
 * Trains `steps` steps of an experiment's default config and returns steps/s (step loop only,
 * estimates excluded, as `exp` reports it). `fused: false` forces the autograd graph path.
 */
export async function trainingStepsPerSec(
  name: string,
  steps: number,
  fused = true,
): Promise<TrainingFigure> {
  const experiment = experiments.get(name) as LanguageModelExperiment;
  const { config } = await resolveConfig(experiment.schema as never, {
    sets: [`train.steps=${steps}`, `eval.interval=${steps}`, "eval.iters=1", "sample.tokens=0"],
  });
  const lm = config as unknown as LanguageModelConfig;
  const corpus = tokenize(await loadCorpus(lm.data), lm.train.blockSize + 1);
  const gpu = await getGpu();
  const store = new ParamStore(gpu);
  const model = experiment.createModel(store, lm, corpus.vocab.length);
  store.finalize();
  const outcome = await trainLanguageModel({
    gpu,
    config: lm,
    seed: 0,
    model,
    store,
    trainTokens: corpus.train,
    valTokens: corpus.val,
    progress: createProgress(true),
    interrupted: () => false,
    fused,
  });
  return { stepsPerSec: outcome.stepsTrained / (outcome.trainMs / 1000), timing: outcome.timing };
}

/** The run with the most steps/s out of `runs`. */
async function bestOf(runs: number, measure: () => Promise<TrainingFigure>) {
  let best: TrainingFigure | undefined;
  for (let i = 0; i < runs; i++) {
    const figure = await measure();
    if (!best || figure.stepsPerSec > best.stepsPerSec) best = figure;
  }
  return best!;
}

// Debian's python3-torch installs for the system interpreter, which may not be first on PATH.
const PYTHONS = ["python3", "/usr/bin/python3"];

async function torchFigures(
  steps: number,
  only?: string,
): Promise<Record<string, number> | undefined> {
  const script = fromFileUrl(new URL("./torch_bench.py", import.meta.url));
  for (const python of only ? [only] : PYTHONS) {
    try {
      const probe = await new Deno.Command(python, { args: ["-c", "import torch"] }).output();
      if (!probe.success) continue;
      const out = await new Deno.Command(python, { args: [script, String(steps)] }).output();
      if (!out.success) {
        console.error(
          `PyTorch bench failed:\n${new TextDecoder().decode(out.stderr).slice(-2000)}`,
        );
        return undefined;
      }
      return JSON.parse(new TextDecoder().decode(out.stdout));
    } catch {
      // Interpreter missing: try the next one.
    }
  }
  console.error("PyTorch not found: `apt-get install python3-torch` for --vs-torch");
  return undefined;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "vs-torch": { type: "boolean", default: false },
      python: { type: "string" },
      steps: { type: "string", default: "2000" },
      only: { type: "string" },
    },
  });
  const steps = Number(values.steps);
  const gpu = await getGpu();
  // The CI machines are shared: the load average says how far to trust a run's figures.
  const loadBefore = Deno.loadavg();
  const rows: BenchRow[] = [];
  if (values.only !== "training") rows.push(...await benchKernels());
  const timings: Record<string, TrainTiming> = {};
  if (values.only !== "kernels") {
    // Warm-up: pipelines compile on first use and the first run pays for it.
    await trainingStepsPerSec("bigram", 200);
    const bigram = await bestOf(3, () => trainingStepsPerSec("bigram", steps));
    timings.bigram = bigram.timing;
    rows.push({
      name: "bigram train steps/s (B=32, T=8)",
      value: bigram.stepsPerSec,
      unit: "steps/s",
    });
    const unfusedSteps = Math.max(20, Math.ceil(steps / 10));
    const unfused = await trainingStepsPerSec("bigram", unfusedSteps, false);
    timings.bigramUnfused = unfused.timing;
    rows.push({
      name: "bigram train steps/s, autograd graph (unfused)",
      value: unfused.stepsPerSec,
      unit: "steps/s",
    });
    const t = bigram.timing;
    rows.push({
      name: "bigram host encode+submit, share of run wall",
      value: (100 * t.encodeSubmitMs) / t.totalMs,
      unit: "%",
    });
    const attention = await trainingStepsPerSec("attention_head", Math.ceil(steps / 2));
    timings.attentionHead = attention.timing;
    rows.push({
      name: "attention_head train steps/s (B=32, T=8, C=32)",
      value: attention.stepsPerSec,
      unit: "steps/s",
    });
  }
  let torch: Record<string, number> | undefined;
  if (values["vs-torch"]) {
    torch = await torchFigures(steps, values.python);
    if (torch) {
      for (const r of rows) {
        if (r.name.startsWith("bigram train")) r.torch = torch.bigram;
        if (r.name.startsWith("attention_head train")) r.torch = torch.attention_head;
      }
    }
  }
  const width = Math.max(...rows.map((r) => r.name.length));
  const loadAfter = Deno.loadavg();
  console.log(`adapter: ${gpu.adapter.description} (${Deno.build.os}/${Deno.build.arch})`);
  // The bench's own work raises the average too, so the figure before it is the telling one.
  console.log(
    `load average before the bench: ${loadBefore[0].toFixed(2)} on ` +
      `${navigator.hardwareConcurrency} cores (figures drop as other work shares them)`,
  );
  for (const r of rows) {
    const ratio = r.torch
      ? `   PyTorch ${r.torch.toFixed(0)} → ×${(r.value / r.torch).toFixed(2)}`
      : "";
    console.log(`${r.name.padEnd(width)}  ${r.value.toFixed(1).padStart(10)} ${r.unit}${ratio}`);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const path = fromFileUrl(new URL(`./results/${stamp}.json`, import.meta.url));
  await writeFileAtomic(
    path,
    JSON.stringify(
      {
        adapter: gpu.adapter,
        deno: Deno.version,
        steps,
        loadavg: { before: loadBefore, after: loadAfter, cores: navigator.hardwareConcurrency },
        torch,
        rows,
        timings,
      },
      null,
      2,
    ) +
      "\n",
  );
  console.log(`wrote ${path}`);
}
