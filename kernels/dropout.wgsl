// Dropout with a counter-based mask: element i keeps iff
//   philox_unit(word i % 4 of philox4x32_10((i / 4, call, counters[counter_index], 0), key)) >= p
// so the mask is a pure function of (key, call site, step counter, position): a replayed plan
// draws a fresh mask every step (the counter lives on the device) and the backward reuses the
// stored mask. kernels/dropout.ts prepends kernels/philox.wgsl.

struct DropoutParams {
  key: vec2<u32>,
  // Distinguishes dropout sites within one step.
  call: u32,
  // Slot of `counters` holding the step counter.
  counter_index: u32,
  n: u32,
  p: f32,
  // 1 / (1 - p), or 0 when p = 1.
  scale: f32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> mask: array<f32>;
@group(0) @binding(3) var<storage, read> counters: array<u32>;
@group(0) @binding(4) var<uniform> params: DropoutParams;

// One invocation per Philox call, i.e. per four consecutive elements.
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let q = gid.x + gid.y * nwg.x * 64u;
  let base = q * 4u;
  if (base >= params.n) {
    return;
  }
  let ctr = vec4<u32>(q, params.call, counters[params.counter_index], 0u);
  let w = philox4x32_10(ctr, params.key);
  for (var j = 0u; j < 4u; j = j + 1u) {
    let i = base + j;
    if (i < params.n) {
      let m = select(0.0, params.scale, philox_unit(w[j]) >= params.p);
      mask[i] = m;
      out[i] = x[i] * m;
    }
  }
}
