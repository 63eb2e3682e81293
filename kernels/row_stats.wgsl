// Statistics of one row of logits [base, base + len), shared by kernels/cross_entropy.wgsl,
// kernels/fused_bigram.wgsl (whose logits are table rows) and kernels/generate.wgsl, so that
// all of them round alike: each prepends this file and defines `row_value(i)` to read its
// buffer. Both loops walk the row in column order.

// The row's maximum.
fn row_max(base: u32, len: u32) -> f32 {
  var m = row_value(base);
  for (var j = 1u; j < len; j = j + 1u) {
    m = max(m, row_value(base + j));
  }
  return m;
}

// Σ exp(x − m) over the row.
fn row_sum_exp(base: u32, len: u32, m: f32) -> f32 {
  var s = 0.0;
  for (var j = 0u; j < len; j = j + 1u) {
    s = s + exp(row_value(base + j) - m);
  }
  return s;
}

// log Σ exp(x) over the row, shifted by its maximum so that no exp overflows.
fn row_log_sum_exp(base: u32, len: u32) -> f32 {
  let m = row_max(base, len);
  return m + log(row_sum_exp(base, len, m));
}
