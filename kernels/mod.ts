/**
 * The `kernels` namespace of seedlab's public API (mod.ts): the device, tensors, recording and
 * replaying plans, and every kernel's dispatcher under its own name with its float64 reference
 * beside it. A dispatcher records into a Recorder; the matching graph op with a backward is in
 * the `nn` namespace under the same name where one exists (kernels.matmul vs nn.matmul).
 */

// Device, tensors, recording.
export { getGpu, NoAdapterError } from "./device.ts";
export type { AdapterSummary, Gpu } from "./device.ts";
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
} from "./tensor.ts";
export type { DType } from "./tensor.ts";
export { f32Bits, Plan, Recorder, runOnce, uniformU32 } from "./program.ts";
export type { Binding, Kernel } from "./program.ts";
export { Counter, createCounters } from "./counters.ts";
export { philox4x32, Stream, streamKey } from "./philox.ts";
export type { StreamName } from "./philox.ts";

// What a hand-written kernel needs: workgroup grids, the validators every dispatcher calls,
// one source holding several kernels, llvmpipe's loop limit, per-adapter launch shapes.
export { grid1d, MAX_GROUPS_PER_DIM } from "./grid.ts";
export { requireDisjoint, requireF32, requireSameShape } from "./validate.ts";
export { wgslSection } from "./wgsl.ts";
export { MAX_LOOP_ITERATIONS } from "./device_limits.ts";
export { adapterKind, tuningFor } from "./tuning.ts";
export type { AdapterKind, KernelTuning } from "./tuning.ts";

// Dispatchers and their references.
export {
  add,
  addInto,
  copy,
  elementwiseReference,
  mul,
  relu,
  reluBackward,
  scale,
} from "./elementwise.ts";
export type { ElementwiseOp } from "./elementwise.ts";
export { matmul, matmulReference } from "./matmul.ts";
export type { MatmulEpilogue } from "./matmul.ts";
export { softmax, softmaxBackward, softmaxReference } from "./softmax.ts";
export { layerNorm, layerNormBackward } from "./layernorm.ts";
export { addLayerNorm, addLayerNormBackward } from "./add_layernorm.ts";
export type { Activation } from "./activation.ts";
export { activationBackward } from "./activation_backward.ts";
export { dropout, dropoutBackward } from "./dropout.ts";
export { cumulativeMean } from "./cumulative_mean.ts";
export { colSum, rowSum } from "./reduce.ts";
export { fillNormal, fillUniform } from "./random_fill.ts";
export { adamw } from "./adamw.ts";
export { crossEntropy } from "./cross_entropy.ts";
export { embeddingBackward, embeddingForward } from "./embedding.ts";
export {
  attentionBackward,
  attentionBackwardReference,
  attentionDropoutMask,
  attentionForward,
  attentionReference,
  keepWords as attentionKeepWords,
} from "./attention.ts";
export type {
  AttentionBackwardArgs,
  AttentionDropout,
  AttentionForwardArgs,
  AttentionOperand,
} from "./attention.ts";
export { permute, permuteReference } from "./permute.ts";
export { concat, concatReference, split, splitReference } from "./concat.ts";
export type { Piece, SplitTarget } from "./concat.ts";
