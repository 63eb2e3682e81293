/**
 * seedlab's public API. A new model is one experiment file that imports from here (see the
 * README's "Writing an experiment" and examples/).
 *
 * The flat names are the experiment author's API, all that examples/char_mlp.ts and
 * examples/silu.ts need:
 * - an experiment: `languageModelSchema` (the shared config sections with your defaults) and
 *   the `LanguageModelExperiment` it returns, built from a `LanguageModel`;
 * - a model: the `Graph` of `Var`s it records into, the `ParamStore` that owns its weights, the
 *   common modules (`Embedding`, `Linear`, `LayerNorm`, `Dropout`) and `relu`;
 * - an op of your own: a WGSL source split by `wgslSection`, dispatched through the
 *   `Recorder` over `Tensor`s on a `grid1d`, checked first by `requireF32`,
 *   `requireSameShape`, `requireDisjoint` and against `MAX_LOOP_ITERATIONS`;
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
export { relu } from "./nn/elementwise_ops.ts";

// An op of your own.
export { Recorder } from "./kernels/program.ts";
export { Tensor } from "./kernels/tensor.ts";
export { grid1d } from "./kernels/grid.ts";
export { requireDisjoint, requireF32, requireSameShape } from "./kernels/validate.ts";
export { wgslSection } from "./kernels/wgsl.ts";
export { MAX_LOOP_ITERATIONS } from "./kernels/device_limits.ts";
