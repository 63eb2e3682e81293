/**
 * The matmul epilogue (bias, ReLU/GELU, saved pre-activation) on both matmul kernels, the f32
 * erf/GELU against float64, and the fused activation backward (d(pre) and the bias gradient).
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import {
  type Activation,
  activationReference,
  erfcReference,
  erfReference,
  GELU_WGSL,
  geluGradReference,
  geluReference,
} from "../kernels/activation.ts";
import { activationBackward, activationBackwardReference } from "../kernels/activation_backward.ts";
import { getGpu } from "../kernels/device.ts";
import { matmul, type MatmulKernel, matmulReference } from "../kernels/matmul.ts";
import { runOnce } from "../kernels/program.ts";
import { createTensor, readF32, ShapeError } from "../kernels/tensor.ts";
import { randomF32, relError } from "./support.ts";

Deno.test("erfReference and geluReference match known values", () => {
  // erf(0.5), erf(1), erf(2), erf(3.5) to 16 digits (Abramowitz & Stegun table 7.1 / mpmath).
  const known: [number, number][] = [
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [3.5, 0.9999992569016276],
  ];
  for (const [x, want] of known) {
    ok(Math.abs(erfReference(x) - want) < 1e-15, `erf(${x}) = ${erfReference(x)}`);
    ok(Math.abs(erfReference(-x) + want) < 1e-15, `erf(${-x})`);
  }
  // torch.nn.GELU()(torch.tensor([-3., -1., 0.5, 2.], dtype=torch.float64))
  const gelu: [number, number][] = [
    [-3, -0.00404969409489031],
    [-1, -0.15865525393145702],
    [0.5, 0.34573123063700656],
    [2, 1.9544997361036416],
  ];
  for (const [x, want] of gelu) ok(Math.abs(geluReference(x) - want) < 1e-15, `gelu(${x})`);
  // Far in the negative tail, x·erfc(|x|/√2)/2. PyTorch's float64 value goes through 1 + erf
  // and keeps only about seven digits there; the reference does not cancel.
  ok(Math.abs(geluReference(-6) / -5.919525869479969e-9 - 1) < 1e-6, "gelu(-6)");
  // The derivative against a central difference of the reference.
  for (const x of [-2.5, -0.3, 0.7, 1.9]) {
    const fd = (geluReference(x + 1e-6) - geluReference(x - 1e-6)) / 2e-6;
    ok(Math.abs(geluGradReference(x) - fd) < 1e-8, `gelu'(${x})`);
  }
});

Deno.test("f32 erf, GELU and GELU' on the device are within ~1e-7 of float64", async () => {
  const gpu = await getGpu();
  // A dense sweep over [-10, 10] that crosses both branches (|x/√2| < 1 and beyond).
  const n = 8192;
  const xs = Float32Array.from({ length: n }, (_, i) => -10 + (20 * i) / (n - 1));
  const x = createTensor(gpu, [n], "f32", "x", xs);
  const out = createTensor(gpu, [4, n], "f32", "out");
  const code = GELU_WGSL + `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= ${n}u) { return; }
  out[i] = erf_f32(x[i] * 0.25);
  out[${n}u + i] = gelu_f32(x[i]);
  out[${2 * n}u + i] = gelu_grad_f32(x[i]);
  out[${3 * n}u + i] = normal_cdf(x[i]);
}`;
  await runOnce(gpu, (rec) => rec.dispatch({ name: "gelu_probe", code }, [x, out], n / 64));
  const got = await readF32(out);
  let erfErr = 0, cdfErr = 0, geluErr = 0, gradErr = 0, tailRel = 0;
  for (let i = 0; i < n; i++) {
    const v = xs[i];
    erfErr = Math.max(erfErr, Math.abs(got[i] - erfReference(v * 0.25)));
    geluErr = Math.max(geluErr, Math.abs(got[n + i] - geluReference(v)) / Math.max(1, Math.abs(v)));
    gradErr = Math.max(gradErr, Math.abs(got[2 * n + i] - geluGradReference(v)));
    cdfErr = Math.max(cdfErr, Math.abs(got[3 * n + i] - 0.5 * erfcReference(-v / Math.SQRT2)));
    // The negative tail, tiny values, stays accurate relative to itself (no 1 − erf
    // cancellation); what remains is the f32 rounding of x/√2 and x², amplified by the slope
    // of ln erfc (2z): about 1e-5 at x = −10.
    if (v < -2) {
      tailRel = Math.max(tailRel, Math.abs(got[n + i] / geluReference(v) - 1));
    }
  }
  // erf = 1 − erfc loses a few ulps of 1 near 0 (about 3e-7 at |x| < 0.1); GELU does not use
  // that form: x·Φ(x) scales the error of Φ by x.
  ok(erfErr < 4e-7, `erf: largest error ${erfErr}`);
  ok(cdfErr < 2.5e-7, `Φ: largest error ${cdfErr}`);
  ok(geluErr < 1.5e-7, `gelu: largest error ${geluErr}`);
  ok(gradErr < 3e-7, `gelu': largest error ${gradErr}`);
  ok(tailRel < 3e-5, `gelu tail: largest relative error ${tailRel}`);
});

/** act(a·bᵀ + bias) in float64, and the pre-activation. */
function linearReference(
  a: Float32Array,
  b: Float32Array,
  bias: Float32Array | undefined,
  [M, K, N]: number[],
  activation: Activation,
): { out: Float64Array; pre: Float64Array } {
  const prod = matmulReference(a, [M, K], b, [N, K], { transB: true });
  const pre = prod.map((v, i) => v + (bias ? bias[i % N] : 0));
  return { out: pre.map((v) => activationReference(activation, v)), pre };
}

Deno.test("matmul epilogue: bias + activation + saved pre-activation on both kernels", async () => {
  const gpu = await getGpu();
  // Each variant compiles a texture kernel (16×16 tile, ~1 s on llvmpipe): few cases, each
  // covering several paths (vec4 and scalar stores, with and without bias and saving).
  const cases: { dims: number[]; activation: Activation; bias: boolean; save: boolean }[] = [
    { dims: [37, 20, 24], activation: "relu", bias: true, save: false },
    { dims: [19, 13, 9], activation: "gelu", bias: true, save: true },
    { dims: [16, 8, 12], activation: "gelu", bias: false, save: true },
    { dims: [21, 16, 65], activation: "none", bias: true, save: false },
  ];
  let seed = 700;
  for (const c of cases) {
    const [M, K, N] = c.dims;
    const ha = randomF32(M * K, seed++), hb = randomF32(N * K, seed++);
    const hbias = c.bias ? randomF32(N, seed++) : undefined;
    const want = linearReference(ha, hb, hbias, c.dims, c.activation);
    const a = createTensor(gpu, [M, K], "f32", "a", ha);
    const b = createTensor(gpu, [N, K], "f32", "b", hb);
    const bias = hbias && createTensor(gpu, [N], "f32", "bias", hbias);
    const results: Float32Array[] = [];
    for (const kernel of ["buffer", "texture"] as MatmulKernel[]) {
      const out = createTensor(gpu, [M, N], "f32", "out");
      const pre = c.save ? createTensor(gpu, [M, N], "f32", "pre") : undefined;
      await runOnce(gpu, (rec) =>
        matmul(rec, a, b, out, {
          transB: true,
          kernel,
          epilogue: { bias, activation: c.activation, preActivation: pre },
        }));
      const got = await readF32(out);
      const what = `${kernel} ${JSON.stringify(c)}`;
      ok(relError(got, want.out) < 1e-5, `${what}: out error ${relError(got, want.out)}`);
      if (pre) {
        const gotPre = await readF32(pre);
        ok(relError(gotPre, want.pre) < 1e-5, `${what}: pre error`);
      }
      results.push(got);
    }
    // The texture kernel runs the same FMA chain and the same epilogue code.
    deepStrictEqual(results[1], results[0], `${JSON.stringify(c)}: kernels differ`);
  }
});

Deno.test("matmul epilogue rejects accumulation, a wrong bias and aliasing", async () => {
  const gpu = await getGpu();
  const a = createTensor(gpu, [4, 4], "f32", "a");
  const b = createTensor(gpu, [4, 4], "f32", "b");
  const out = createTensor(gpu, [4, 4], "f32", "out");
  const bias = createTensor(gpu, [4], "f32", "bias");
  const wrongBias = createTensor(gpu, [5], "f32", "bias5");
  const run = (body: Parameters<typeof runOnce>[1]) => runOnce(gpu, body);
  for (
    const [opts, message] of [
      [{ accumulate: true, epilogue: { bias } }, /cannot accumulate/],
      [{ epilogue: { bias: wrongBias } }, /bias .* must be \[4\]/],
      [{ epilogue: { bias, preActivation: out } }, /shares a GPU buffer/],
    ] as const
  ) {
    let error: unknown;
    await run((rec) => matmul(rec, a, b, out, opts)).catch((e) => error = e);
    ok(error instanceof ShapeError && message.test(error.message), `${error}`);
  }
});

Deno.test("activationBackward: d(pre) and the bias gradient for every activation", async () => {
  const gpu = await getGpu();
  let seed = 800;
  for (const activation of ["none", "relu", "gelu"] as Activation[]) {
    for (const [rows, N] of [[70, 12], [33, 7], [20, 40], [9, 37]]) {
      const hpre = randomF32(rows * N, seed++, 3);
      const hdOut = randomF32(rows * N, seed++);
      // ReLU's backward reads the output; GELU's the pre-activation.
      const saved = activation === "relu" ? hpre.map((v) => Math.max(v, 0)) : hpre;
      const dOut = createTensor(gpu, [rows, N], "f32", "dOut", hdOut);
      const savedT = createTensor(gpu, [rows, N], "f32", "saved", saved);
      const dPre = createTensor(gpu, [rows, N], "f32", "dPre");
      const initial = randomF32(N, seed++);
      const dBias = createTensor(gpu, [N], "f32", "dBias", initial);
      await runOnce(gpu, (rec) =>
        activationBackward(rec, {
          activation,
          dOut,
          saved: savedT,
          dPre,
          dBias,
          accumulateBias: true,
        }));
      const want = activationBackwardReference(activation, hpre, hdOut, N);
      const what = `${activation} [${rows}, ${N}]`;
      ok(relError(await readF32(dPre), want.dPre) < 1e-6, `${what}: dPre`);
      const wantBias = want.dBias.map((v, i) => v + initial[i]);
      ok(relError(await readF32(dBias), wantBias) < 1e-6, `${what}: dBias`);
    }
  }
});
