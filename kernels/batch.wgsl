// Draws one training batch on the device: B windows of T+1 consecutive tokens at offsets from
// Philox counter (b, c, 0, 0), where c is the batch counter. The counter is bumped here, in the
// same dispatch, so every later kernel of the step sees the 1-based batch number.
// Prepended by kernels/batch.ts: kernels/philox.wgsl.

override N: u32; // tokens in the split
override B: u32;
override T: u32;
override COUNTER: u32; // slot of counters to read and increment

struct Params {
  key: vec2<u32>,
}

@group(0) @binding(0) var<storage, read> tokens: array<u32>;
@group(0) @binding(1) var<storage, read_write> counters: array<u32>;
@group(0) @binding(2) var<storage, read_write> inputs: array<u32>;
@group(0) @binding(3) var<storage, read_write> targets: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> batch_counter: u32;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  // Only invocation 0 touches the storage counter; the others see its value through workgroup
  // memory, so the increment cannot race with a read.
  if (li == 0u) {
    let c0 = counters[COUNTER];
    batch_counter = c0;
    counters[COUNTER] = c0 + 1u;
  }
  let c = workgroupUniformLoad(&batch_counter);
  for (var b = li; b < B; b = b + 256u) {
    let w = philox4x32_10(vec4<u32>(b, c, 0u, 0u), p.key);
    let offset = w.x % (N - T);
    let row = b * T;
    for (var t = 0u; t < T; t = t + 1u) {
      inputs[row + t] = tokens[offset + t];
      targets[row + t] = tokens[offset + t + 1u];
    }
  }
}
