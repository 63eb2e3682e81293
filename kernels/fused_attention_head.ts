/**
 * The attention_head model's training step fused into two dispatches and its evaluation batch
 * into two. `sequence`: one workgroup per batch row carries its sequence through the forward
 * pass and the backward pass down to d(x); `update`: each invocation sums one tile of a weight
 * gradient over the batch's positions and applies AdamW to it. The autograd graph records about
 * 27 dispatches per step, and llvmpipe charges 40–300 µs for each. Which shapes can run fused
 * is decided in kernels/fused_attention_head_plan.ts; the float64 reference is in
 * kernels/fused_attention_head_reference.ts.
 *
 * Determinism: every sum runs in a fixed order (a weight gradient over positions 0 … B·T − 1,
 * the loss over a sequence's positions and then over sequences), so a seed reproduces bit for
 * bit. The orders differ from the graph path's matmuls and reductions, so results match it to
 * rounding, not bit for bit (tests/fused_attention_head_test.ts states the tolerance).
 */
import philoxSource from "./philox.wgsl" with { type: "text" };
import adamwBiasSource from "./adamw_bias.wgsl" with { type: "text" };
import adamwStepSource from "./adamw_step.wgsl" with { type: "text" };
import source from "./fused_attention_head.wgsl" with { type: "text" };
import { checkDeviceBatch, type DeviceBatch } from "./batch.ts";
import { type AdamwOptions, adamwUniformWords, resolveAdamwOptions } from "./adamw.ts";
import {
  type AttentionHeadShape,
  type AttentionHeadWeights,
  planFusedAttentionHead,
  scratchLayout,
  updateRows,
} from "./fused_attention_head_plan.ts";
import { requireDisjoint, requireF32 } from "./validate.ts";
import { wgslSection } from "./wgsl.ts";
import { type Recorder, uniformU32 } from "./program.ts";
import { createTensor, LimitError, ShapeError, type Tensor } from "./tensor.ts";
import { tuningFor } from "./tuning.ts";

/** The batch a fused kernel draws and where its loss goes (as harness/train.ts's BatchStep). */
export interface FusedAttentionHeadBatch extends DeviceBatch {
  /** The parameter arena every weight is a view into. */
  params: Tensor;
  weights: AttentionHeadWeights;
  /** Keep activations in the storage scratch even where workgroup memory fits (tests). */
  forceStorage?: boolean;
}

/** The AdamW state a training step updates (the ParamStore's sibling arenas). */
export interface FusedAttentionHeadOptimizer extends AdamwOptions {
  m: Tensor;
  v: Tensor;
  weightDecay: number;
}

interface Resolved {
  shape: AttentionHeadShape;
  offsets: Record<string, number>;
  plan: { store: "workgroup" | "storage" };
}

function resolveShape(op: string, args: FusedAttentionHeadBatch): Resolved {
  const { tokens, counters, losses, params, weights: w } = args;
  for (const t of [tokens, counters]) {
    if (t.dtype !== "u32") throw new ShapeError(`${op}: ${t.describe()} must be u32`);
  }
  requireF32(op, losses, params, ...Object.values(w));
  const B = args.batchSize, T = args.blockSize;
  if (!Number.isInteger(B) || !Number.isInteger(T) || B < 1 || T < 1) {
    throw new ShapeError(`${op}: batch [${B}, ${T}] must be positive integers`);
  }
  if (w.tokens.shape.length !== 2 || w.keyWeight.shape.length !== 2) {
    throw new ShapeError(`${op}: ${w.tokens.describe()} and ${w.keyWeight.describe()} must be 2-d`);
  }
  const [V, C] = w.tokens.shape;
  const H = w.keyWeight.shape[0];
  const expect: [Tensor, number[]][] = [
    [w.positions, [T, C]],
    [w.keyWeight, [H, C]],
    [w.queryWeight, [H, C]],
    [w.valueWeight, [H, C]],
    [w.lmWeight, [V, H]],
    [w.lmBias, [V]],
  ];
  for (const [t, shape] of expect) {
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ShapeError(`${op}: ${t.describe()} must have shape [${shape.join(", ")}]`);
    }
  }
  const offsets: Record<string, number> = {};
  const names = {
    TOK_AT: w.tokens,
    POS_AT: w.positions,
    KEY_AT: w.keyWeight,
    QUERY_AT: w.queryWeight,
    VALUE_AT: w.valueWeight,
    LMW_AT: w.lmWeight,
    LMB_AT: w.lmBias,
  };
  let covered = 0;
  for (const [name, t] of Object.entries(names)) {
    const at = (t.byteOffset - params.byteOffset) / 4;
    if (t.buffer !== params.buffer || at < 0 || at + t.size > params.size) {
      throw new ShapeError(`${op}: ${t.describe()} must be a view into ${params.describe()}`);
    }
    offsets[name] = at;
    covered += Math.ceil(t.size / 64) * 64;
  }
  // AdamW runs over the whole arena with the fused gradient; another parameter in it would be
  // updated with a zero gradient instead of its own.
  if (params.size % 4 !== 0 || params.size > covered) {
    throw new ShapeError(
      `${op}: ${params.describe()} must hold the seven attention_head parameters and nothing ` +
        `else (padded to a multiple of 4)`,
    );
  }
  checkDeviceBatch(op, args);
  const shape = { B, T, C, H, V };
  const plan = planFusedAttentionHead(params.gpu, shape, args.forceStorage);
  if (!plan.ok) throw new LimitError(`${op}: [B=${B}, T=${T}, C=${C}, H=${H}]: ${plan.reason}`);
  return { shape, offsets, plan };
}

/** `const` declarations for the shapes and offsets every section reads. */
function constants(values: Record<string, number>, scale: number): string {
  const lines = Object.entries(values).map(([k, v]) => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new RangeError(`fused_attention_head: constant ${k} = ${v} is not a u32`);
    }
    return `const ${k}: u32 = ${v}u;`;
  });
  // 17 digits print the f32 value exactly, so the shader's SCALE is kernels/softmax.ts's.
  lines.push(`const SCALE: f32 = ${Math.fround(scale).toPrecision(17)};`);
  return lines.join("\n") + "\n";
}

// The two activation stores; offsets are f32 units, multiples of 4 for the vec4 accessors.
const WORKGROUP_STORE = `
var<workgroup> act: array<vec4<f32>, ACT_USED / 4u>;
fn bind_act(b: u32) {}
fn ld4(i: u32) -> vec4<f32> {
  return act[i >> 2u];
}
fn st4(i: u32, x: vec4<f32>) {
  act[i >> 2u] = x;
}
fn st(i: u32, x: f32) {
  act[i >> 2u][i & 3u] = x;
}
fn sync() {
  workgroupBarrier();
}
`;

const STORAGE_STORE = `
var<private> act_base: u32;
fn bind_act(b: u32) {
  act_base = ACT_AT + b * ACT_USED;
}
fn ld4(i: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(scratch[(act_base + i) >> 2u]);
}
fn st4(i: u32, x: vec4<f32>) {
  scratch[(act_base + i) >> 2u] = bitcast<vec4<u32>>(x);
}
fn st(i: u32, x: f32) {
  scratch[(act_base + i) >> 2u][i & 3u] = bitcast<u32>(x);
}
fn sync() {
  storageBarrier();
  workgroupBarrier();
}
`;

function recordSequence(
  rec: Recorder,
  op: string,
  args: FusedAttentionHeadBatch,
  withGrad: boolean,
): { r: Resolved; scratch: Tensor; consts: string } {
  const r = resolveShape(op, args);
  const { B, T, C, H, V } = r.shape;
  // The same layout for evaluation (its per-position region goes unused), so that both share
  // one shader.
  const layout = scratchLayout(r.shape, r.plan.store);
  const scratch = createTensor(rec.gpu, [layout.words], "u32", "fused_attention_head.scratch");
  requireDisjoint(op, [scratch], [args.tokens, args.counters, args.params]);
  const consts = constants({
    B,
    T,
    C,
    H,
    V,
    LOSS_AT: layout.lossAt,
    G_AT: layout.gAt,
    ACT_AT: layout.actAt,
    WG: tuningFor(rec.gpu.adapter).sequenceWorkgroupSize,
    ...r.offsets,
  }, 1 / Math.sqrt(H));
  const code = consts + philoxSource +
    (r.plan.store === "workgroup" ? WORKGROUP_STORE : STORAGE_STORE) +
    wgslSection(source, "sequence");
  const params = uniformU32(
    rec.gpu,
    [args.key[0], args.key[1], args.tokens.size, args.counterIndex, withGrad ? 1 : 0],
    "fused_attention_head.batch",
  );
  rec.dispatch(
    { name: "fused_attention_head_sequence", code },
    [args.tokens, args.counters, args.params, scratch, params],
    B,
  );
  return { r, scratch, consts };
}

/**
 * Records one training step of the attention_head model in two dispatches: batch → forward →
 * loss → backward → AdamW over the arena, with t read from the counters. Equivalent to the
 * autograd graph's step up to summation order.
 */
export function fusedAttentionHeadStep(
  rec: Recorder,
  args: FusedAttentionHeadBatch & FusedAttentionHeadOptimizer,
): void {
  const op = "fusedAttentionHeadStep";
  const { params, m, v } = args;
  requireF32(op, m, v);
  for (const t of [m, v]) {
    if (t.size !== params.size) {
      throw new ShapeError(`${op}: ${t.describe()} must have the size of ${params.describe()}`);
    }
  }
  requireDisjoint(op, [params, m, v, args.counters, args.losses], [args.tokens]);
  const o = resolveAdamwOptions(args, op);
  const { r, scratch, consts } = recordSequence(rec, op, args, true);
  // Workgroups of 64 invocations hold 8 SIMD rows each.
  recordUpdate(rec, consts, [params, m, v, scratch], args, o, Math.ceil(updateRows(r.shape) / 8));
}

/**
 * The `update` dispatch; with no optimizer it only writes the mean loss and increments the
 * counter (an evaluation batch), binding small placeholders for the arenas it leaves alone.
 */
function recordUpdate(
  rec: Recorder,
  consts: string,
  [params, m, v, scratch]: Tensor[],
  args: FusedAttentionHeadBatch,
  o: Required<Omit<FusedAttentionHeadOptimizer, "m" | "v">> | undefined,
  workgroups: number,
): void {
  const adam = o ?? { lr: 0, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
  // The same host-side values, rounded once to f32, as kernels/adamw.ts uploads.
  const uniform = uniformU32(
    rec.gpu,
    // Params.adamw is a struct member, so the words after it start at the next 16-byte boundary.
    [...adamwUniformWords(adam), 0, 0, 0, args.counterIndex, args.losses.size, o ? 0 : 1],
    "fused_attention_head.update",
  );
  // One pipeline for training and evaluation (see `finish_only` in the .wgsl file).
  rec.dispatch(
    {
      name: "fused_attention_head_update",
      code: consts + adamwBiasSource + adamwStepSource + wgslSection(source, "update"),
    },
    [params, m, v, scratch, args.counters, args.losses, uniform],
    workgroups,
  );
}

/** Records one evaluation batch in two dispatches: batch → forward → mean loss. */
export function fusedAttentionHeadEval(rec: Recorder, args: FusedAttentionHeadBatch): void {
  const op = "fusedAttentionHeadEval";
  requireDisjoint(op, [args.counters, args.losses], [args.tokens, args.params]);
  const { scratch, consts } = recordSequence(rec, op, args, false);
  const placeholder = (name: string) => createTensor(rec.gpu, [4], "f32", name);
  recordUpdate(
    rec,
    consts,
    [placeholder("eval.params"), placeholder("eval.m"), placeholder("eval.v"), scratch],
    args,
    undefined,
    1,
  );
}
