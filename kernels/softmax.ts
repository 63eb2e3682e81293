/**
 * Softmax over the last axis with optional scale and causal mask (attention weights), and its
 * backward. Rows are the second-to-last axis: under the causal mask row i keeps columns j <= i.
 */
import source from "./softmax.wgsl" with { type: "text" };
import { requireDisjoint, requireF32, requireSameShape } from "./validate.ts";
import { wgslSection } from "./wgsl.ts";
import { grid1d } from "./grid.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";
import type { Recorder } from "./program.ts";
import { LimitError, ShapeError, type Tensor } from "./tensor.ts";

/** Options of `softmax`: scale applied before the softmax, causal mask. */
export interface SoftmaxOptions {
  /** Mask positions j > i (i = row within the [R, C] matrix) to -inf. */
  causal?: boolean;
  /** Multiplier applied to x before the softmax (1/√head_size in attention). */
  scale?: number;
}

/** Options of `softmaxBackward`: the forward's scale, and accumulation into dX. */
export interface SoftmaxBackwardOptions {
  /** The scale the forward used. */
  scale?: number;
  /** dX += … instead of dX = …. */
  accumulate?: boolean;
}

const VEC_PRELUDE = `alias T = vec4<f32>;
alias U = vec4<u32>;
const W: u32 = 4u;
const LANE = vec4<u32>(0u, 1u, 2u, 3u);
fn hmax(v: T) -> f32 { return max(max(v.x, v.y), max(v.z, v.w)); }
fn hsum(v: T) -> f32 { return (v.x + v.y) + (v.z + v.w); }
`;
const SCALAR_PRELUDE = `alias T = f32;
alias U = u32;
const W: u32 = 1u;
const LANE: u32 = 0u;
fn hmax(v: T) -> f32 { return v; }
fn hsum(v: T) -> f32 { return v; }
`;

function code(kernel: "forward" | "backward", vec: boolean): string {
  return (vec ? VEC_PRELUDE : SCALAR_PRELUDE) + wgslSection(source, kernel);
}

/** Checks the loop budget: `passes` walks over a row of C elements. */
function checkRowLength(op: string, t: Tensor, C: number, passes: number): void {
  const iterations = passes * (C % 4 === 0 ? C / 4 : C);
  if (iterations > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `${op}: rows of ${t.describe()} need ${iterations} loop iterations per invocation, ` +
        `above llvmpipe's limit of ${MAX_LOOP_ITERATIONS}`,
    );
  }
}

function checkScale(op: string, scale: number): void {
  if (!Number.isFinite(scale)) throw new RangeError(`${op}: scale ${scale} is not finite`);
}

/** Records out = softmax(scale · x) over the last axis of x [..., R, C], causal if asked. */
export function softmax(rec: Recorder, x: Tensor, out: Tensor, opts: SoftmaxOptions = {}): void {
  requireF32("softmax", x, out);
  requireSameShape("softmax", x, out);
  requireDisjoint("softmax", [out], [x]);
  const scale = opts.scale ?? 1;
  checkScale("softmax", scale);
  const dims = x.shape.length;
  if (dims < (opts.causal ? 2 : 1)) {
    throw new ShapeError(
      `softmax: ${x.describe()} needs ${
        opts.causal ? "[..., R, C] for the causal mask" : "an axis"
      }`,
    );
  }
  const C = x.shape[dims - 1];
  const R = dims >= 2 ? x.shape[dims - 2] : 1;
  checkRowLength("softmax", x, C, 3);
  const rows = C === 0 ? 0 : x.size / C;
  if (rows === 0) return;
  const vec = C % 4 === 0;
  rec.dispatch(
    {
      name: "softmax",
      code: code("forward", vec),
      constants: { ROWS: rows, R, C, SCALE: scale, CAUSAL: opts.causal ? 1 : 0 },
    },
    [x, out],
    grid1d(rows, 64),
  );
}

/** Records dX = scale · y ⊙ (dY − rowsum(dY ⊙ y)) from the softmax output y (dX += … if asked). */
export function softmaxBackward(
  rec: Recorder,
  y: Tensor,
  dY: Tensor,
  dX: Tensor,
  opts: SoftmaxBackwardOptions = {},
): void {
  requireF32("softmaxBackward", y, dY, dX);
  requireSameShape("softmaxBackward", y, dY);
  requireSameShape("softmaxBackward", y, dX);
  requireDisjoint("softmaxBackward", [dX], [y, dY]);
  const scale = opts.scale ?? 1;
  checkScale("softmaxBackward", scale);
  if (y.shape.length === 0) throw new ShapeError(`softmaxBackward: ${y.describe()} has no axis`);
  const C = y.shape[y.shape.length - 1];
  checkRowLength("softmaxBackward", y, C, 2);
  const rows = C === 0 ? 0 : y.size / C;
  if (rows === 0) return;
  rec.dispatch(
    {
      name: "softmax_backward",
      code: code("backward", C % 4 === 0),
      constants: { ROWS: rows, R: 1, C, SCALE: scale, ACCUMULATE: opts.accumulate ? 1 : 0 },
    },
    [y, dY, dX],
    grid1d(rows, 64),
  );
}

/** float64 reference of `softmax` for x viewed as [rows, C] with R rows per matrix. */
export function softmaxReference(
  x: ArrayLike<number>,
  R: number,
  C: number,
  opts: SoftmaxOptions = {},
): Float64Array {
  const scale = opts.scale ?? 1;
  const out = new Float64Array(x.length);
  for (let row = 0; row * C < x.length; row++) {
    const limit = opts.causal ? Math.min((row % R) + 1, C) : C;
    let m = -Infinity;
    for (let j = 0; j < limit; j++) m = Math.max(m, scale * x[row * C + j]);
    let s = 0;
    for (let j = 0; j < limit; j++) s += Math.exp(scale * x[row * C + j] - m);
    for (let j = 0; j < limit; j++) out[row * C + j] = Math.exp(scale * x[row * C + j] - m) / s;
  }
  return out;
}

/** float64 reference of `softmaxBackward` for rows of length C. */
export function softmaxBackwardReference(
  y: ArrayLike<number>,
  dY: ArrayLike<number>,
  C: number,
  scale = 1,
): Float64Array {
  const dX = new Float64Array(y.length);
  for (let row = 0; row * C < y.length; row++) {
    let dot = 0;
    for (let j = 0; j < C; j++) dot += dY[row * C + j] * y[row * C + j];
    for (let j = 0; j < C; j++) {
      dX[row * C + j] = scale * y[row * C + j] * (dY[row * C + j] - dot);
    }
  }
  return dX;
}
