// The bigram model's whole training step in two dispatches (kernels/fused_bigram.ts):
//   loss:   draw the batch (as kernels/batch.wgsl), log-sum-exp of every table row, the mean
//           cross-entropy into the loss history (as kernels/cross_entropy.wgsl), and, when
//           training, each row's targets in position order and the step's bias corrections;
//   update: d(loss)/d(table) per element, summed over the positions whose input is its row in
//           increasing position order (as kernels/embedding.wgsl's backward), then AdamW (as
//           kernels/adamw.wgsl).
// Each float is computed by the same operations in the same order as in the unfused kernels,
// so losses and parameters are bit-identical to the autograd path. The bigram's logits for a
// position are a table row, so row statistics are computed once per row, not once per position.
// kernels/fused_bigram.ts prepends kernels/philox.wgsl (and to `loss` kernels/row_stats.wgsl).
//
// Scratch (u32), written by `loss`, read by `update`; N = B·T positions, W = ⌈N / 32⌉:
//   ids [N] · targets [N] · lse [V] (f32 bits) · count [V] · per row, a bit mask of its
//   positions [V·W] · per row, its targets in position order [V·N] · lr / (1 − β₁ᵗ) and
//   √(1 − β₂ᵗ) (f32 bits)

override N: u32; // positions in a batch, B·T
override V: u32; // vocabulary: the table is [V, V]

fn words() -> u32 {
  return (N + 31u) / 32u;
}
fn ids_at() -> u32 {
  return 0u;
}
fn targets_at() -> u32 {
  return N;
}
fn lse_at() -> u32 {
  return 2u * N;
}
fn count_at() -> u32 {
  return 2u * N + V;
}
fn masks_at() -> u32 {
  return 2u * N + 2u * V;
}
fn lists_at() -> u32 {
  return masks_at() + V * words();
}
fn bias_at() -> u32 {
  return lists_at() + V * N;
}

//@kernel loss
override NT: u32; // tokens in the split
override B: u32;
override T: u32;
override CAPACITY: u32; // slots in losses
override COUNTER: u32; // counters slot: read as the batch number, then incremented
override WITH_GRAD: bool = false;

struct Params {
  key: vec2<u32>,
  lr: f32,
  ln_beta1: f32,
  ln_beta2: f32,
}

@group(0) @binding(0) var<storage, read> tokens: array<u32>;
@group(0) @binding(1) var<storage, read_write> counters: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> losses: array<f32>;
@group(0) @binding(4) var<storage, read_write> scratch: array<atomic<u32>>;
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> batch_counter: u32;
var<workgroup> partial: array<f32, 256>;

// What kernels/row_stats.wgsl (prepended to this kernel) reads: the logits of a row are the
// table row of its input token.
fn row_value(i: u32) -> f32 {
  return table[i];
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  if (li == 0u) {
    let c0 = counters[COUNTER];
    batch_counter = c0;
    counters[COUNTER] = c0 + 1u;
  }
  if (WITH_GRAD) {
    for (var i = li; i < V * words(); i = i + 256u) {
      atomicStore(&scratch[masks_at() + i], 0u);
    }
  }
  let c = workgroupUniformLoad(&batch_counter);
  storageBarrier();

  // The batch: row b starts at philox((b, c, 0, 0), key).x mod (NT − T).
  for (var b = li; b < B; b = b + 256u) {
    let w = philox4x32_10(vec4<u32>(b, c, 0u, 0u), p.key);
    let offset = w.x % (NT - T);
    let row = b * T;
    for (var t = 0u; t < T; t = t + 1u) {
      let n = row + t;
      let id = tokens[offset + t];
      atomicStore(&scratch[ids_at() + n], id);
      atomicStore(&scratch[targets_at() + n], tokens[offset + t + 1u]);
      if (WITH_GRAD && id < V) {
        // OR is order-independent, so the masks do not depend on scheduling.
        atomicOr(&scratch[masks_at() + id * words() + n / 32u], 1u << (n % 32u));
      }
    }
  }
  storageBarrier();

  for (var v = li; v < V; v = v + 256u) {
    atomicStore(&scratch[lse_at() + v], bitcast<u32>(row_log_sum_exp(v * V, V)));
    if (WITH_GRAD) {
      // The row's targets in increasing position order: the order the gradient sums them in.
      var k = 0u;
      for (var w = 0u; w < words(); w = w + 1u) {
        var bits = atomicLoad(&scratch[masks_at() + v * words() + w]);
        while (bits != 0u) {
          let n = w * 32u + firstTrailingBit(bits);
          atomicStore(&scratch[lists_at() + v * N + k], atomicLoad(&scratch[targets_at() + n]));
          k = k + 1u;
          bits = bits & (bits - 1u);
        }
      }
      atomicStore(&scratch[count_at() + v], k);
    }
  }
  storageBarrier();

  // Position n's loss is lse(row) − row[target]; invocation li sums positions li, li + 256, …
  // and a fixed tree combines the partial sums, exactly as kernels/cross_entropy.wgsl does.
  let inv_n = 1.0 / f32(N);
  var acc = 0.0;
  for (var n = li; n < N; n = n + 256u) {
    let id = atomicLoad(&scratch[ids_at() + n]);
    let class_id = atomicLoad(&scratch[targets_at() + n]);
    if (id < V && class_id < V) {
      acc = acc + (bitcast<f32>(atomicLoad(&scratch[lse_at() + id])) - table[id * V + class_id]);
    } else {
      // An id outside the vocabulary poisons the loss instead of reading a neighbour row.
      acc = acc + bitcast<f32>(0x7fc00000u | (class_id & 0u));
    }
  }
  partial[li] = acc;
  workgroupBarrier();
  for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
    if (li < stride) {
      partial[li] = partial[li] + partial[li + stride];
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    losses[c % CAPACITY] = partial[0] * inv_n;
    if (WITH_GRAD) {
      // AdamW's step t is the batch number after the increment; its bias corrections are the
      // same for every element, so they are computed once here.
      let t = f32(max(c + 1u, 1u));
      let bc1 = one_minus_exp(t * p.ln_beta1);
      let bc2 = one_minus_exp(t * p.ln_beta2);
      atomicStore(&scratch[bias_at()], bitcast<u32>(p.lr / bc1));
      atomicStore(&scratch[bias_at() + 1u], bitcast<u32>(sqrt(bc2)));
    }
  }
}

//@kernel update
override LEN: u32; // parameter arena length, in vec4s; the table is its first V·V floats

alias AdamwLane = vec4<f32>;

@group(0) @binding(0) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> scratch: array<u32>;
@group(0) @binding(4) var<uniform> p: Adamw; // kernels/adamw_step.wgsl

// d(mean loss)/d(table[e]) where x = table[e]: Σ over the row's positions, in position order,
// of (softmax(row)[col] − [col = target]) / N, the cross-entropy kernel's dLogits term.
fn grad_of(e: u32, x: f32) -> f32 {
  var sum = 0.0;
  if (e >= V * V) {
    return sum;
  }
  let row = e / V;
  let col = e - row * V;
  let count = scratch[count_at() + row];
  if (count == 0u) {
    return sum;
  }
  let list = lists_at() + row * N;
  let inv_n = 1.0 / f32(N);
  let prob = exp(x - bitcast<f32>(scratch[lse_at() + row]));
  for (var k = 0u; k < count; k = k + 1u) {
    sum = sum + (prob - select(0.0, 1.0, scratch[list + k] == col)) * inv_n;
  }
  return sum;
}

// grad_of for four consecutive elements. When they share a row (most do), one walk of the
// row's targets serves all four lanes; each lane still adds its terms in position order.
fn grad4_of(e: u32, x: vec4<f32>) -> vec4<f32> {
  let row = e / V;
  if (e + 3u >= V * V || (e + 3u) / V != row) {
    return vec4<f32>(grad_of(e, x.x), grad_of(e + 1u, x.y), grad_of(e + 2u, x.z), grad_of(e + 3u, x.w));
  }
  var sum = vec4<f32>(0.0);
  let count = scratch[count_at() + row];
  if (count == 0u) {
    return sum;
  }
  let col = vec4<u32>(e - row * V) + vec4<u32>(0u, 1u, 2u, 3u);
  let list = lists_at() + row * N;
  let inv_n = 1.0 / f32(N);
  let prob = exp(x - bitcast<f32>(scratch[lse_at() + row]));
  for (var k = 0u; k < count; k = k + 1u) {
    let hit = vec4<u32>(scratch[list + k]) == col;
    sum = sum + (prob - select(vec4<f32>(0.0), vec4<f32>(1.0), hit)) * inv_n;
  }
  return sum;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let step_size = bitcast<f32>(scratch[bias_at()]);
  let sqrt_bc2 = bitcast<f32>(scratch[bias_at() + 1u]);
  // Few workgroups, each element strided over them: llvmpipe pays per workgroup launched.
  let stride = nwg.x * 256u;
  for (var i = gid.x; i < LEN; i = i + stride) {
    let x = params[i];
    let next = adamw_step(p, x, grad4_of(4u * i, x), m[i], v[i], step_size, sqrt_bc2);
    m[i] = next.m;
    v[i] = next.v;
    params[i] = next.param;
  }
}
