/**
 * Test data and comparisons shared by the kernel tests. Data comes from the project's own
 * Philox generator, so every run (and every machine) sees the same inputs.
 */
import type { Gpu } from "../kernels/device.ts";
import { copy } from "../kernels/elementwise.ts";
import { ok } from "node:assert/strict";
import { philoxWords, unitFloat } from "../kernels/philox.ts";
import { Recorder } from "../kernels/program.ts";
import { createTensor, readF32, type Tensor } from "../kernels/tensor.ts";
import { Graph, Var } from "../nn/graph.ts";
import type { ParamStore } from "../nn/params.ts";

// A key of its own so test data never coincides with a run's streams.
const TEST_STREAM = 0x7e57;

/** Uniform floats in [offset − amp, offset + amp), rounded to f32 as the device sees them. */
export function randomF32(n: number, seed: number, amp = 1, offset = 0): Float32Array {
  return Float32Array.from(
    philoxWords(n, [seed, TEST_STREAM]),
    (w) => offset + amp * (2 * unitFloat(w) - 1),
  );
}

/** Token ids uniform in [0, vocab). */
export function randomIds(n: number, vocab: number, seed: number): Uint32Array {
  return Uint32Array.from(philoxWords(n, [seed, TEST_STREAM + 1]), (w) => w % vocab);
}

/** max |got − want| / max |want|: the error relative to the result's scale. */
export function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) {
    throw new Error(`relError: lengths differ (${got.length} vs ${want.length})`);
  }
  let err = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return err / Math.max(scale, 1e-30);
}

/** Central finite differences of a float64 scalar function of one flat parameter vector. */
export function finiteDifferences(
  x: Float64Array,
  loss: (x: Float64Array) => number,
  h = 1e-6,
): Float64Array {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + h;
    const up = loss(x);
    x[i] = keep - h;
    const down = loss(x);
    x[i] = keep;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

/** A host tensor for a gradient check: its shape and the f32 values the device sees. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Where a checked function's output goes: a tensor (projected on fixed weights) or a loss. */
export type CheckedOutput = Var | { loss: Tensor };

/**
 * One function to check: recorded on the device by `forward`, evaluated in float64 by
 * `reference`. The scalar loss is Σ wᵢ·outᵢ for fixed random weights w (or the loss itself),
 * so every output element feeds the gradient.
 */
export interface GradCheckSpec {
  name: string;
  /** Differentiable inputs, graph values that require gradients. */
  inputs?: Record<string, HostTensor>;
  /** A finalised store whose parameters take `params` (keyed by parameter name). */
  store?: ParamStore;
  params?: Map<string, Float32Array>;
  /** Records the function; token ids and other constants are captured by the closure. */
  forward(g: Graph, x: Record<string, Var>): CheckedOutput;
  /** The same function in float64 of every input and parameter, keyed by name. */
  reference(values: Record<string, Float64Array>): ArrayLike<number>;
  /** Inputs or parameters whose gradient must be exactly zero (e.g. keys at T = 1). */
  zeroGrads?: string[];
  /**
   * Runs after the plan and before `reference`: reads back what the device drew (a dropout
   * mask) so the float64 reference, and its finite differences, use the same draw.
   */
  afterRun?(): Promise<void>;
}

/** What a gradient check measured for one spec. */
export interface GradCheckResult {
  name: string;
  /** Device output (or the loss as one value) and the float64 reference. */
  output: Float32Array;
  want: Float64Array;
  /** relError of the output against the reference. */
  forwardError: number;
  /** Device gradient and central finite differences per input and parameter. */
  grads: Record<string, Float32Array>;
  fd: Record<string, Float64Array>;
  /** relError(grad, fd) per input and parameter. */
  gradErrors: Record<string, number>;
  /** Names whose gradient must be exactly zero. */
  zeroGrads: string[];
}

/**
 * Records every spec into one plan (forward, loss seed, backward), replays it `replays` times
 * and compares outputs to the float64 references and gradients to central finite differences
 * of the float64 loss.
 */
export async function gradCheck(
  gpu: Gpu,
  specs: readonly GradCheckSpec[],
  opts: { replays?: number; seed?: number } = {},
): Promise<GradCheckResult[]> {
  const rec = new Recorder(gpu);
  const recorded: {
    spec: GradCheckSpec;
    g: Graph;
    vars: Record<string, Var>;
    out: CheckedOutput;
    weights?: Float32Array;
  }[] = [];
  try {
    specs.forEach((spec, i) => {
      const g = new Graph(rec, true);
      const vars: Record<string, Var> = {};
      for (const [name, t] of Object.entries(spec.inputs ?? {})) {
        vars[name] = new Var(createTensor(gpu, t.shape, "f32", name, t.data), true);
      }
      if (spec.store) spec.store.write(spec.params ?? new Map());
      const out = spec.forward(g, vars);
      let weights: Float32Array | undefined;
      if (out instanceof Var) {
        // dLoss/dOut = w seeds the backward, recorded so that replays seed it too.
        weights = randomF32(out.data.size, (opts.seed ?? 0x5eed) + i);
        const w = createTensor(gpu, out.shape, "f32", `${spec.name}.weights`, weights);
        const target = g.gradTarget(out);
        copy(rec, w, target.tensor);
      }
      g.backward();
      recorded.push({ spec, g, vars, out, weights });
    });
  } catch (e) {
    await rec.finish().catch(() => {});
    throw e;
  }
  const plan = await rec.finish();
  for (let i = 0; i < (opts.replays ?? 1); i++) plan.submit();
  await gpu.device.queue.onSubmittedWorkDone();

  const results: GradCheckResult[] = [];
  for (const { spec, g, vars, out, weights } of recorded) {
    await spec.afterRun?.();
    const values: Record<string, Float64Array> = {};
    for (const [name, t] of Object.entries(spec.inputs ?? {})) {
      values[name] = Float64Array.from(t.data);
    }
    for (const [name, data] of spec.params ?? []) values[name] = Float64Array.from(data);
    const want = Float64Array.from(spec.reference(values));
    const output = out instanceof Var ? await readF32(out.data) : (await readF32(out.loss));
    const loss = () => {
      const y = spec.reference(values);
      if (!weights) return y[0];
      let s = 0;
      for (let i = 0; i < weights.length; i++) s += weights[i] * y[i];
      return s;
    };
    const grads: Record<string, Float32Array> = {};
    for (const [name, v] of Object.entries(vars)) {
      const grad = g.gradOf(v);
      if (!grad) throw new Error(`${spec.name}: no gradient reached input ${name}`);
      grads[name] = await readF32(grad);
    }
    if (spec.store) {
      for (const [name, grad] of await spec.store.read("grads")) grads[name] = grad;
    }
    const fd: Record<string, Float64Array> = {};
    const gradErrors: Record<string, number> = {};
    for (const name of Object.keys(grads)) {
      // finiteDifferences perturbs values[name] in place, which is what `loss` reads.
      fd[name] = finiteDifferences(values[name], loss);
      gradErrors[name] = relError(grads[name], fd[name]);
    }
    results.push({
      name: spec.name,
      output: out instanceof Var ? output : output.subarray(0, 1),
      want,
      forwardError: relError(out instanceof Var ? output : output.subarray(0, 1), want),
      grads,
      fd,
      gradErrors,
      zeroGrads: spec.zeroGrads ?? [],
    });
  }
  return results;
}

/**
 * Tolerances of the nn gradient checks, relative to the largest magnitude of the reference.
 * The device computes in f32 and the float64 finite differences are exact to ~1e-10, so what
 * remains is f32 rounding through a few ops: at most 7e-7 measured on llvmpipe for these small
 * shapes. 1e-5 leaves an order of magnitude of headroom and still catches a wrong scale, sign,
 * transpose or a lost (or doubled) accumulation, which are all O(1e-2) or more.
 */
export const FORWARD_TOL = 1e-5;
export const GRAD_TOL = 1e-5;

/** Asserts each result's forward and every gradient within the tolerances, with signal. */
export function assertChecked(results: readonly GradCheckResult[], gradTol = GRAD_TOL): void {
  for (const r of results) {
    ok(
      r.forwardError <= FORWARD_TOL,
      `${r.name}: forward relative error ${r.forwardError} > ${FORWARD_TOL}`,
    );
    ok(Object.keys(r.gradErrors).length > 0, `${r.name}: no gradients checked`);
    for (const [name, err] of Object.entries(r.gradErrors)) {
      if (r.zeroGrads.includes(name)) {
        ok(r.grads[name].every((v) => v === 0), `${r.name}: d/d${name} must be exactly zero`);
        ok(r.fd[name].every((v) => Math.abs(v) < 1e-8), `${r.name}: FD of d/d${name} not zero`);
        continue;
      }
      ok(err <= gradTol, `${r.name}: d/d${name} relative error ${err} > ${gradTol}`);
      // An all-zero gradient would match an all-zero FD: every check here must see signal.
      ok(r.fd[name].some((v) => Math.abs(v) > 1e-3), `${r.name}: d/d${name} is all zero`);
    }
    for (const name of r.zeroGrads) ok(name in r.grads, `${r.name}: no gradient ${name}`);
  }
}

/**
 * Random host tensors for gradient checks, each drawn from its own seed counting up from
 * `firstSeed` (one sequence per test file keeps every file's data fixed as tests are added).
 */
export function hostTensors(firstSeed: number): {
  host: (shape: number[], amp?: number) => HostTensor;
  awayFromZero: (shape: number[]) => HostTensor;
  /** The next seed of the sequence, for other draws (e.g. randomIds). */
  nextSeed: () => number;
  /** Restarts the sequence at `seed` (to draw a case's data again). */
  reseed: (seed: number) => void;
} {
  let seq = firstSeed;
  const host = (shape: number[], amp = 1): HostTensor => ({
    shape,
    data: randomF32(shape.reduce((a, b) => a * b, 1), seq++, amp),
  });
  // |v| ≥ 0.1: ReLU's kink never sits inside a finite-difference step, and a dropped element
  // (0) is never mistaken for a kept one.
  const awayFromZero = (shape: number[]): HostTensor => {
    const t = host(shape);
    t.data = t.data.map((v) => (v < 0 ? -0.1 : 0.1) + 0.9 * v);
    return t;
  };
  return { host, awayFromZero, nextSeed: () => seq++, reseed: (seed) => void (seq = seed) };
}
