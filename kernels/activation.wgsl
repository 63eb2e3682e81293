// Activations for fused epilogues and the activation backward (see kernels/activation.ts).
// Sections: `functions` (erf and GELU, included by the matmul epilogue and the backward) and
// `backward` (d(pre) plus its column sum, the bias gradient).

//@kernel functions
// erfc(z) for z ≥ 0 as t·exp(−z² + P(t − 1/2)), t = 1/(1 + z/2), with a degree-10 P fitted
// here (iteratively reweighted least squares toward minimax on z ∈ [0, 14]) to a largest error
// in the exponent of 1.4e-8; centring t keeps the coefficients small, so Horner's f32 rounding
// stays near one ulp of the exponent. One branch-free formula for every z, because the matmul
// epilogue inlines it once per output of a register tile and llvmpipe's compile time grows with
// the code. The relative form also keeps GELU's far negative tail x·erfc(|x|/√2)/2 accurate,
// where 1 + erf would cancel.
fn erfc_nonneg(z: f32) -> f32 {
  let t = 1.0 / fma(0.5, z, 1.0);
  let u = t - 0.5;
  var p = -0.1067930869449334;
  p = fma(p, u, 0.2328614018239999);
  p = fma(p, u, -0.014657396058670303);
  p = fma(p, u, -0.2856679448927493);
  p = fma(p, u, 0.10894918282890141);
  p = fma(p, u, 0.28151110603876145);
  p = fma(p, u, -0.15775567799870532);
  p = fma(p, u, -0.3751412719119868);
  p = fma(p, u, 0.18936925403395766);
  p = fma(p, u, 1.3452862549083555);
  p = fma(p, u, -0.6717940723177227);
  return t * exp(p - z * z);
}

fn erf_f32(x: f32) -> f32 {
  let e = 1.0 - erfc_nonneg(abs(x));
  return select(-e, e, x > 0.0);
}

// Φ(x) = erfc(−x/√2) / 2, the standard normal CDF.
fn normal_cdf(x: f32) -> f32 {
  let half_tail = 0.5 * erfc_nonneg(abs(x) * 0.7071067811865476);
  return select(half_tail, 1.0 - half_tail, x > 0.0);
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
