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
export { Plan, Recorder, runOnce } from "./kernels/program.ts";
export type { Kernel } from "./kernels/program.ts";
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

// Autograd and modules.
export { Graph, Var } from "./nn/graph.ts";
export { ParamStore } from "./nn/params.ts";
export type { Init, Param } from "./nn/params.ts";
export { crossEntropyLoss, embedding } from "./nn/ops.ts";
export { add, layerNorm, linear, matmul, relu, softmax } from "./nn/attention_ops.ts";
export { cumulativeMean, dropout, mul, scale } from "./nn/elementwise_ops.ts";
export type { DropoutSource } from "./nn/elementwise_ops.ts";
export { causalSelfAttention, causalSelfAttentionQkv } from "./nn/attention.ts";
export type { CausalSelfAttentionOptions } from "./nn/attention.ts";
export { Embedding, Head, Linear, TokenAndPosition } from "./nn/modules.ts";

// Experiments.
export { languageModelSchema } from "./experiments/types.ts";
export type {
  CheckExperiment,
  Experiment,
  LanguageModel,
  LanguageModelConfig,
  LanguageModelExperiment,
} from "./experiments/types.ts";
export { experiments } from "./experiments/mod.ts";
