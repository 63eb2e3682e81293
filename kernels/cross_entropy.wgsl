// Fused log-softmax + cross-entropy over rows of logits [N, V], forward and (optionally) the
// gradient of the mean loss in the same pass. One workgroup: invocation i owns rows i, i + 256,
// ..., sums its row losses in that order, and a fixed-shape tree combines the 256 partial sums,
// so the mean is bit-identical from run to run.
// kernels/cross_entropy.ts prepends either the d_logits binding (binding 4) with a
// `write_grad` that stores into it, or an empty `write_grad`, and sets WITH_GRAD to match;
// and either `sum_bias_grad` writing the column sums of d_logits to d_bias (binding 5) or an
// empty one. It also prepends kernels/row_stats.wgsl.

override N: u32; // rows
override V: u32; // classes
override CAPACITY: u32; // slots in losses
override COUNTER: u32; // counters slot holding the 1-based batch number
override WITH_GRAD: bool = false;

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read> counters: array<u32>;
@group(0) @binding(3) var<storage, read_write> losses: array<f32>;

var<workgroup> partial: array<f32, 256>;

// What kernels/row_stats.wgsl (prepended by kernels/cross_entropy.ts) reads.
fn row_value(i: u32) -> f32 {
  return logits[i];
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  let inv_n = 1.0 / f32(N);
  var acc = 0.0;
  for (var r = li; r < N; r = r + 256u) {
    let base = r * V;
    let class_id = targets[r];
    let lse = row_log_sum_exp(base, V);
    if (class_id < V) {
      acc = acc + (lse - logits[base + class_id]);
    } else {
      // A target outside the vocabulary poisons the loss instead of reading a neighbour row.
      acc = acc + bitcast<f32>(0x7fc00000u | (class_id & 0u));
    }
    if (WITH_GRAD) {
      for (var j = 0u; j < V; j = j + 1u) {
        let p = exp(logits[base + j] - lse);
        write_grad(base + j, (p - select(0.0, 1.0, j == class_id)) * inv_n);
      }
    }
  }
  sum_bias_grad(li);
  partial[li] = acc;
  workgroupBarrier();
  for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
    if (li < stride) {
      partial[li] = partial[li] + partial[li + stride];
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    // The batch sampler has already incremented the counter, hence the − 1.
    let slot = (counters[COUNTER] - 1u) % CAPACITY;
    losses[slot] = partial[0] * inv_n;
  }
}
