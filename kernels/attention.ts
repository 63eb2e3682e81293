/**
 * Causal multi-head self-attention over batched heads: scores, causal mask, softmax, optional
 * dropout of the weights, weighted sum of values — one dispatch forward, one backward, for any
 * batch, sequence length, head count and head size. q, k, v are [B, T, nHead·headSize] with
 * head h in columns h·headSize … (h + 1)·headSize (the lecture's torch.cat(heads, -1) layout,
 * i.e. [B, nHead, T, headSize] read through strides), or column ranges of one wider tensor
 * such as a fused [B, T, 3C] qkv projection. The forward stores the per-row log-sum-exp (and,
 * with dropout, one keep bit per weight); the backward rebuilds the weights from it, so no
 * T×T tensor is ever written. Layout and sums: kernels/attention.wgsl.
 */
import {
  type AttentionDropout,
  constants,
  keepWords,
  kernelCode,
  type Resolved,
} from "./attention_code.ts";
import { requireDisjoint, requireF32 } from "./validate.ts";
import { grid1d } from "./grid.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";
import { type Binding, f32Bits, type Recorder, uniformU32 } from "./program.ts";
import { LimitError, ShapeError, type Tensor } from "./tensor.ts";

export {
  attentionBackwardReference,
  attentionDropoutMask,
  attentionReference,
} from "./attention_reference.ts";
export type { AttentionShape } from "./attention_reference.ts";
export type { AttentionDropout } from "./attention_code.ts";
export { keepWords } from "./attention_code.ts";

/** A [B, T, C] operand, or columns [column, column + C) of a wider [B, T, W] tensor. */
export type AttentionOperand = Tensor | { tensor: Tensor; column: number };

/** What `attentionForward` reads and writes. */
export interface AttentionForwardArgs {
  q: AttentionOperand;
  k: AttentionOperand;
  v: AttentionOperand;
  /** [B, T, nHead·headSize]: the heads' outputs side by side. */
  out: Tensor;
  /** f32 [B, nHead, T]: each row's log-sum-exp of scaled scores, for the backward. */
  lse: Tensor;
  nHead: number;
  /** Multiplier of q·kᵀ; default 1/√headSize. */
  scale?: number;
  dropout?: AttentionDropout;
  /** u32 [B, nHead, T, ⌈T/32⌉]: keep bit of weight (i, j) at bit j%32; needed when p > 0. */
  keep?: Tensor;
  /** Rows of one (batch, head) per invocation, 1 … 8 (tests, benchmarks; default by size). */
  rows?: number;
}

/** What `attentionBackward` reads and writes (the forward's tensors and options, and grads). */
export interface AttentionBackwardArgs extends AttentionForwardArgs {
  /** Gradient of `out`, [B, T, C]. */
  dOut: Tensor;
  /**
   * Gradients of q, k, v: [B, T, C] each, or disjoint column ranges of one wider tensor (the
   * gradient of a fused qkv projection).
   */
  dq: AttentionOperand;
  dk: AttentionOperand;
  dv: AttentionOperand;
  /** Add to the gradients instead of overwriting them, per operand. */
  accumulate?: { q?: boolean; k?: boolean; v?: boolean };
}

function operand(op: string, name: string, x: AttentionOperand, B: number, T: number, C: number) {
  const { tensor, column } = "tensor" in x ? x : { tensor: x, column: 0 };
  requireF32(op, tensor);
  const s = tensor.shape;
  const W = s[2];
  if (s.length !== 3 || s[0] !== B || s[1] !== T || !Number.isInteger(column) || column < 0) {
    throw new ShapeError(`${op}: ${name} ${tensor.describe()} must be [${B}, ${T}, ≥ ${C}]`);
  }
  if (column + C > W) {
    throw new ShapeError(
      `${op}: ${name} columns [${column}, ${column + C}) run past ${tensor.describe()}`,
    );
  }
  return { tensor, column, stride: W };
}

function resolveAttention(
  op: string,
  args: AttentionForwardArgs,
  grads?: readonly AttentionOperand[],
): Resolved {
  requireF32(op, args.out, args.lse);
  if (args.out.shape.length !== 3) {
    throw new ShapeError(`${op}: out ${args.out.describe()} must be [B, T, nHead·headSize]`);
  }
  const [B, T, C] = args.out.shape;
  const nHead = args.nHead;
  if (!Number.isInteger(nHead) || nHead < 1 || C % nHead !== 0) {
    throw new ShapeError(
      `${op}: nHead ${nHead} does not divide the width of ${args.out.describe()}`,
    );
  }
  const headSize = C / nHead;
  if (B < 1 || T < 1 || headSize < 1) {
    throw new ShapeError(`${op}: out ${args.out.describe()} has an empty axis`);
  }
  if (args.lse.size !== B * nHead * T) {
    throw new ShapeError(`${op}: lse ${args.lse.describe()} must hold [${B}, ${nHead}, ${T}]`);
  }
  if (
    args.rows !== undefined && !(Number.isInteger(args.rows) && args.rows >= 1 && args.rows <= 8)
  ) {
    throw new RangeError(`${op}: rows ${args.rows} is not an integer in 1 … 8`);
  }
  const scale = args.scale ?? 1 / Math.sqrt(headSize);
  if (!Number.isFinite(scale)) throw new RangeError(`${op}: scale ${scale} is not finite`);
  const operands = [args.q, args.k, args.v, ...(grads ?? [])].map((x, i) =>
    operand(op, ["q", "k", "v", "dq", "dk", "dv"][i], x, B, T, C)
  );
  const fours = [headSize, C, ...operands.flatMap((o) => [o.column, o.stride])];
  const width = fours.every((n) => n % 4 === 0) ? 4 : 1;
  const dropout = args.dropout && args.dropout.p !== 0 ? args.dropout : undefined;
  if (args.dropout) checkDropout(op, args.dropout);
  if (dropout) {
    if (
      !args.keep || args.keep.dtype !== "u32" || args.keep.size !== B * nHead * T * keepWords(T)
    ) {
      throw new ShapeError(
        `${op}: dropout needs keep, a u32 tensor of [${B}, ${nHead}, ${T}, ${keepWords(T)}] ` +
          `(got ${args.keep?.describe() ?? "none"})`,
      );
    }
    // The Philox counter of weight (row, j) is row·⌈T/4⌉ + ⌊j/4⌋ in one u32.
    if (B * nHead * T * Math.ceil(T / 4) > 2 ** 32) {
      throw new LimitError(
        `${op}: ${B}·${nHead}·${T} rows of ${T} weights exceed the 2^32 Philox counters ` +
          `of one dropout draw`,
      );
    }
  }
  return {
    B,
    T,
    nHead,
    headSize,
    scale,
    width,
    rows: args.rows ?? rowsPerInvocation(T, headSize / width, grads !== undefined),
    operands,
    dropout,
  };
}

function checkDropout(op: string, d: AttentionDropout): void {
  if (!(d.p >= 0 && d.p <= 1)) throw new RangeError(`${op}: dropout p = ${d.p} is not in [0, 1]`);
  if (d.counters.dtype !== "u32") {
    throw new ShapeError(`${op}: counters ${d.counters.describe()} must be u32`);
  }
  if (
    !Number.isInteger(d.counterIndex) || d.counterIndex < 0 || d.counterIndex >= d.counters.size
  ) {
    throw new ShapeError(
      `${op}: counterIndex ${d.counterIndex} is outside counters ${d.counters.describe()}`,
    );
  }
}

/**
 * Upper bound on one invocation's loop iterations (each loop also pays its exit test): the
 * walk over at most T rows, plus with dropout a 10-round Philox draw every fourth row for each
 * of an invocation's rows. The loops over rows and lanes are unrolled (unroll), so headSize
 * does not count.
 */
export function attentionLoopCount(T: number, rows: number, dropout: boolean): number {
  return T + 1 + (dropout ? 11 * rows * Math.ceil(T / 4) : 0);
}

/**
 * Rows per invocation: each row loaded from the other side serves this many, so more rows are
 * fewer gathers (CPU µs per call on llvmpipe, B 16, T 32, 4 heads of 16, rows 1 / 2 / 4 / 8:
 * forward 900 / 533 / 400 / 300, backward 2367 / 1667 / 1167 / 967), but the unrolled code
 * grows as rows × lanes and LLVM's compile time faster than that (backward, 6 heads of 64: 9 s
 * at 1 row, 27 s at 2, 96 s at 4 on a loaded machine). The budgets keep a new shape's compile
 * to seconds: rows × lanes ≤ 32 forward, ≤ 16 backward (whose key rows hold four register rows).
 */
function rowsPerInvocation(T: number, lanes: number, backward: boolean): number {
  return Math.max(1, Math.min(8, T, Math.floor((backward ? 16 : 32) / lanes)));
}

/** Most lanes (vec4 or f32) of a head the unrolled kernels keep in registers. */
export const MAX_HEAD_LANES = 64;

function checkLoops(op: string, r: Resolved): void {
  const n = attentionLoopCount(r.T, r.rows, r.dropout !== undefined);
  if (n > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `${op}: T = ${r.T} needs ${n} loop iterations per invocation, above llvmpipe's limit ` +
        `of ${MAX_LOOP_ITERATIONS}`,
    );
  }
  const lanes = r.headSize / r.width;
  if (lanes > MAX_HEAD_LANES) {
    throw new LimitError(
      `${op}: headSize ${r.headSize} is ${lanes} ${r.width === 4 ? "vec4 " : ""}lanes, above ` +
        `the kernel's limit of ${MAX_HEAD_LANES} (${4 * MAX_HEAD_LANES} when headSize and ` +
        `the strides are multiples of 4)`,
    );
  }
}

function workgroups(r: Resolved, parts: number): [number, number] {
  // grid1d with a workgroup size of 1 counts workgroups: 8 (batch, head) pairs × a tile of rows.
  return grid1d(parts * Math.ceil((r.B * r.nHead) / 8) * Math.ceil(r.T / r.rows), 1);
}

/**
 * Records out = concat over heads of softmax(scale·q_h·k_hᵀ, causal) (dropped out) · v_h and
 * the per-row log-sum-exp the backward needs. One dispatch.
 */
export function attentionForward(rec: Recorder, args: AttentionForwardArgs): void {
  const op = "attentionForward";
  const r = resolveAttention(op, args);
  checkLoops(op, r);
  const inputs = r.operands.map((o) => o.tensor);
  const outputs = [args.out, args.lse, ...(r.dropout ? [args.keep!] : [])];
  requireDisjoint(op, outputs, [...inputs, ...(r.dropout ? [r.dropout.counters] : [])]);
  const bindings: Binding[] = [...inputs, args.out, args.lse];
  if (r.dropout) {
    const d = r.dropout;
    const params = uniformU32(rec.gpu, [
      d.key[0] >>> 0,
      d.key[1] >>> 0,
      d.callIndex >>> 0,
      d.counterIndex,
      f32Bits(d.p),
    ], "attention.dropout");
    bindings.push(args.keep!, d.counters, params);
  }
  rec.dispatch(
    {
      name: "attention",
      code: kernelCode(r, "forward"),
      constants: constants(r),
    },
    bindings,
    workgroups(r, 1),
  );
}

/**
 * Records dq, dk, dv (overwritten, or added to per `accumulate`) from dOut and the forward's
 * out, lse (and keep bits). One dispatch.
 */
export function attentionBackward(rec: Recorder, args: AttentionBackwardArgs): void {
  const op = "attentionBackward";
  const r = resolveAttention(op, args, [args.dq, args.dk, args.dv]);
  checkLoops(op, r);
  requireF32(op, args.dOut);
  if (args.dOut.shape.some((n, i) => n !== args.out.shape[i]) || args.dOut.shape.length !== 3) {
    throw new ShapeError(
      `${op}: dOut ${args.dOut.describe()} must match out ${args.out.describe()}`,
    );
  }
  const grads = r.operands.slice(3);
  const inputs = [...r.operands.slice(0, 3).map((o) => o.tensor), args.out, args.lse, args.dOut];
  if (r.dropout) inputs.push(args.keep!);
  requireDisjoint(op, grads.map((g) => g.tensor), inputs);
  checkGradsDisjoint(op, grads, r.nHead * r.headSize);
  const acc = args.accumulate ?? {};
  rec.dispatch(
    {
      name: "attention_backward",
      code: kernelCode(r, "backward", [!!acc.q, !!acc.k, !!acc.v]),
      constants: constants(r),
    },
    [...inputs.slice(0, 6), ...grads.map((g) => g.tensor), ...(r.dropout ? [args.keep!] : [])],
    workgroups(r, 2),
  );
}

/**
 * Two gradients may share a buffer only as disjoint column ranges of one tensor: the dispatch
 * binds it once per gradient, and ranges that overlapped would race.
 */
function checkGradsDisjoint(
  op: string,
  grads: readonly { tensor: Tensor; column: number }[],
  C: number,
): void {
  for (let i = 0; i < 3; i++) {
    for (let j = i + 1; j < 3; j++) {
      const [a, b] = [grads[i], grads[j]];
      if (a.tensor.buffer !== b.tensor.buffer) continue;
      const sameView = a.tensor.byteOffset === b.tensor.byteOffset &&
        a.tensor.size === b.tensor.size;
      if (!sameView || Math.abs(a.column - b.column) < C) {
        throw new ShapeError(
          `${op}: gradients ${a.tensor.describe()} (columns from ${a.column}) and ` +
            `${b.tensor.describe()} (from ${b.column}) overlap`,
        );
      }
    }
  }
}
