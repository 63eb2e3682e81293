/**
 * The attention_head model's training step fused into two dispatches and its evaluation batch
 * into two. `sequence`: one workgroup per batch row carries its sequence through the forward
 * pass and the backward pass down to d(x); `update`: each invocation sums one tile of a weight
 * gradient over the batch's positions and applies AdamW to it. The autograd graph records about
 * 27 dispatches per step, and llvmpipe charges 40–300 µs for each.
 *
 * Determinism: every sum runs in a fixed order (a weight gradient over positions 0 … B·T − 1,
 * the loss over a sequence's positions and then over sequences), so a seed reproduces bit for
 * bit. The orders differ from the graph path's matmuls and reductions, so results match it to
 * rounding, not bit for bit (tests/fused_attention_head_test.ts states the tolerance).
 */
import philoxSource from "./philox.wgsl" with { type: "text" };
import adamwBiasSource from "./adamw_bias.wgsl" with { type: "text" };
import source from "./fused_attention_head.wgsl" with { type: "text" };
import { checkDeviceBatch, type DeviceBatch, sampleBatchReference } from "./batch.ts";
import {
  type AdamwOptions,
  adamwReference,
  adamwUniformWords,
  resolveAdamwOptions,
} from "./adamw.ts";
import type { Gpu } from "./device.ts";
import { requireDisjoint, requireF32 } from "./validate.ts";
import { wgslSection } from "./wgsl.ts";
import { type Recorder, uniformU32 } from "./program.ts";
import { createTensor, LimitError, ShapeError, type Tensor } from "./tensor.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";
import { tuningFor } from "./tuning.ts";

/** The model's dimensions: batch B, block T, embedding C, head H, vocabulary V. */
export interface AttentionHeadShape {
  B: number;
  T: number;
  C: number;
  H: number;
  V: number;
}

/** Where a fused step keeps a sequence's activations, or why it cannot run. */
export type FusedAttentionHeadPlan =
  | { ok: true; store: "workgroup" | "storage"; loops: number }
  | { ok: false; reason: string };

/** Logit rows padded to whole 8-wide tiles. */
function paddedVocab(V: number): number {
  return Math.ceil(V / 8) * 8;
}

/** Floats of one sequence's activations (the layout at the top of the .wgsl file). */
export function activationFloats({ T, C, H, V }: AttentionHeadShape): number {
  return T * C + 8 * T * H + 4 * T * T + 2 * T * paddedVocab(V) + 2 * T;
}

/**
 * SIMD rows of work units of the `update` kernel (ROWS in the .wgsl file): each kind of unit
 * padded to whole rows of 8, the two weight-tile kinds together.
 */
function updateRows({ T, C, H, V }: AttentionHeadShape): number {
  const VP = paddedVocab(V);
  const rows = (units: number) => Math.ceil(units / 8);
  return rows((VP / 8) * (H / 8) + 3 * (H / 8) * (C / 8)) + rows((VP / 8) * (C / 4)) +
    rows(VP / 4) + rows(T * C / 4);
}

/**
 * Upper bound on the loop iterations one invocation of the `sequence` kernel runs (each loop
 * also pays one evaluation of its exit test), phase by phase as in the .wgsl file.
 */
export function sequenceLoopCount(s: AttentionHeadShape, withGrad: boolean, wg: number) {
  const { T, C, H, V } = s;
  const VP = paddedVocab(V);
  const phase = (items: number, inner: number) => Math.ceil(items / wg) * (inner + 2) + 1;
  // An 8×8 tile's store is a loop of 8 rows (store_tile8).
  const store8 = 9;
  let n = phase(T, 0) + phase(T * C / 4, 0) + phase(3 * (T / 8) * (H / 8), C / 4 + store8) +
    phase((T / 4) ** 2, H / 4) + phase(T, 2 * T + T / 4 + 3) + phase((T / 4) * (H / 4), T) +
    phase((T / 8) * (VP / 8), H / 4 + store8) + phase(T, VP / 2) + T + 1;
  if (withGrad) {
    // d(out) and d(x) tiles have 4 or 8 rows (DO_ROWS, DX_ROWS); 4 is the upper bound.
    n += phase((T / 4) * (VP / 4), 0) + phase((T / 4) * (H / 8), V) +
      phase((T / 4) ** 2 + (T / 4) * (H / 4), Math.max(H / 4, T)) + phase(T, T + T / 4 + 1) +
      phase(2 * (T / 4) * (H / 4), T) + phase((T / 4) * (C / 8), 4 * H + 1);
  }
  return n;
}

/**
 * Upper bound on the loop iterations of one invocation of the `update` kernel: one unit (its
 * sum over all B·T positions, then AdamW over at most 8 rows of two vec4s), and the loss sum.
 */
function updateLoopCount(s: AttentionHeadShape): number {
  return 2 * (s.B * s.T + 1 + 8 * 3 + 1) + s.B + 4;
}

/**
 * Whether the fused kernels can run a shape on `gpu`: activations in workgroup memory when
 * they fit maxComputeWorkgroupStorageSize, else in a storage scratch buffer; not at all when
 * an invocation would pass llvmpipe's loop limit or the scratch would pass the binding limit.
 */
export function planFusedAttentionHead(
  gpu: Gpu,
  s: AttentionHeadShape,
  forceStorage = false,
): FusedAttentionHeadPlan {
  for (const [name, n] of [["blockSize", s.T], ["nEmbd", s.C], ["headSize", s.H]] as const) {
    // The kernels' 8×8 register tiles need whole tiles along every axis but V's (padded).
    if (n % 8 !== 0) return { ok: false, reason: `${name} = ${n} is not a multiple of 8` };
  }
  const wg = tuningFor(gpu.adapter).sequenceWorkgroupSize;
  const loops = Math.max(sequenceLoopCount(s, true, wg), updateLoopCount(s));
  if (loops > MAX_LOOP_ITERATIONS) {
    return {
      ok: false,
      reason: `an invocation would run ${loops} loop iterations, above llvmpipe's limit of ` +
        `${MAX_LOOP_ITERATIONS}`,
    };
  }
  // ids and targets are u32 workgroup arrays of T each, next to the activations.
  const workgroupBytes = 4 * (activationFloats(s) + 2 * s.T);
  const store = workgroupBytes <= gpu.limits.maxComputeWorkgroupStorageSize && !forceStorage
    ? "workgroup"
    : "storage";
  const bytes = 4 * scratchLayout(s, store).words;
  if (bytes > gpu.limits.maxStorageBufferBindingSize) {
    return {
      ok: false,
      reason: `its scratch buffer of ${bytes} bytes exceeds maxStorageBufferBindingSize ` +
        `(${gpu.limits.maxStorageBufferBindingSize})`,
    };
  }
  return { ok: true, store, loops };
}

function scratchLayout(s: AttentionHeadShape, store: "workgroup" | "storage") {
  const lossAt = 4;
  const gAt = Math.ceil((lossAt + s.B) / 4) * 4;
  const N = s.B * s.T;
  const perPosition = N * (2 * s.C + 4 * s.H + paddedVocab(s.V)) + Math.ceil(N / 4) * 4;
  const actAt = gAt + perPosition;
  const words = actAt + (store === "storage" ? s.B * activationFloats(s) : 0);
  return { lossAt, gAt, actAt, words };
}

/** The model's parameters: views into one arena (the ParamStore's). */
export interface AttentionHeadWeights {
  /** token_embedding_table.weight [V, C] */
  tokens: Tensor;
  /** position_embedding_table.weight [T, C] */
  positions: Tensor;
  /** sa_head.{key,query,value}.weight [H, C] */
  key: Tensor;
  query: Tensor;
  value: Tensor;
  /** lm_head.weight [V, H] and lm_head.bias [V] */
  lmWeight: Tensor;
  lmBias: Tensor;
}

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

function resolveShape(op: string, a: FusedAttentionHeadBatch): Resolved {
  const { tokens, counters, losses, params, weights: w } = a;
  for (const t of [tokens, counters]) {
    if (t.dtype !== "u32") throw new ShapeError(`${op}: ${t.describe()} must be u32`);
  }
  requireF32(op, losses, params, ...Object.values(w));
  const B = a.batchSize, T = a.blockSize;
  if (!Number.isInteger(B) || !Number.isInteger(T) || B < 1 || T < 1) {
    throw new ShapeError(`${op}: batch [${B}, ${T}] must be positive integers`);
  }
  if (w.tokens.shape.length !== 2 || w.key.shape.length !== 2) {
    throw new ShapeError(`${op}: ${w.tokens.describe()} and ${w.key.describe()} must be 2-d`);
  }
  const [V, C] = w.tokens.shape;
  const H = w.key.shape[0];
  const expect: [Tensor, number[]][] = [
    [w.positions, [T, C]],
    [w.key, [H, C]],
    [w.query, [H, C]],
    [w.value, [H, C]],
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
    KEY_AT: w.key,
    QUERY_AT: w.query,
    VALUE_AT: w.value,
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
  checkDeviceBatch(op, a);
  const shape = { B, T, C, H, V };
  const plan = planFusedAttentionHead(params.gpu, shape, a.forceStorage);
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
  a: FusedAttentionHeadBatch,
  withGrad: boolean,
): { r: Resolved; scratch: Tensor; consts: string } {
  const r = resolveShape(op, a);
  const { B, T, C, H, V } = r.shape;
  // The same layout for evaluation (its per-position region goes unused), so that both share
  // one shader.
  const layout = scratchLayout(r.shape, r.plan.store);
  const scratch = createTensor(rec.gpu, [layout.words], "u32", "fused_attention_head.scratch");
  requireDisjoint(op, [scratch], [a.tokens, a.counters, a.params]);
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
    [a.key[0], a.key[1], a.tokens.size, a.counterIndex, withGrad ? 1 : 0],
    "fused_attention_head.batch",
  );
  rec.dispatch(
    { name: "fused_attention_head_sequence", code },
    [a.tokens, a.counters, a.params, scratch, params],
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
  a: FusedAttentionHeadBatch & FusedAttentionHeadOptimizer,
): void {
  const op = "fusedAttentionHeadStep";
  const { params, m, v } = a;
  requireF32(op, m, v);
  for (const t of [m, v]) {
    if (t.size !== params.size) {
      throw new ShapeError(`${op}: ${t.describe()} must have the size of ${params.describe()}`);
    }
  }
  requireDisjoint(op, [params, m, v, a.counters, a.losses], [a.tokens]);
  const o = resolveAdamwOptions(a, op);
  const { r, scratch, consts } = recordSequence(rec, op, a, true);
  // Workgroups of 64 invocations hold 8 SIMD rows each.
  recordUpdate(rec, consts, [params, m, v, scratch], a, o, Math.ceil(updateRows(r.shape) / 8));
}

/**
 * The `update` dispatch; with no optimizer it only writes the mean loss and increments the
 * counter (an evaluation batch), binding small placeholders for the arenas it leaves alone.
 */
function recordUpdate(
  rec: Recorder,
  consts: string,
  [params, m, v, scratch]: Tensor[],
  a: FusedAttentionHeadBatch,
  o: Required<Omit<FusedAttentionHeadOptimizer, "m" | "v">> | undefined,
  workgroups: number,
): void {
  const adam = o ?? { lr: 0, weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
  // The same host-side values, rounded once to f32, as kernels/adamw.ts uploads.
  const uniform = uniformU32(
    rec.gpu,
    adamwUniformWords(adam).concat([a.counterIndex, a.losses.size, o ? 0 : 1]),
    "fused_attention_head.update",
  );
  // One pipeline for training and evaluation (see `finish_only` in the .wgsl file).
  rec.dispatch(
    {
      name: "fused_attention_head_update",
      code: consts + adamwBiasSource + wgslSection(source, "update"),
    },
    [params, m, v, scratch, a.counters, a.losses, uniform],
    workgroups,
  );
}

/** Records one evaluation batch in two dispatches: batch → forward → mean loss. */
export function fusedAttentionHeadEval(rec: Recorder, a: FusedAttentionHeadBatch): void {
  const op = "fusedAttentionHeadEval";
  requireDisjoint(op, [a.counters, a.losses], [a.tokens, a.params]);
  const { scratch, consts } = recordSequence(rec, op, a, false);
  const placeholder = (name: string) => createTensor(rec.gpu, [4], "f32", name);
  recordUpdate(
    rec,
    consts,
    [placeholder("eval.params"), placeholder("eval.m"), placeholder("eval.v"), scratch],
    a,
    undefined,
    1,
  );
}

/** Float64 values of the model's parameters, keyed as AttentionHeadWeights. */
export type AttentionHeadValues = Record<keyof AttentionHeadWeights, Float64Array>;

/**
 * Float64 reference of one training step with batch counter `c` (before the increment): the
 * lecture's forward, its gradient, and AdamW step c + 1. Mutates values, m and v; returns the
 * mean loss. With `lr` 0 and no moments it is the evaluation loss.
 */
export function fusedAttentionHeadStepReference(
  tokens: Uint32Array,
  w: AttentionHeadValues,
  moments: { m: AttentionHeadValues; v: AttentionHeadValues } | undefined,
  o: AttentionHeadShape & {
    key: readonly [number, number];
    c: number;
    lr: number;
    weightDecay: number;
  },
): number {
  const { B, T, C, H, V } = o;
  const { inputs, targets } = sampleBatchReference(tokens, B, T, o.key, o.c);
  const g = Object.fromEntries(
    Object.entries(w).map(([k, x]) => [k, new Float64Array(x.length)]),
  ) as AttentionHeadValues;
  const scale = 1 / Math.sqrt(H);
  const N = B * T;
  let loss = 0;
  for (let b = 0; b < B; b++) {
    const ids = inputs.subarray(b * T, b * T + T);
    const x = new Float64Array(T * C);
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) x[t * C + c] = w.tokens[ids[t] * C + c] + w.positions[t * C + c];
    }
    const lin = (W: Float64Array) => {
      const y = new Float64Array(T * H);
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) {
          let s = 0;
          for (let c = 0; c < C; c++) s += x[t * C + c] * W[h * C + c];
          y[t * H + h] = s;
        }
      }
      return y;
    };
    const k = lin(w.key), q = lin(w.query), v = lin(w.value);
    const wei = new Float64Array(T * T);
    for (let i = 0; i < T; i++) {
      let m = -Infinity;
      const s = new Float64Array(i + 1);
      for (let j = 0; j <= i; j++) {
        let d = 0;
        for (let h = 0; h < H; h++) d += q[i * H + h] * k[j * H + h];
        s[j] = d * scale;
        m = Math.max(m, s[j]);
      }
      let total = 0;
      for (let j = 0; j <= i; j++) total += Math.exp(s[j] - m);
      for (let j = 0; j <= i; j++) wei[i * T + j] = Math.exp(s[j] - m) / total;
    }
    const out = new Float64Array(T * H);
    for (let i = 0; i < T; i++) {
      for (let j = 0; j <= i; j++) {
        for (let h = 0; h < H; h++) out[i * H + h] += wei[i * T + j] * v[j * H + h];
      }
    }
    const dl = new Float64Array(T * V);
    for (let t = 0; t < T; t++) {
      const row = new Float64Array(V);
      let m = -Infinity;
      for (let u = 0; u < V; u++) {
        let s = w.lmBias[u];
        for (let h = 0; h < H; h++) s += out[t * H + h] * w.lmWeight[u * H + h];
        row[u] = s;
        m = Math.max(m, s);
      }
      let total = 0;
      for (let u = 0; u < V; u++) total += Math.exp(row[u] - m);
      const lse = m + Math.log(total);
      const y = targets[b * T + t];
      loss += lse - row[y];
      for (let u = 0; u < V; u++) dl[t * V + u] = (Math.exp(row[u] - lse) - (u === y ? 1 : 0)) / N;
    }
    const dout = new Float64Array(T * H);
    for (let t = 0; t < T; t++) {
      for (let u = 0; u < V; u++) {
        const d = dl[t * V + u];
        g.lmBias[u] += d;
        for (let h = 0; h < H; h++) {
          g.lmWeight[u * H + h] += d * out[t * H + h];
          dout[t * H + h] += d * w.lmWeight[u * H + h];
        }
      }
    }
    const dv = new Float64Array(T * H), dq = new Float64Array(T * H), dk = new Float64Array(T * H);
    for (let i = 0; i < T; i++) {
      const dw = new Float64Array(i + 1);
      let dot = 0;
      for (let j = 0; j <= i; j++) {
        for (let h = 0; h < H; h++) {
          dw[j] += dout[i * H + h] * v[j * H + h];
          dv[j * H + h] += wei[i * T + j] * dout[i * H + h];
        }
        dot += dw[j] * wei[i * T + j];
      }
      for (let j = 0; j <= i; j++) {
        const ds = scale * wei[i * T + j] * (dw[j] - dot);
        for (let h = 0; h < H; h++) {
          dq[i * H + h] += ds * k[j * H + h];
          dk[j * H + h] += ds * q[i * H + h];
        }
      }
    }
    for (const [d, W, gW] of [[dk, w.key, g.key], [dq, w.query, g.query], [dv, w.value, g.value]]) {
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) {
          for (let c = 0; c < C; c++) {
            const dx = d[t * H + h] * W[h * C + c];
            gW[h * C + c] += d[t * H + h] * x[t * C + c];
            g.tokens[ids[t] * C + c] += dx;
            g.positions[t * C + c] += dx;
          }
        }
      }
    }
  }
  if (moments) {
    for (const name of Object.keys(w) as (keyof AttentionHeadValues)[]) {
      adamwReference(w[name], g[name], moments.m[name], moments.v[name], o.c + 1, {
        lr: o.lr,
        weightDecay: o.weightDecay,
      });
    }
  }
  return loss / N;
}
