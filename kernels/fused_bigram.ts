/**
 * The bigram model's training step fused into two dispatches (batch + loss, then gradient +
 * AdamW) and its evaluation batch into one. The unfused path records five dispatches (batch,
 * embedding gather, cross-entropy, embedding backward, AdamW); llvmpipe charges 25–60 µs per
 * dispatch, and the gather-style embedding backward alone loops over every position for every
 * table element. The fused kernels repeat the unfused kernels' float operations in the same
 * order, so losses and parameters are bit-identical to the autograd path (tests/fused_bigram_test.ts).
 */
import philoxSource from "./philox.wgsl" with { type: "text" };
import adamwBiasSource from "./adamw_bias.wgsl" with { type: "text" };
import adamwStepSource from "./adamw_step.wgsl" with { type: "text" };
import rowStatsSource from "./row_stats.wgsl" with { type: "text" };
import source from "./fused_bigram.wgsl" with { type: "text" };
import { checkDeviceBatch, type DeviceBatch, sampleBatchReference } from "./batch.ts";
import { crossEntropyReference } from "./cross_entropy.ts";
import { requireDisjoint, requireF32 } from "./validate.ts";
import { wgslSection } from "./wgsl.ts";
import { embeddingBackwardReference, embeddingForwardReference } from "./embedding.ts";
import {
  type AdamwOptions,
  adamwReference,
  adamwUniformWords,
  resolveAdamwOptions,
} from "./adamw.ts";
import { f32Bits, type Recorder, uniformU32 } from "./program.ts";
import { createTensor, LimitError, ShapeError, type Tensor } from "./tensor.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";
import { tuningFor } from "./tuning.ts";

const lossCode = philoxSource + adamwBiasSource + rowStatsSource + wgslSection(source, "loss");
const updateCode = adamwStepSource + wgslSection(source, "update");

/** The batch a fused bigram kernel draws, and where its loss goes. */
export interface FusedBigramBatch extends DeviceBatch {
  /** The logits table, f32 [V, V]. */
  table: Tensor;
}

/** The AdamW state a fused training step updates (the ParamStore's arenas). */
export interface FusedBigramOptimizer extends AdamwOptions {
  /** Parameter arena holding the table at offset 0 and nothing else but padding. */
  params: Tensor;
  m: Tensor;
  v: Tensor;
  weightDecay: number;
}

/** Scratch words the two kernels share for B·T positions and a vocabulary of V. */
export function fusedBigramScratchSize(positions: number, V: number): number {
  const words = Math.ceil(positions / 32);
  return 2 * positions + 2 * V + V * words + V * positions + 2;
}

/** Per-invocation loop iterations of the `loss` kernel (llvmpipe's budget). */
export function fusedBigramLossLoopCount(
  B: number,
  T: number,
  V: number,
  withGrad: boolean,
): number {
  const N = B * T;
  const words = Math.ceil(N / 32);
  // Each loop also pays one evaluation for its exit test; Philox runs 10 rounds. A row's mask
  // walk visits each of its words and each set bit (at most N in all).
  const zero = withGrad ? Math.ceil((V * words) / 256) + 1 : 0;
  const batch = Math.ceil(B / 256) * (11 + T + 1) + 1;
  const rows = Math.ceil(V / 256) * (V + (V + 1) + (withGrad ? 2 * words + N + 1 : 0)) + 1;
  const positions = Math.ceil(N / 256) + 1;
  return zero + batch + rows + positions + 9;
}

function validate(op: string, args: FusedBigramBatch): { V: number; N: number } {
  const { tokens, counters, table, losses, batchSize: B, blockSize: T } = args;
  for (const t of [tokens, counters]) {
    if (t.dtype !== "u32") throw new ShapeError(`${op}: ${t.describe()} must be u32`);
  }
  requireF32(op, table, losses);
  if (table.shape.length !== 2 || table.shape[0] !== table.shape[1]) {
    throw new ShapeError(`${op}: ${table.describe()} must be a square [V, V] table`);
  }
  const V = table.shape[0];
  if (!Number.isInteger(B) || !Number.isInteger(T) || B < 1 || T < 1) {
    throw new ShapeError(`${op}: batch [${B}, ${T}] must be positive integers`);
  }
  checkDeviceBatch(op, args);
  return { V, N: B * T };
}

function recordLoss(
  rec: Recorder,
  args: FusedBigramBatch,
  scratch: Tensor,
  adam?: { lr: number; beta1: number; beta2: number },
): void {
  const withGrad = adam !== undefined;
  const op = withGrad ? "fusedBigramStep" : "fusedBigramEval";
  const { V, N } = validate(op, args);
  const B = args.batchSize, T = args.blockSize;
  const loops = fusedBigramLossLoopCount(B, T, V, withGrad);
  if (loops > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `${op}: [B=${B}, T=${T}] with a vocabulary of ${V} needs ${loops} loop iterations per ` +
        `invocation of its single workgroup, above llvmpipe's limit of ${MAX_LOOP_ITERATIONS}`,
    );
  }
  requireDisjoint(op, [args.counters, args.losses, scratch], [args.tokens, args.table]);
  const params = uniformU32(
    rec.gpu,
    [
      args.key[0],
      args.key[1],
      // As kernels/adamw.ts: host-side float64, rounded once to f32.
      f32Bits(adam?.lr ?? 0),
      f32Bits(Math.log(adam?.beta1 ?? 0.9)),
      f32Bits(Math.log(adam?.beta2 ?? 0.999)),
    ],
    "fused_bigram.loss",
  );
  rec.dispatch(
    {
      name: withGrad ? "fused_bigram_loss_grad" : "fused_bigram_loss",
      code: lossCode,
      constants: {
        N,
        V,
        NT: args.tokens.size,
        B,
        T,
        CAPACITY: args.losses.size,
        COUNTER: args.counterIndex,
        WITH_GRAD: withGrad ? 1 : 0,
      },
    },
    [args.tokens, args.counters, args.table, args.losses, scratch, params],
    1,
  );
}

/** Allocates the scratch buffer a fused bigram plan needs. */
function scratchFor(args: FusedBigramBatch): Tensor {
  const V = args.table.shape[0] ?? 0;
  return createTensor(
    args.table.gpu,
    [fusedBigramScratchSize(args.batchSize * args.blockSize, V)],
    "u32",
    "fused_bigram.scratch",
  );
}

/**
 * Records one bigram training step in two dispatches: batch → loss → d(loss)/d(table) → AdamW,
 * with t read from the counters. Same results as sampleBatch + embedding + crossEntropy +
 * embeddingBackward + adamw over an arena that holds only the table.
 */
export function fusedBigramStep(
  rec: Recorder,
  args: FusedBigramBatch & FusedBigramOptimizer,
): void {
  const op = "fusedBigramStep";
  const { V, N } = validate(op, args);
  const { params, m, v } = args;
  requireF32(op, params, m, v);
  for (const t of [m, v]) {
    if (t.size !== params.size) {
      throw new ShapeError(`${op}: ${t.describe()} must have the size of ${params.describe()}`);
    }
  }
  if (args.table.buffer !== params.buffer || args.table.byteOffset !== params.byteOffset) {
    throw new ShapeError(
      `${op}: ${args.table.describe()} must start the arena ${params.describe()}`,
    );
  }
  // Padding of up to one 256-byte alignment unit is allowed; anything more would be another
  // parameter, which this step would not update as AdamW over the whole arena does.
  if (params.size % 4 !== 0 || params.size >= V * V + 64) {
    throw new ShapeError(
      `${op}: ${params.describe()} must hold the [${V}, ${V}] table and nothing else ` +
        `(padded to a multiple of 4)`,
    );
  }
  if (4 * (N + 1) + 1 > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `${op}: ${N} positions per batch need ${4 * (N + 1) + 1} loop iterations per ` +
        `invocation of the update kernel, above llvmpipe's limit of ${MAX_LOOP_ITERATIONS}`,
    );
  }
  requireDisjoint(op, [params, m, v], [args.tokens, args.counters]);
  const o = resolveAdamwOptions(args, op);
  const scratch = scratchFor(args);
  recordLoss(rec, args, scratch, o);
  // The same uniform as kernels/adamw.ts uploads.
  const uniform = uniformU32(rec.gpu, adamwUniformWords(o), "fused_bigram.adamw");
  const len = params.size / 4;
  rec.dispatch(
    { name: "fused_bigram_update", code: updateCode, constants: { N, V, LEN: len } },
    [params, m, v, scratch, uniform],
    tuningFor(rec.gpu.adapter).updateWorkgroups,
  );
}

/** Records one evaluation batch of the bigram model in one dispatch: batch → mean loss. */
export function fusedBigramEval(rec: Recorder, args: FusedBigramBatch): void {
  recordLoss(rec, args, scratchFor(args));
}

/**
 * Float64 reference of one fused training step with batch counter `c` (before the increment):
 * the unfused kernels' references composed. Mutates table, m and v; returns the step's loss.
 */
export function fusedBigramStepReference(
  tokens: Uint32Array,
  table: Float64Array,
  m: Float64Array,
  v: Float64Array,
  o: { B: number; T: number; V: number; key: readonly [number, number]; c: number } & {
    lr: number;
    weightDecay: number;
  },
): number {
  const { B, T, V } = o;
  const { inputs, targets } = sampleBatchReference(tokens, B, T, o.key, o.c);
  const logits = embeddingForwardReference(table, inputs, V, V);
  const { loss, dLogits } = crossEntropyReference(logits, targets, B * T, V);
  const grad = embeddingBackwardReference(inputs, dLogits, V, V);
  adamwReference(table, grad, m, v, o.c + 1, { lr: o.lr, weightDecay: o.weightDecay });
  return loss;
}
