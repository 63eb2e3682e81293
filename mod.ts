/**
 * seedlab's public API: the device and tensors, the kernels' dispatchers, the autograd graph
 * and modules, and the experiment types. A new model is one experiment file that imports from
 * here (see the README's "Writing an experiment").
 */

// Device, tensors, recording.
export { getGpu, NoAdapterError } from "./kernels/device.ts";
export type { AdapterSummary, Gpu } from "./kernels/device.ts";
export {
  createTensor,
  LimitError,
  readF32,
  readTensor,
  readU32,
  reshape,
  ShapeError,
  Tensor,
  tensorView,
  writeTensor,
} from "./kernels/tensor.ts";
export type { DType } from "./kernels/tensor.ts";
export { f32Bits, Plan, Recorder, runOnce, uniformU32 } from "./kernels/program.ts";
export type { Binding, Kernel } from "./kernels/program.ts";
// What a user-written kernel needs (see the README's "Writing your own op"): workgroup grids,
// one source holding several kernels, the validators every dispatcher calls, the loop limit.
export { grid1d, MAX_GROUPS_PER_DIM } from "./kernels/grid.ts";
export { addInto, copy } from "./kernels/elementwise.ts";
export { requireDisjoint, requireF32, requireSameShape } from "./kernels/validate.ts";
export { wgslSection } from "./kernels/wgsl.ts";
export { MAX_LOOP_ITERATIONS } from "./kernels/device_limits.ts";
export { Counter, createCounters } from "./kernels/counters.ts";
export { philox4x32, Stream, streamKey } from "./kernels/philox.ts";
export type { StreamName } from "./kernels/philox.ts";

// Kernels (device dispatchers; each has a TypeScript reference beside it).
export { matmul as matmulKernel, matmulReference } from "./kernels/matmul.ts";
export { softmax as softmaxKernel, softmaxBackward, softmaxReference } from "./kernels/softmax.ts";
export { layerNorm as layerNormKernel, layerNormBackward } from "./kernels/layernorm.ts";
// Kernel names that an nn op also uses take a Kernel suffix, as matmul, softmax, layerNorm do.
export { dropout as dropoutKernel, dropoutBackward } from "./kernels/dropout.ts";
export { cumulativeMean as cumulativeMeanKernel } from "./kernels/cumulative_mean.ts";
export { colSum, rowSum } from "./kernels/reduce.ts";
export { fillNormal, fillUniform } from "./kernels/random_fill.ts";
export { adamw } from "./kernels/adamw.ts";
export { crossEntropy } from "./kernels/cross_entropy.ts";
export { embeddingBackward, embeddingForward } from "./kernels/embedding.ts";
export {
  attentionBackward,
  attentionBackwardReference,
  attentionDropoutMask,
  attentionForward,
  attentionReference,
  keepWords as attentionKeepWords,
} from "./kernels/attention.ts";
export type {
  AttentionBackwardArgs,
  AttentionDropout,
  AttentionForwardArgs,
  AttentionOperand,
} from "./kernels/attention.ts";
export { permute as permuteKernel, permuteReference } from "./kernels/permute.ts";
export {
  concat as concatKernel,
  concatReference,
  split as splitKernel,
  splitReference,
} from "./kernels/concat.ts";
export type { Piece, SplitTarget } from "./kernels/concat.ts";
export type { MatmulEpilogue } from "./kernels/matmul.ts";
export type { Activation } from "./kernels/activation.ts";
export { activationBackward } from "./kernels/activation_backward.ts";
export {
  addLayerNorm as addLayerNormKernel,
  addLayerNormBackward,
} from "./kernels/add_layernorm.ts";

// Autograd and modules.
export { Graph, Var } from "./nn/graph.ts";
export type { GradTarget, RandomContext, RandomSite } from "./nn/graph.ts";
export { ParamStore } from "./nn/params.ts";
export type { Init, Param, ParamGroup } from "./nn/params.ts";
export { crossEntropyLoss, embedding } from "./nn/ops.ts";
export { add, relu } from "./nn/elementwise_ops.ts";
export { layerNorm, softmax } from "./nn/normalization_ops.ts";
export { matmul } from "./nn/matmul_ops.ts";
export { addLayerNorm, classifierLoss, linear } from "./nn/layer_ops.ts";
export type { AddLayerNormResult, LinearOptions } from "./nn/layer_ops.ts";
export { cumulativeMean, dropout, mul, scale } from "./nn/elementwise_ops.ts";
export type { DropoutSource } from "./nn/elementwise_ops.ts";
export { causalSelfAttention, causalSelfAttentionQkv } from "./nn/attention.ts";
export type { CausalSelfAttentionOptions } from "./nn/attention.ts";
export {
  Dropout,
  Embedding,
  Head,
  LayerNorm,
  Linear,
  linearInit,
  TokenAndPosition,
} from "./nn/modules.ts";
export type { InitScheme } from "./nn/modules.ts";
export { Block, FeedForward, MultiHeadAttention } from "./nn/transformer.ts";
export type { BlockOptions } from "./nn/transformer.ts";
// The graph's reshape is `view` here: `reshape` above is the tensor one.
export { concat, permute, split, transpose, view } from "./nn/shape_ops.ts";

// Experiments.
export { languageModelSchema } from "./experiments/types.ts";
export { createGpt, gpt } from "./experiments/gpt.ts";
export type { GptConfig } from "./experiments/gpt.ts";
export type {
  CheckExperiment,
  Experiment,
  LanguageModel,
  LanguageModelConfig,
  LanguageModelExperiment,
  TorchTensor,
} from "./experiments/types.ts";
export { experiments } from "./experiments/mod.ts";
