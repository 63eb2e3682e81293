/** In-process training for tests that compare runs step by step. */
import type { LanguageModelConfig, LanguageModelExperiment } from "../experiments/types.ts";
import { getGpu } from "../kernels/device.ts";
import type { Progress } from "../harness/progress.ts";
import { trainLanguageModel, type TrainOutcome } from "../harness/train.ts";
import { ParamStore } from "../nn/params.ts";

/** A finished run and the loss of every one of its steps. */
export interface SteppedRun {
  outcome: TrainOutcome;
  /** losses[i] is the minibatch loss of step i + 1. */
  losses: number[];
  /** Whether the model offered a fused training step. */
  recordsFused: boolean;
}

/**
 * Trains through the harness's loop (as `deno task exp` does) with one readback per step, so
 * every step's loss is seen. `fused` undefined is the harness's default (a model's fused step
 * when it has one); false forces the autograd graph.
 */
export async function trainEveryStep<C extends LanguageModelConfig>(args: {
  experiment: LanguageModelExperiment<C>;
  config: C;
  vocabSize: number;
  seed: number;
  trainTokens: Uint32Array;
  valTokens: Uint32Array;
  fused?: boolean;
}): Promise<SteppedRun> {
  const gpu = await getGpu();
  const store = new ParamStore(gpu);
  const model = args.experiment.createModel(store, args.config, args.vocabSize);
  store.finalize();
  const losses: number[] = [];
  const progress: Progress = {
    step: (step, _total, loss) => losses[step - 1] = loss,
    line() {},
    done() {},
  };
  const outcome = await trainLanguageModel({
    gpu,
    config: args.config,
    seed: args.seed,
    model,
    store,
    trainTokens: args.trainTokens,
    valTokens: args.valTokens,
    progress,
    interrupted: () => false,
    chunkSteps: 1,
    fused: args.fused,
  });
  return { outcome, losses, recordsFused: model.recordTrainStep !== undefined };
}
