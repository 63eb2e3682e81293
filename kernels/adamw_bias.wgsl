// AdamW's bias corrections 1 − βᵗ, shared by kernels/adamw.wgsl and the fused training steps
// (each prepends this file) so that every AdamW update rounds alike.
// 1 − exp(y) for y ≤ 0. Computing 1 − β^t directly loses most digits when β^t is close to one
// (β₂ = 0.999 at t = 1 keeps only three in f32), so small |y| uses the series of −expm1.
fn one_minus_exp(y: f32) -> f32 {
  if (y > -0.1) {
    return -y * (1.0 + y * (0.5 + y * (1.0 / 6.0 + y * (1.0 / 24.0 + y * (1.0 / 120.0)))));
  }
  return 1.0 - exp(y);
}
