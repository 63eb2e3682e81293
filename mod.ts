/**
 * seedlab's public API. A new model is one experiment file that imports from here (see the
 * README's "Writing an experiment" and examples/).
 *
 * The flat names are the experiment author's API, all that examples/char_mlp.ts and
 * examples/silu.ts need:
 * - an experiment: `languageModelSchema` (the shared config sections with your defaults) and
 *   the `LanguageModelExperiment` it returns, built from a `LanguageModel`;
 * - a model: the `Graph` of `Var`s it records into, the `ParamStore` that owns its weights, the
 *   modules the README's "Writing your own op or model" names (`Embedding`, `Linear`,
 *   `LayerNorm`, `Dropout`, `MultiHeadAttention`, `FeedForward`, `Block`) and `relu`; every
 *   other graph op is `nn.<name>`;
 * - an op of your own: a WGSL source split by `wgslSection`, dispatched through the
 *   `Recorder` over `Tensor`s on a `grid1d` (at most `MAX_GROUPS_PER_DIM` per dimension) with
 *   `uniformU32` parameters, checked first by `requireF32`, `requireSameShape`,
 *   `requireDisjoint` (a `ShapeError`) and against `MAX_LOOP_ITERATIONS` (a `LimitError`);
 *   random ops draw Philox on the `streamKey` stream at the step in `Counter.trainBatch`;
 * - the registered `experiments`, and the lecture's GPT (`gpt`, `createGpt`) to build on.
 *
 * Everything else is namespaced, as jax-js does: `kernels` (device, tensors, plans and every
 * kernel's dispatcher with its reference), `nn` (every graph op and module), and `harness`
 * (types of result files and of the training loop).
 */

export * as kernels from "./kernels/mod.ts";
export * as nn from "./nn/mod.ts";
export type * as harness from "./harness/types.ts";

// An experiment.
export { languageModelSchema } from "./experiments/types.ts";
export type {
  BatchStep,
  CheckExperiment,
  Experiment,
  LanguageModel,
  LanguageModelConfig,
  LanguageModelExperiment,
  TorchTensor,
  TrainStep,
} from "./experiments/types.ts";
export { experiments } from "./experiments/mod.ts";
export { createGpt, gpt } from "./experiments/gpt.ts";
export type { GptConfig } from "./experiments/gpt.ts";

// A model.
export { Graph, Var } from "./nn/graph.ts";
export { ParamStore } from "./nn/params.ts";
export { Dropout, Embedding, LayerNorm, Linear } from "./nn/modules.ts";
export { Block, FeedForward, MultiHeadAttention } from "./nn/transformer.ts";
export { relu } from "./nn/elementwise_ops.ts";

// An op of your own.
export { Recorder, uniformU32 } from "./kernels/program.ts";
export { LimitError, ShapeError, Tensor } from "./kernels/tensor.ts";
export { grid1d, MAX_GROUPS_PER_DIM } from "./kernels/grid.ts";
export { Counter } from "./kernels/counters.ts";
export { streamKey } from "./kernels/philox.ts";
export { requireDisjoint, requireF32, requireSameShape } from "./kernels/validate.ts";
export { wgslSection } from "./kernels/wgsl.ts";
export { MAX_LOOP_ITERATIONS } from "./kernels/device_limits.ts";
