/**
 * Layer normalisation over the last axis (x [..., C], gamma and beta [C]) with the per-row
 * mean and 1/std saved for the backward. The parameter gradients are column sums in a fixed
 * order, so they are bit-identical run to run.
 */
import source from "./layernorm.wgsl" with { type: "text" };
import { requireDisjoint, requireF32, requireSameShape } from "./validate.ts";
import { wgslSection } from "./wgsl.ts";
import { grid1d } from "./grid.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";
import type { Recorder } from "./program.ts";
import { LimitError, ShapeError, type Tensor } from "./tensor.ts";

/** Which gradients `layerNormBackward` adds to instead of overwriting. */
export interface LayerNormBackwardOptions {
  /** dX += … (x also feeds another branch, e.g. a residual). */
  accumulateX?: boolean;
  /** dGamma += … (gamma used more than once). */
  accumulateGamma?: boolean;
  /** dBeta += … (beta used more than once). */
  accumulateBeta?: boolean;
}

const VEC_PRELUDE = `alias T = vec4<f32>;
const W: u32 = 4u;
fn hsum(v: T) -> f32 { return (v.x + v.y) + (v.z + v.w); }
`;
const SCALAR_PRELUDE = `alias T = f32;
const W: u32 = 1u;
fn hsum(v: T) -> f32 { return v; }
`;

/** The kernels of layernorm.wgsl. */
export type LayerNormKernel = "forward" | "backward_input" | "backward_params";

/** Where the forward kernel reads its rows: x itself (binding 5). */
const PLAIN_INPUT = `@group(0) @binding(5) var<storage, read> x: array<T>;
fn first_pass(i: u32) -> T { return x[i]; }
fn reread(i: u32) -> T { return x[i]; }
`;

/** backward_input without a residual branch: no d_delta to write. */
const NO_DELTA = "fn write_delta(i: u32, v: T) {}\n";

/**
 * The WGSL of one layernorm.wgsl kernel for rows of C elements (vec4 lanes when C % 4 == 0);
 * `io` declares the forward's input or backward_input's write_delta (default: plain LN).
 */
export function layerNormCode(kernel: LayerNormKernel, C: number, io?: string): string {
  const plain = kernel === "forward" ? PLAIN_INPUT : kernel === "backward_input" ? NO_DELTA : "";
  return (C % 4 === 0 ? VEC_PRELUDE : SCALAR_PRELUDE) + (io ?? plain) +
    wgslSection(source, kernel);
}

/** Validates x [..., C], the [C] parameters and the per-row statistics; returns (rows, C). */
export function layerNormShapes(
  op: string,
  x: Tensor,
  params: readonly Tensor[],
  stats: readonly Tensor[],
): [number, number] {
  if (x.shape.length === 0) throw new ShapeError(`${op}: ${x.describe()} has no axis`);
  const C = x.shape[x.shape.length - 1];
  const rows = C === 0 ? 0 : x.size / C;
  for (const p of params) {
    if (p.shape.length !== 1 || p.shape[0] !== C) {
      throw new ShapeError(`${op}: ${p.describe()} must be [${C}] for x ${x.describe()}`);
    }
  }
  const lead = x.shape.slice(0, -1);
  for (const s of stats) {
    const same = s.shape.length === lead.length && s.shape.every((d, i) => d === lead[i]);
    if (!same && !(s.shape.length === 1 && s.shape[0] === rows)) {
      throw new ShapeError(
        `${op}: ${s.describe()} must be [${lead.join(", ")}] or [${rows}] for x ${x.describe()}`,
      );
    }
  }
  const n = C % 4 === 0 ? C / 4 : C;
  const iterations = Math.max(3 * n, Math.ceil(rows / 64) + 6);
  if (iterations > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `${op}: ${x.describe()} needs ${iterations} loop iterations per invocation, above ` +
        `llvmpipe's limit of ${MAX_LOOP_ITERATIONS}`,
    );
  }
  return [rows, C];
}

/**
 * Records out = (x − mean)·rstd·gamma + beta over the last axis of x [..., C], saving mean and
 * rstd = 1/√(var + eps) per row for the backward.
 */
export function layerNorm(
  rec: Recorder,
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  out: Tensor,
  mean: Tensor,
  rstd: Tensor,
  eps = 1e-5,
): void {
  requireF32("layerNorm", x, gamma, beta, out, mean, rstd);
  requireSameShape("layerNorm", x, out);
  requireDisjoint("layerNorm", [out, mean, rstd], [x, gamma, beta]);
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new RangeError(`layerNorm: eps ${eps}`);
  const [rows, C] = layerNormShapes("layerNorm", x, [gamma, beta], [mean, rstd]);
  if (rows === 0) return;
  rec.dispatch(
    {
      name: "layernorm",
      code: layerNormCode("forward", C),
      constants: { ROWS: rows, C, EPS: eps },
    },
    [gamma, beta, out, mean, rstd, x],
    grid1d(rows, 64),
  );
}

/**
 * Records dX, dGamma and dBeta of `layerNorm` from the saved mean and rstd and the upstream
 * gradient dOut; each overwrites unless its accumulate flag is set.
 */
export function layerNormBackward(
  rec: Recorder,
  x: Tensor,
  gamma: Tensor,
  mean: Tensor,
  rstd: Tensor,
  dOut: Tensor,
  dX: Tensor,
  dGamma: Tensor,
  dBeta: Tensor,
  opts: LayerNormBackwardOptions = {},
): void {
  const op = "layerNormBackward";
  requireF32(op, x, gamma, mean, rstd, dOut, dX, dGamma, dBeta);
  requireSameShape(op, x, dOut);
  requireSameShape(op, x, dX);
  requireDisjoint(op, [dX, dGamma, dBeta], [x, gamma, mean, rstd, dOut]);
  const [rows, C] = layerNormShapes(op, x, [gamma, dGamma, dBeta], [mean, rstd]);
  if (rows === 0 || C === 0) return;
  rec.dispatch(
    {
      name: "layernorm_backward_input",
      code: layerNormCode("backward_input", C),
      constants: { ROWS: rows, C, ACCUMULATE_X: opts.accumulateX ? 1 : 0 },
    },
    [x, gamma, mean, rstd, dOut, dOut, dX],
    grid1d(rows, 64),
  );
  layerNormParamsBackward(rec, x, mean, rstd, dOut, dGamma, dBeta, opts);
}

/**
 * Records dGamma = Σ_rows dOut ⊙ x̂ and dBeta = Σ_rows dOut of `layerNorm` (one workgroup per
 * column or group of four, rows in a fixed order); each overwrites unless its flag is set.
 */
export function layerNormParamsBackward(
  rec: Recorder,
  x: Tensor,
  mean: Tensor,
  rstd: Tensor,
  dOut: Tensor,
  dGamma: Tensor,
  dBeta: Tensor,
  opts: LayerNormBackwardOptions = {},
): void {
  const op = "layerNormParamsBackward";
  requireF32(op, x, mean, rstd, dOut, dGamma, dBeta);
  requireSameShape(op, x, dOut);
  requireDisjoint(op, [dGamma, dBeta], [x, mean, rstd, dOut]);
  const [rows, C] = layerNormShapes(op, x, [dGamma, dBeta], [mean, rstd]);
  if (rows === 0 || C === 0) return;
  const groups = C % 4 === 0 ? C / 4 : C;
  rec.dispatch(
    {
      name: "layernorm_backward_params",
      code: layerNormCode("backward_params", C),
      constants: {
        ROWS: rows,
        C,
        ACCUMULATE_GAMMA: opts.accumulateGamma ? 1 : 0,
        ACCUMULATE_BETA: opts.accumulateBeta ? 1 : 0,
      },
    },
    [x, mean, rstd, dOut, dGamma, dBeta],
    grid1d(groups * 64, 64),
  );
}

/** float64 reference of `layerNorm` for x [rows, C]: the output and the saved statistics. */
export function layerNormReference(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  C: number,
  eps = 1e-5,
): { out: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const rows = x.length / C;
  const out = new Float64Array(x.length), mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x[r * C + c];
    const mu = s / C;
    let q = 0;
    for (let c = 0; c < C; c++) q += (x[r * C + c] - mu) ** 2;
    const rs = 1 / Math.sqrt(q / C + eps);
    for (let c = 0; c < C; c++) out[r * C + c] = (x[r * C + c] - mu) * rs * gamma[c] + beta[c];
    mean[r] = mu;
    rstd[r] = rs;
  }
  return { out, mean, rstd };
}

/** float64 reference of `layerNormBackward` (no accumulation). */
export function layerNormBackwardReference(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  dOut: ArrayLike<number>,
  C: number,
  eps = 1e-5,
): { dX: Float64Array; dGamma: Float64Array; dBeta: Float64Array } {
  const rows = x.length / C;
  const { mean, rstd } = layerNormReference(x, gamma, new Float64Array(C), C, eps);
  const dX = new Float64Array(x.length), dGamma = new Float64Array(C);
  const dBeta = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    let sg = 0, sgx = 0;
    for (let c = 0; c < C; c++) {
      const xhat = (x[r * C + c] - mean[r]) * rstd[r];
      const g = dOut[r * C + c] * gamma[c];
      sg += g;
      sgx += g * xhat;
      dGamma[c] += dOut[r * C + c] * xhat;
      dBeta[c] += dOut[r * C + c];
    }
    for (let c = 0; c < C; c++) {
      const xhat = (x[r * C + c] - mean[r]) * rstd[r];
      const g = dOut[r * C + c] * gamma[c];
      dX[r * C + c] = rstd[r] * (g - sg / C - xhat * (sgx / C));
    }
  }
  return { dX, dGamma, dBeta };
}
