// The lecture's xbow: out[b, t, :] = mean(x[b, 0..t, :]). One invocation per (batch, channel
// group) carries a running sum down the time axis, so the work is O(T) instead of O(T²).
// kernels/cumulative_mean.ts prepends `alias T = vec4<f32>;` (channels in groups of four,
// C % 4 == 0) or `alias T = f32;`.

override BATCH: u32;
override TIME: u32;
// Channels in units of T.
override CHANNELS: u32;

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read_write> out: array<T>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let id = gid.x + gid.y * nwg.x * 64u;
  if (id >= BATCH * CHANNELS) {
    return;
  }
  let b = id / CHANNELS;
  let c = id % CHANNELS;
  var sum = T(0.0);
  for (var t = 0u; t < TIME; t = t + 1u) {
    let i = (b * TIME + t) * CHANNELS + c;
    sum = sum + x[i];
    out[i] = sum / f32(t + 1u);
  }
}
