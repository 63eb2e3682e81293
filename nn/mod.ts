/**
 * The `nn` namespace of seedlab's public API (mod.ts): the autograd graph, the parameter store,
 * differentiable ops (each records its forward and pushes its backward) and the lecture's
 * modules with PyTorch's parameter names.
 */

// The graph and parameters.
export { Graph, Var } from "./graph.ts";
export type { GradTarget, RandomContext, RandomSite } from "./graph.ts";
export { ParamStore } from "./params.ts";
export type { Init, Param, ParamGroup, ParamHandle } from "./params.ts";

// Ops, by what they are.
export { add, cumulativeMean, dropout, mul, relu, scale } from "./elementwise_ops.ts";
export type { DropoutSource } from "./elementwise_ops.ts";
export { matmul } from "./matmul_ops.ts";
export { layerNorm, softmax } from "./normalization_ops.ts";
export { addLayerNorm, classifierLoss, linear } from "./layer_ops.ts";
export type { AddLayerNormResult, LinearOptions } from "./layer_ops.ts";
export { crossEntropyLoss, embedding } from "./ops.ts";
export type { LossSink } from "./ops.ts";
export { causalSelfAttention, causalSelfAttentionQkv } from "./attention.ts";
export type { CausalSelfAttentionOptions } from "./attention.ts";
export { concat, permute, reshape, split, transpose, view } from "./shape_ops.ts";

// Modules.
export {
  Dropout,
  Embedding,
  Head,
  LayerNorm,
  Linear,
  linearInit,
  TokenAndPosition,
} from "./modules.ts";
export type { InitScheme } from "./modules.ts";
export { Block, FeedForward, MultiHeadAttention } from "./transformer.ts";
export type { BlockOptions } from "./transformer.ts";
