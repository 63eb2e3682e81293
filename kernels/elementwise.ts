/**
 * Elementwise maps (add with bias broadcast, mul, scale, relu and its backward, accumulation,
 * copy).
 */
import source from "./elementwise.wgsl" with { type: "text" };
import { grid1d } from "./grid.ts";
import type { Recorder } from "./program.ts";
import { ShapeError, type Tensor } from "./tensor.ts";
import { requireDisjoint, requireF32, requireSameShape } from "./validate.ts";

const Op = { add: 0, mul: 1, scale: 2, relu: 3, reluBackward: 4, copy: 5 } as const;

/** Records one elementwise dispatch; vec4 lanes when every length allows it. */
function map(
  rec: Recorder,
  op: keyof typeof Op,
  x: Tensor,
  y: Tensor,
  out: Tensor,
  extra: { s?: number; accumulate?: boolean } = {},
): void {
  if (out.size === 0) return;
  const width = out.size % 4 === 0 && y.size % 4 === 0 ? 4 : 1;
  const code = `alias T = ${width === 4 ? "vec4<f32>" : "f32"};\n` + source;
  const len = out.size / width;
  rec.dispatch(
    {
      name: `elementwise_${op}`,
      code,
      constants: {
        OP: Op[op],
        LEN: len,
        Y_LEN: Math.max(1, y.size / width),
        S: extra.s ?? 1,
        ACCUMULATE: extra.accumulate ? 1 : 0,
      },
    },
    [x, y, out],
    grid1d(len, 256),
  );
}

/** Validates a binary op whose `b` may repeat along the leading axes of `a`. */
function checkBroadcast(op: string, a: Tensor, b: Tensor, out: Tensor): void {
  requireF32(op, a, b, out);
  requireSameShape(op, a, out);
  requireDisjoint(op, [out], [a, b]);
  const tail = a.shape.slice(a.shape.length - b.shape.length);
  const fits = b.size === 1 ||
    (b.shape.length <= a.shape.length && b.shape.every((d, i) => d === tail[i]));
  if (!fits) {
    throw new ShapeError(
      `${op}: ${b.describe()} does not broadcast onto ${a.describe()} (its shape must equal ` +
        `the trailing dimensions of the other operand)`,
    );
  }
}

/** Records out = a + b; `b` may broadcast along leading axes (bias [N] onto [M, N]). */
export function add(rec: Recorder, a: Tensor, b: Tensor, out: Tensor): void {
  checkBroadcast("add", a, b, out);
  map(rec, "add", a, b, out);
}

/** Records out = a ⊙ b (out += … when `accumulate`); `b` may broadcast along leading axes. */
export function mul(rec: Recorder, a: Tensor, b: Tensor, out: Tensor, accumulate = false): void {
  checkBroadcast("mul", a, b, out);
  map(rec, "mul", a, b, out, { accumulate });
}

/** Validates a unary op: same shape, f32, distinct buffers. */
function checkUnary(op: string, a: Tensor, out: Tensor): void {
  requireF32(op, a, out);
  requireSameShape(op, a, out);
  requireDisjoint(op, [out], [a]);
}

/** Records out = s · a. */
export function scale(rec: Recorder, a: Tensor, s: number, out: Tensor): void {
  checkUnary("scale", a, out);
  if (!Number.isFinite(s)) throw new RangeError(`scale: factor ${s} is not finite`);
  map(rec, "scale", a, a, out, { s });
}

/** Records out = max(a, 0). */
export function relu(rec: Recorder, a: Tensor, out: Tensor): void {
  checkUnary("relu", a, out);
  map(rec, "relu", a, a, out);
}

/** Records dX = dOut where x > 0, else 0 (dX += … when `accumulate`). */
export function reluBackward(
  rec: Recorder,
  x: Tensor,
  dOut: Tensor,
  dX: Tensor,
  accumulate = false,
): void {
  requireF32("reluBackward", x, dOut, dX);
  requireSameShape("reluBackward", x, dOut);
  requireSameShape("reluBackward", x, dX);
  requireDisjoint("reluBackward", [dX], [x, dOut]);
  map(rec, "reluBackward", x, dOut, dX, { accumulate });
}

/** Records dst += src (gradient accumulation). */
export function addInto(rec: Recorder, src: Tensor, dst: Tensor): void {
  checkUnary("addInto", src, dst);
  map(rec, "copy", src, src, dst, { accumulate: true });
}

/** Records dst = src. */
export function copy(rec: Recorder, src: Tensor, dst: Tensor): void {
  checkUnary("copy", src, dst);
  map(rec, "copy", src, src, dst);
}

/** Which elementwise map a reference computes. */
export type ElementwiseOp = "add" | "mul" | "scale" | "relu" | "reluBackward";

/**
 * float64 reference of the elementwise maps: `y` repeats along the leading axes as in `add`;
 * `s` is the factor of `scale`; `reluBackward` takes x and the upstream gradient y.
 */
export function elementwiseReference(
  op: ElementwiseOp,
  x: ArrayLike<number>,
  y: ArrayLike<number> = x,
  s = 1,
): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const xv = x[i], yv = y[i % y.length];
    out[i] = op === "add"
      ? xv + yv
      : op === "mul"
      ? xv * yv
      : op === "scale"
      ? s * xv
      : op === "relu"
      ? Math.max(xv, 0)
      : xv > 0
      ? yv
      : 0;
  }
  return out;
}
