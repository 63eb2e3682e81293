/**
 * Training steps/s of the registered language-model experiments at their default configs, plus
 * what the same config means for bench/torch_bench.py. The list is data: an entry whose
 * experiment is not registered is skipped, so a new experiment joins the bench by being
 * registered and listed here. Every run uses the embedded corpus (speed does not depend on the
 * text, and nothing is downloaded).
 */
import { experiments } from "../experiments/mod.ts";
import type { LanguageModelConfig, LanguageModelExperiment } from "../experiments/types.ts";
import { getGpu } from "../kernels/device.ts";
import { ParamStore } from "../nn/params.ts";
import { resolveConfig } from "../harness/config.ts";
import { loadCorpus, tokenize } from "../harness/data.ts";
import { stepCapturingSubmitter } from "../harness/profile.ts";
import { createProgress } from "../harness/progress.ts";
import { trainLanguageModel, type TrainPath, type TrainTiming } from "../harness/train.ts";

/** A training measurement: steps/s over the step loop, dispatches per step, host time. */
export interface TrainingFigure {
  stepsPerSec: number;
  dispatchesPerStep: number;
  /** Which step ran: the model's fused kernels or the autograd graph. */
  path: TrainPath;
  timing: TrainTiming;
  /** The resolved config and the corpus's vocabulary size (for the PyTorch side). */
  config: Record<string, unknown>;
  vocab: number;
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
    sets: [
      `train.steps=${steps}`,
      `eval.interval=${steps}`,
      "eval.iters=1",
      "sample.tokens=0",
      "data=mobydick",
    ],
  });
  const lm = config as unknown as LanguageModelConfig;
  const corpus = tokenize(await loadCorpus(lm.data), lm.train.blockSize + 1);
  const gpu = await getGpu();
  const store = new ParamStore(gpu);
  const model = experiment.createModel(store, lm, corpus.vocab.length);
  store.finalize();
  const capture = stepCapturingSubmitter(gpu);
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
    submitter: capture.submitter,
  });
  return {
    stepsPerSec: outcome.stepsTrained / (outcome.trainMs / 1000),
    dispatchesPerStep: capture.stepPlan()?.dispatches.length ?? 0,
    path: outcome.path,
    timing: outcome.timing,
    config: config as Record<string, unknown>,
    vocab: corpus.vocab.length,
  };
}

/** One training figure of the bench. */
export interface TrainingBench {
  /** The registered experiment. */
  experiment: string;
  /** The row's name in the table. */
  label: string;
  /** Steps per run, from the bench's --steps. */
  steps(base: number): number;
  /** Runs, best kept (after one warm-up run when more than one). */
  runs: number;
  /** false: force the autograd graph path. */
  fused: boolean;
  /**
   * torch_bench.py's model keys from the resolved config's `model` section; undefined: no
   * PyTorch column.
   */
  torch?(model: Record<string, unknown>): Record<string, unknown>;
}

/** What the bench trains, in order. */
export const TRAINING_BENCHES: readonly TrainingBench[] = [
  {
    experiment: "bigram",
    label: "bigram train steps/s (notebook config)",
    steps: (n) => n,
    runs: 3,
    fused: true,
    torch: () => ({ kind: "bigram" }),
  },
  {
    experiment: "bigram",
    label: "bigram train steps/s, autograd graph (unfused)",
    steps: (n) => Math.max(20, Math.ceil(n / 10)),
    runs: 1,
    fused: false,
  },
  {
    experiment: "attention_head",
    label: "attention_head train steps/s (lecture config)",
    steps: (n) => Math.ceil(n / 2),
    runs: 1,
    fused: true,
    torch: (m) => ({ kind: "attention_head", n_embd: m.nEmbd, head_size: m.headSize }),
  },
  {
    experiment: "gpt",
    label: "gpt train steps/s (default: 64, 4 heads, 4 layers)",
    steps: (n) => Math.max(20, Math.ceil(n / 20)),
    runs: 1,
    fused: true,
    torch: (m) => ({
      kind: "gpt",
      n_embd: m.nEmbd,
      n_head: m.nHead,
      n_layer: m.nLayer,
      // Keys an older gpt config lacks take the lecture's values.
      dropout: m.dropout ?? 0,
      ffn_mult: m.ffnMult ?? 4,
      residual: m.residual ?? true,
      layer_norm: m.layerNorm ?? true,
    }),
  },
];

/** The benches whose experiment is registered, and the names of those that are not. */
export function availableBenches(): { run: TrainingBench[]; missing: string[] } {
  const run = TRAINING_BENCHES.filter((b) =>
    experiments.get(b.experiment)?.kind === "language-model"
  );
  const missing = [
    ...new Set(TRAINING_BENCHES.filter((b) => !run.includes(b)).map((b) => b.experiment)),
  ];
  return { run, missing };
}

/** The run with the most steps/s of `runs` (after a short warm-up run when runs > 1). */
export async function measureBench(bench: TrainingBench, base: number): Promise<TrainingFigure> {
  // Pipelines compile on first use: a short run first keeps that out of the best-of figure.
  if (bench.runs > 1) await trainingStepsPerSec(bench.experiment, 200, bench.fused);
  let best: TrainingFigure | undefined;
  for (let i = 0; i < bench.runs; i++) {
    const figure = await trainingStepsPerSec(bench.experiment, bench.steps(base), bench.fused);
    if (!best || figure.stepsPerSec > best.stepsPerSec) best = figure;
  }
  return best!;
}

/** The torch_bench.py spec of one bench: shared training keys plus the model's. */
export function torchSpec(
  bench: TrainingBench,
  figure: TrainingFigure,
  steps: number,
): Record<string, unknown> | undefined {
  if (!bench.torch) return undefined;
  const { train, model } = figure.config as {
    train: LanguageModelConfig["train"];
    model?: Record<string, unknown>;
  };
  return {
    name: bench.label,
    steps,
    batch: train.batchSize,
    block: train.blockSize,
    lr: train.lr,
    vocab: figure.vocab,
    ...bench.torch(model ?? {}),
  };
}
