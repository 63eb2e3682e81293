// Activations for fused epilogues and the activation backward (see kernels/activation.ts).
// Sections: `functions` (erf and GELU, included by the matmul epilogue and the backward) and
// `backward` (d(pre) plus its column sum, the bias gradient).

//@kernel functions
// erf(u) for |u| < 1: its Taylor series, 2/√π Σ (−1)ⁿ u^(2n+1) / (n!·(2n+1)), n = 0..10, in
// Horner form over u²; the first dropped term is below 1.1e-9 at |u| = 1.
fn erf_taylor(u: f32) -> f32 {
  let w = u * u;
  var s = 1.4807192815879218e-08;
  s = fma(s, w, -1.6365844691234924e-07);
  s = fma(s, w, 1.6462114365889246e-06);
  s = fma(s, w, -1.492565035840625e-05);
  s = fma(s, w, 0.00012055332981789664);
  s = fma(s, w, -0.0008548327023450852);
  s = fma(s, w, 0.005223977625442188);
  s = fma(s, w, -0.026866170645131252);
  s = fma(s, w, 0.11283791670955126);
  s = fma(s, w, -0.37612638903183754);
  s = fma(s, w, 1.1283791670955126);
  return u * s;
}

// erfc(z) for z ≥ 0.9 as t·exp(−z² + P(t)), t = 1/(1 + z/2), with a degree-8 P fitted here
// (iteratively reweighted least squares toward minimax on z ∈ [0.9, 14]) to a largest error
// in the exponent of 8e-9, i.e. erfc to a relative 1e-8 before f32 rounding. The relative form
// keeps GELU's far negative tail x·erfc(|x|/√2)/2 accurate too, where 1 − erf would cancel.
fn erfc_tail(z: f32) -> f32 {
  let t = 1.0 / fma(0.5, z, 1.0);
  var p = -0.24304285929026861;
  p = fma(p, t, 0.6599919335991913);
  p = fma(p, t, -0.4824328329103651);
  p = fma(p, t, -0.03203908442830528);
  p = fma(p, t, -0.09318847310428054);
  p = fma(p, t, 0.0789392112185984);
  p = fma(p, t, 0.37629055921353105);
  p = fma(p, t, 0.9998578902026475);
  p = fma(p, t, -1.2655063606647);
  return t * exp(p - z * z);
}

fn erf_f32(x: f32) -> f32 {
  let z = abs(x);
  if (z < 1.0) {
    return erf_taylor(x);
  }
  let e = 1.0 - erfc_tail(z);
  return select(-e, e, x > 0.0);
}

// Φ(x) = (1 + erf(x/√2)) / 2, the standard normal CDF.
fn normal_cdf(x: f32) -> f32 {
  let u = x * 0.7071067811865476;
  let z = abs(u);
  if (z < 1.0) {
    return fma(0.5, erf_taylor(u), 0.5);
  }
  let half_tail = 0.5 * erfc_tail(z);
  return select(half_tail, 1.0 - half_tail, u > 0.0);
}

// GELU(x) = x·Φ(x): PyTorch's nn.GELU() default (approximate='none').
fn gelu_f32(x: f32) -> f32 {
  return x * normal_cdf(x);
}

// d GELU/dx = Φ(x) + x·φ(x), φ(x) = exp(−x²/2)/√(2π).
fn gelu_grad_f32(x: f32) -> f32 {
  return normal_cdf(x) + x * 0.3989422804014327 * exp(-0.5 * x * x);
}

fn gelu_vec4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(gelu_f32(v.x), gelu_f32(v.y), gelu_f32(v.z), gelu_f32(v.w));
}

fn gelu_grad_vec4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(gelu_grad_f32(v.x), gelu_grad_f32(v.y), gelu_grad_f32(v.z), gelu_grad_f32(v.w));
}

//@kernel backward
// kernels/activation.ts prepends `alias T` (vec4<f32> when the row length is a multiple of
// four), `gelu_grad_t`, the functions section, and either the d_bias binding (3) with a
// `write_bias` storing into it or an empty `write_bias`.

// Rows (all leading axes together) and the row length in units of T.
override ROWS: u32;
override COLS: u32;
// 0: none (d(pre) = d(out)), 1: ReLU (saved is the output), 2: GELU (saved is the pre-activation).
override KIND: u32;
override ACCUMULATE_BIAS: bool = false;

@group(0) @binding(0) var<storage, read> d_out: array<T>;
@group(0) @binding(1) var<storage, read> saved: array<T>;
@group(0) @binding(2) var<storage, read_write> d_pre: array<T>;

const WG: u32 = 64u;
var<workgroup> part: array<T, WG>;

// One workgroup per column (group): invocation t walks rows t, t + WG, ... in order, writing
// d(pre) and summing it; a fixed binary tree combines the WG partial sums into the bias
// gradient, so it is bit-identical from run to run.
@compute @workgroup_size(WG)
fn main(
  @builtin(local_invocation_index) t: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let col = wid.x + wid.y * nwg.x;
  if (col >= COLS) {
    return;
  }
  var s = T(0.0);
  for (var r = t; r < ROWS; r = r + WG) {
    let i = r * COLS + col;
    var d = d_out[i];
    if (KIND == 1u) {
      d = select(T(0.0), d, saved[i] > T(0.0));
    } else if (KIND == 2u) {
      d = d * gelu_grad_t(saved[i]);
    }
    d_pre[i] = d;
    s = s + d;
  }
  part[t] = s;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h = h >> 1u) {
    if (t < h) {
      part[t] = part[t] + part[t + h];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    write_bias(col, part[0]);
  }
}
