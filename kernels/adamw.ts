/**
 * AdamW over the flat parameter arena in one dispatch: parameters, gradients and both moments
 * are sibling arenas of equal size, and the step number comes from the device counters.
 */
import biasSource from "./adamw_bias.wgsl" with { type: "text" };
import stepSource from "./adamw_step.wgsl" with { type: "text" };
import source from "./adamw.wgsl" with { type: "text" };
import { Counter } from "./counters.ts";
import { requireDisjoint, requireF32 } from "./validate.ts";
import { grid1d } from "./grid.ts";
import { f32Bits, type Recorder, uniformU32 } from "./program.ts";
import { ShapeError, type Tensor } from "./tensor.ts";

/** AdamW hyperparameters; omitted ones take torch.optim.AdamW's defaults (0.9, 0.999, 1e-8, 0.01). */
export interface AdamwOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

/** Arguments of `adamw`: four f32 tensors of equal size plus the counters (t = trainBatch). */
export interface AdamwArgs extends AdamwOptions {
  params: Tensor;
  grads: Tensor;
  m: Tensor;
  v: Tensor;
  counters: Tensor;
  /** Counters slot holding the 1-based step t (default Counter.trainBatch). */
  counterIndex?: number;
}

/**
 * The words of adamw.wgsl's `Params` struct (lr, 1 − lr·wd, β1, 1 − β1, β2, 1 − β2, ln β1,
 * ln β2, ε): everything that does not depend on t, computed in float64 on the host and rounded
 * once to f32. Fused kernels that apply AdamW upload the same words so their updates round alike.
 */
export function adamwUniformWords(o: Required<AdamwOptions>): number[] {
  return [
    o.lr,
    1 - o.lr * o.weightDecay,
    o.beta1,
    1 - o.beta1,
    o.beta2,
    1 - o.beta2,
    Math.log(o.beta1),
    Math.log(o.beta2),
    o.eps,
  ].map(f32Bits);
}

/**
 * AdamW's options with PyTorch's defaults filled in, checked (finite; betas in [0, 1)); `op`
 * names the caller in the error. Fused steps that apply AdamW resolve theirs here too.
 */
export function resolveAdamwOptions(o: AdamwOptions, op = "adamw"): Required<AdamwOptions> {
  const r = {
    lr: o.lr,
    beta1: o.beta1 ?? 0.9,
    beta2: o.beta2 ?? 0.999,
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? 0.01,
  };
  for (const [name, value] of Object.entries(r)) {
    if (!Number.isFinite(value)) throw new RangeError(`${op}: ${name} = ${value} is not finite`);
  }
  for (const name of ["beta1", "beta2"] as const) {
    if (r[name] < 0 || r[name] >= 1) {
      throw new RangeError(`${op}: ${name} = ${r[name]} is not in [0, 1)`);
    }
  }
  return r;
}

/** Records one AdamW step with PyTorch's semantics; t is read from the counters on the device. */
export function adamw(rec: Recorder, args: AdamwArgs): void {
  const { params, grads, m, v, counters } = args;
  const counterIndex = args.counterIndex ?? Counter.trainBatch;
  const o = resolveAdamwOptions(args);
  for (const t of [params, grads, m, v]) {
    requireF32("adamw", t);
    if (t.size !== params.size) {
      throw new ShapeError(`adamw: ${t.describe()} must have the size of ${params.describe()}`);
    }
  }
  if (counters.dtype !== "u32" || counterIndex < 0 || counterIndex >= counters.size) {
    throw new ShapeError(`adamw: counter slot ${counterIndex} outside ${counters.describe()}`);
  }
  requireDisjoint("adamw", [params, m, v], [grads, counters]);
  if (params.size === 0) return;
  const width = params.size % 4 === 0 ? 4 : 1;
  const code = `alias T = ${width === 4 ? "vec4<f32>" : "f32"};\n` + biasSource + stepSource +
    source;
  const uniform = uniformU32(rec.gpu, adamwUniformWords(o), "adamw.params");
  const len = params.size / width;
  rec.dispatch(
    { name: "adamw", code, constants: { LEN: len, COUNTER: counterIndex } },
    [params, grads, m, v, counters, uniform],
    grid1d(len, 256),
  );
}

/** Float64 AdamW step t (1-based) as torch.optim.AdamW; mutates p, m, v in place, returns them. */
export function adamwReference<
  P extends Float64Array | Float32Array,
  M extends Float64Array | Float32Array,
  W extends Float64Array | Float32Array,
>(
  p: P,
  g: ArrayLike<number>,
  m: M,
  v: W,
  t: number,
  opts: AdamwOptions,
): { p: P; m: M; v: W } {
  const o = resolveAdamwOptions(opts);
  const bc1 = 1 - o.beta1 ** t;
  const bc2 = 1 - o.beta2 ** t;
  const stepSize = o.lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - o.lr * o.weightDecay;
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * g[i];
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * g[i] * g[i];
    p[i] -= stepSize * m[i] / (Math.sqrt(v[i]) / bc2Sqrt + o.eps);
  }
  return { p, m, v };
}
