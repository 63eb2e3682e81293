// Layer normalisation over the last axis and its backward, all in a fixed summation order.
// kernels/layernorm.ts prepends the lane types: T = vec4<f32> (W = 4) when the row length is a
// multiple of four, else T = f32 (W = 1), and hsum folding a T into one f32.

// Rows (all leading axes together) and the row length C in elements (a multiple of W).
override ROWS: u32;
override C: u32;
override EPS: f32 = 1e-5;
override ACCUMULATE_X: bool = false;
override ACCUMULATE_GAMMA: bool = false;
override ACCUMULATE_BETA: bool = false;

fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * 64u;
}

//@kernel forward
// kernels/layernorm.ts prepends the input: `first_pass(i)` returning element i of the row
// source on the first pass and `reread(i)` on the later ones. For a plain layer norm both read
// x; for a residual add + layer norm (add_layernorm.ts) the first pass computes x + delta and
// stores it as the residual stream, which the later passes read back.
@group(0) @binding(0) var<storage, read> gamma: array<T>;
@group(0) @binding(1) var<storage, read> beta: array<T>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;
@group(0) @binding(3) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd_out: array<f32>;

// One invocation per row: mean, then the variance around it (two passes: no cancellation),
// then the normalised, scaled and shifted row.
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = flat_index(gid, nwg);
  if (row >= ROWS) {
    return;
  }
  let n = C / W;
  let base = row * n;
  var s = T(0.0);
  for (var g = 0u; g < n; g = g + 1u) {
    s = s + first_pass(base + g);
  }
  let mean = hsum(s) / f32(C);
  var q = T(0.0);
  for (var g = 0u; g < n; g = g + 1u) {
    let d = reread(base + g) - T(mean);
    q = q + d * d;
  }
  let rstd = inverseSqrt(hsum(q) / f32(C) + EPS);
  for (var g = 0u; g < n; g = g + 1u) {
    out[base + g] = (reread(base + g) - T(mean)) * rstd * gamma[g] + beta[g];
  }
  mean_out[row] = mean;
  rstd_out[row] = rstd;
}

//@kernel backward_input
// kernels/layernorm.ts prepends `write_delta`: with a residual add (add_layernorm.ts), a store
// of d(sum) into d_delta (binding 7), the gradient of the add's second summand; else nothing.
override HAS_DSUM: bool = false;
override ACCUMULATE_DELTA: bool = false;

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read> gamma: array<T>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<T>;
// A gradient that reached x directly (a residual stream's later uses), added to the layer
// norm's; dout again when there is none (HAS_DSUM false, never read).
@group(0) @binding(5) var<storage, read> dsum: array<T>;
@group(0) @binding(6) var<storage, read_write> dx: array<T>;

// With x̂ = (x − mean)·rstd and g = dout ⊙ gamma:
// dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)) (+ dsum).
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = flat_index(gid, nwg);
  if (row >= ROWS) {
    return;
  }
  let n = C / W;
  let base = row * n;
  let mu = mean[row];
  let rs = rstd[row];
  var sg = T(0.0);
  var sgx = T(0.0);
  for (var g = 0u; g < n; g = g + 1u) {
    let xhat = (x[base + g] - T(mu)) * rs;
    let gv = dout[base + g] * gamma[g];
    sg = sg + gv;
    sgx = sgx + gv * xhat;
  }
  let mean_g = hsum(sg) / f32(C);
  let mean_gx = hsum(sgx) / f32(C);
  for (var g = 0u; g < n; g = g + 1u) {
    let xhat = (x[base + g] - T(mu)) * rs;
    let gv = dout[base + g] * gamma[g];
    var r = rs * (gv - T(mean_g) - xhat * mean_gx);
    if (HAS_DSUM) {
      r = r + dsum[base + g];
    }
    write_delta(base + g, r);
    if (ACCUMULATE_X) {
      r = r + dx[base + g];
    }
    dx[base + g] = r;
  }
}

//@kernel backward_params
@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read> mean: array<f32>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<T>;
@group(0) @binding(4) var<storage, read_write> dgamma: array<T>;
@group(0) @binding(5) var<storage, read_write> dbeta: array<T>;

const WG: u32 = 64u;
var<workgroup> part_gamma: array<T, WG>;
var<workgroup> part_beta: array<T, WG>;

// dgamma = Σ_rows dout ⊙ x̂, dbeta = Σ_rows dout. One workgroup per column (or group of four):
// invocation t sums rows t, t + WG, ... in order, then a fixed binary tree combines them.
@compute @workgroup_size(WG)
fn main(
  @builtin(local_invocation_index) t: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let col = wid.x + wid.y * nwg.x;
  let n = C / W;
  if (col >= n) {
    return;
  }
  var sg = T(0.0);
  var sb = T(0.0);
  for (var r = t; r < ROWS; r = r + WG) {
    let d = dout[r * n + col];
    sg = sg + d * (x[r * n + col] - T(mean[r])) * rstd[r];
    sb = sb + d;
  }
  part_gamma[t] = sg;
  part_beta[t] = sb;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) {
      part_gamma[t] = part_gamma[t] + part_gamma[t + s];
      part_beta[t] = part_beta[t] + part_beta[t + s];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    dgamma[col] = select(part_gamma[0], dgamma[col] + part_gamma[0], ACCUMULATE_GAMMA);
    dbeta[col] = select(part_beta[0], dbeta[col] + part_beta[0], ACCUMULATE_BETA);
  }
}
