// AdamW's uniform parameters and its update of one lane, shared by kernels/adamw.wgsl and the
// fused training steps' update kernels (each prepends this file and declares `AdamwLane`, f32
// or vec4<f32>), so that every AdamW update is the same float operations in the same order.

// What kernels/adamw.ts's adamwUniformWords uploads: host float64 values rounded once to f32.
struct Adamw {
  lr: f32,
  decay: f32, // 1 − lr·weight_decay
  beta1: f32,
  one_minus_beta1: f32,
  beta2: f32,
  one_minus_beta2: f32,
  ln_beta1: f32,
  ln_beta2: f32,
  eps: f32,
}

struct AdamwLanes {
  param: AdamwLane,
  m: AdamwLane,
  v: AdamwLane,
}

// Parameter x with gradient g and moments m, v after one step, PyTorch's decoupled weight
// decay; step_size = lr / (1 − β₁ᵗ) and sqrt_bc2 = √(1 − β₂ᵗ) come from the bias corrections
// (kernels/adamw_bias.wgsl).
fn adamw_step(a: Adamw, x: AdamwLane, g: AdamwLane, m: AdamwLane, v: AdamwLane, step_size: f32, sqrt_bc2: f32) -> AdamwLanes {
  let m1 = a.beta1 * m + a.one_minus_beta1 * g;
  let v1 = a.beta2 * v + a.one_minus_beta2 * g * g;
  let denom = sqrt(v1) / sqrt_bc2 + a.eps;
  return AdamwLanes(x * a.decay - step_size * m1 / denom, m1, v1);
}
