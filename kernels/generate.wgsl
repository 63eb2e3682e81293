// Samples the next token on the device: one invocation reads the logits row of the current
// position, draws from its softmax with Philox, appends the token and advances the position,
// so a generation plan replays once per token with no readback.
// Prepended by kernels/generate.ts: kernels/philox.wgsl and kernels/row_stats.wgsl.

override T: u32; // rows of logits (the context length)
override V: u32; // vocabulary
override L: u32; // capacity of generated
override COUNTER: u32; // counters slot holding the position of the last token

struct Params {
  key: vec2<u32>,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> counters: array<u32>;
@group(0) @binding(2) var<storage, read_write> generated: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

// What kernels/row_stats.wgsl (prepended by kernels/generate.ts) reads.
fn row_value(i: u32) -> f32 {
  return logits[i];
}

@compute @workgroup_size(1)
fn main() {
  let pos = counters[COUNTER];
  // Until the window is full, the last real token sits at row pos; after that, at row T − 1.
  let base = min(pos, T - 1u) * V;
  let m = row_max(base, V);
  let s = row_sum_exp(base, V, m);
  let u = philox_unit(philox4x32_10(vec4<u32>(pos, 0u, 0u, 0u), p.key).x);
  let inv_s = 1.0 / s;
  var choice = V - 1u;
  var cumulative = 0.0;
  for (var j = 0u; j < V; j = j + 1u) {
    cumulative = cumulative + exp(logits[base + j] - m) * inv_s;
    if (cumulative > u) {
      choice = j;
      break;
    }
  }
  // Past the end of the buffer the draw is dropped rather than written out of bounds.
  if (pos + 1u < L) {
    generated[pos + 1u] = choice;
  }
  counters[COUNTER] = pos + 1u;
}
