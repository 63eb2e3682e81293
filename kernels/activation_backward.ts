/**
 * The backward of a bias + activation epilogue in one dispatch: d(pre) = dOut ⊙ act'(pre) and,
 * in the same pass, its sum over rows (the bias gradient). One workgroup per column (or group
 * of four columns) walks the rows in a fixed order, so the sums are deterministic.
 */
import source from "./activation.wgsl" with { type: "text" };
import { type Activation, GELU_WGSL, geluGradReference } from "./activation.ts";
import { requireDisjoint, requireF32, requireSameShape } from "./validate.ts";
import { wgslSection } from "./wgsl.ts";
import { grid1d } from "./grid.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";
import type { Recorder } from "./program.ts";
import { LimitError, ShapeError, type Tensor } from "./tensor.ts";

const WG = 64;

/** Arguments of `activationBackward`. */
export interface ActivationBackwardArgs {
  activation: Activation;
  /** Upstream gradient d(out), [..., N]. */
  dOut: Tensor;
  /**
   * What the derivative is computed from: the output for ReLU (out > 0 ⇔ pre > 0), the
   * pre-activation for GELU; ignored for "none".
   */
  saved: Tensor;
  /** Receives d(pre) = dOut ⊙ act'(pre), the shape of dOut (overwritten). */
  dPre: Tensor;
  /** When given, receives Σ_rows d(pre), [N]. */
  dBias?: Tensor;
  /** dBias += … instead of overwriting. */
  accumulateBias?: boolean;
}

/** Records d(pre) (and the bias gradient) of `out = act(pre)` in one dispatch. */
export function activationBackward(rec: Recorder, args: ActivationBackwardArgs): void {
  const op = "activationBackward";
  const { dOut, saved, dPre, dBias, activation } = args;
  requireF32(op, dOut, saved, dPre, ...(dBias ? [dBias] : []));
  requireSameShape(op, dOut, dPre);
  if (activation !== "none") requireSameShape(op, dOut, saved);
  const outputs = dBias ? [dPre, dBias] : [dPre];
  requireDisjoint(op, outputs, [dOut, saved]);
  if (dBias) requireDisjoint(op, [dBias], [dPre]);
  if (dOut.shape.length === 0) throw new ShapeError(`${op}: ${dOut.describe()} has no axis`);
  const N = dOut.shape[dOut.shape.length - 1];
  const rows = N === 0 ? 0 : dOut.size / N;
  if (dBias && (dBias.shape.length !== 1 || dBias.shape[0] !== N)) {
    throw new ShapeError(`${op}: bias gradient ${dBias.describe()} must be [${N}]`);
  }
  const iterations = Math.ceil(rows / WG) + Math.log2(WG);
  if (iterations > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `${op}: ${rows} rows of ${dOut.describe()} need ${iterations} loop iterations per ` +
        `invocation, above llvmpipe's limit of ${MAX_LOOP_ITERATIONS}`,
    );
  }
  if (N === 0) return;
  const vec = N % 4 === 0;
  const cols = vec ? N / 4 : N;
  const prelude = `alias T = ${vec ? "vec4<f32>" : "f32"};\n` +
    `fn gelu_grad_t(x: T) -> T { return ${vec ? "gelu_grad_vec4(x)" : "gelu_grad_f32(x)"}; }\n` +
    (dBias
      ? "@group(0) @binding(3) var<storage, read_write> d_bias: array<T>;\n" +
        "fn write_bias(i: u32, v: T) { d_bias[i] = select(v, d_bias[i] + v, ACCUMULATE_BIAS); }\n"
      : "fn write_bias(i: u32, v: T) {}\n");
  const kind = { none: 0, relu: 1, gelu: 2 }[activation];
  rec.dispatch(
    {
      name: `activation_backward_${activation}${dBias ? "_bias" : ""}`,
      code: prelude + GELU_WGSL + wgslSection(source, "backward"),
      constants: {
        ROWS: rows,
        COLS: cols,
        KIND: kind,
        ACCUMULATE_BIAS: args.accumulateBias ? 1 : 0,
      },
    },
    [dOut, activation === "none" ? dOut : saved, dPre, ...(dBias ? [dBias] : [])],
    grid1d(cols * WG, WG),
  );
}

/** float64 reference of `activationBackward`: d(pre) from the pre-activations, and Σ_rows. */
export function activationBackwardReference(
  activation: Activation,
  pre: ArrayLike<number>,
  dOut: ArrayLike<number>,
  N: number,
): { dPre: Float64Array; dBias: Float64Array } {
  const dPre = Float64Array.from(dOut, (d, i) => {
    if (activation === "relu") return pre[i] > 0 ? d : 0;
    if (activation === "gelu") return d * geluGradReference(pre[i]);
    return d;
  });
  const dBias = new Float64Array(N);
  dPre.forEach((d, i) => dBias[i % N] += d);
  return { dPre, dBias };
}
