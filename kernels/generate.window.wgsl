// The model's input for the next generated token: the last T tokens up to the current
// position, left-aligned; slots after the position repeat its token and are ignored by causal
// models (their logits rows are never sampled).

override T: u32; // context length
override L: u32; // capacity of generated
override COUNTER: u32; // counters slot holding the position of the last token

@group(0) @binding(0) var<storage, read> generated: array<u32>;
@group(0) @binding(1) var<storage, read> counters: array<u32>;
@group(0) @binding(2) var<storage, read_write> idx: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * 64u;
  if (t >= T) {
    return;
  }
  let pos = min(counters[COUNTER], L - 1u);
  let start = select(0u, pos + 1u - T, pos + 1u > T);
  idx[t] = generated[min(start + t, pos)];
}
