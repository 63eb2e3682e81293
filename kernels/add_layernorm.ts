/**
 * A pre-LN block's residual step in one kernel: sum = x + delta (the residual stream) and
 * LayerNorm(sum), with the backward of both: the layer norm's input gradient plus the gradient
 * that reached the sum directly, written to both summands in one pass. The parameter gradients
 * are layerNormParamsBackward's column sums over the saved sum.
 */
import { requireDisjoint, requireF32, requireSameShape } from "./validate.ts";
import { grid1d } from "./grid.ts";
import { layerNormCode, layerNormReference, layerNormShapes } from "./layernorm.ts";
import type { Recorder } from "./program.ts";
import type { Tensor } from "./tensor.ts";

/** The forward's rows: x + delta (bindings 5, 6), stored to sum (7) on the first pass. */
const SUM_INPUT = `@group(0) @binding(5) var<storage, read> x: array<T>;
@group(0) @binding(6) var<storage, read> delta: array<T>;
@group(0) @binding(7) var<storage, read_write> sum_out: array<T>;
fn first_pass(i: u32) -> T {
  let v = x[i] + delta[i];
  sum_out[i] = v;
  return v;
}
fn reread(i: u32) -> T { return sum_out[i]; }
`;

/** The backward's second output: d(sum) for delta too (binding 7). */
const WRITE_DELTA = `@group(0) @binding(7) var<storage, read_write> d_delta: array<T>;
fn write_delta(i: u32, v: T) {
  d_delta[i] = select(v, d_delta[i] + v, ACCUMULATE_DELTA);
}
`;

/** Outputs of `addLayerNorm`. */
export interface AddLayerNormOutputs {
  /** x + delta. */
  sum: Tensor;
  /** LayerNorm(sum). */
  out: Tensor;
  /** Per-row mean and 1/√(var + eps) of sum, for the backward. */
  mean: Tensor;
  rstd: Tensor;
}

/** Records sum = x + delta and out = LayerNorm(sum)·gamma + beta over the last axis. */
export function addLayerNorm(
  rec: Recorder,
  x: Tensor,
  delta: Tensor,
  gamma: Tensor,
  beta: Tensor,
  o: AddLayerNormOutputs,
  eps = 1e-5,
): void {
  const op = "addLayerNorm";
  requireF32(op, x, delta, gamma, beta, o.sum, o.out, o.mean, o.rstd);
  for (const t of [delta, o.sum, o.out]) requireSameShape(op, x, t);
  requireDisjoint(op, [o.sum, o.out, o.mean, o.rstd], [x, delta, gamma, beta]);
  requireDisjoint(op, [o.sum], [o.out, o.mean, o.rstd]);
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new RangeError(`${op}: eps ${eps}`);
  const [rows, C] = layerNormShapes(op, x, [gamma, beta], [o.mean, o.rstd]);
  if (rows === 0) return;
  rec.dispatch(
    {
      name: "add_layernorm",
      code: layerNormCode("forward", C, SUM_INPUT),
      constants: { ROWS: rows, C, EPS: eps },
    },
    [gamma, beta, o.out, o.mean, o.rstd, x, delta, o.sum],
    grid1d(rows, 64),
  );
}

/** A gradient destination of `addLayerNormBackward`, overwritten unless `accumulate`. */
export interface GradOut {
  tensor: Tensor;
  accumulate: boolean;
}

/** Arguments of `addLayerNormBackward`. */
export interface AddLayerNormBackwardArgs {
  /** The saved sum and its statistics, and gamma. */
  sum: Tensor;
  gamma: Tensor;
  mean: Tensor;
  rstd: Tensor;
  /** Gradient of the layer norm's output. */
  dOut: Tensor;
  /** Gradient that reached the sum directly (its later residual uses), if any. */
  dSum?: Tensor;
  /** Receives d(sum): the gradient of x. */
  dX: GradOut;
  /** Also receives d(sum), for delta (a different tensor from dX). */
  dDelta?: GradOut;
}

/**
 * Records d(sum) = dSum + LayerNorm's input gradient into dX (and dDelta) in one dispatch.
 * The gamma and beta gradients are layerNormParamsBackward over `sum`.
 */
export function addLayerNormBackward(rec: Recorder, args: AddLayerNormBackwardArgs): void {
  const op = "addLayerNormBackward";
  const { sum, gamma, mean, rstd, dOut, dSum, dX, dDelta } = args;
  const outputs = [dX.tensor, ...(dDelta ? [dDelta.tensor] : [])];
  const inputs = [sum, gamma, mean, rstd, dOut, ...(dSum ? [dSum] : [])];
  requireF32(op, ...inputs, ...outputs);
  for (const t of [dOut, ...outputs, ...(dSum ? [dSum] : [])]) requireSameShape(op, sum, t);
  requireDisjoint(op, outputs, inputs);
  if (dDelta) requireDisjoint(op, [dDelta.tensor], [dX.tensor]);
  const [rows, C] = layerNormShapes(op, sum, [gamma], [mean, rstd]);
  if (rows === 0 || C === 0) return;
  rec.dispatch(
    {
      name: `add_layernorm_backward${dDelta ? "_2" : ""}`,
      code: layerNormCode("backward_input", C, dDelta ? WRITE_DELTA : undefined),
      constants: {
        ROWS: rows,
        C,
        HAS_DSUM: dSum ? 1 : 0,
        ACCUMULATE_X: dX.accumulate ? 1 : 0,
        ACCUMULATE_DELTA: dDelta?.accumulate ? 1 : 0,
      },
    },
    [sum, gamma, mean, rstd, dOut, dSum ?? dOut, dX.tensor, ...(dDelta ? [dDelta.tensor] : [])],
    grid1d(rows, 64),
  );
}

/** float64 reference of `addLayerNorm` for rows of C: the sum and its layer norm. */
export function addLayerNormReference(
  x: ArrayLike<number>,
  delta: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  C: number,
  eps = 1e-5,
): { sum: Float64Array; out: Float64Array } {
  const sum = Float64Array.from(x, (v, i) => v + delta[i]);
  return { sum, out: layerNormReference(sum, gamma, beta, C, eps).out };
}
