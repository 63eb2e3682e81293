// Embedding gather (MODE 0) and its backward (MODE 1), sharing one binding layout:
//   forward:  dst[n, :] = src[idx[n], :]          src = table [V, C], dst = out [N, C]
//   backward: dst[v, c] (+)= Σ_{n: idx[n] = v} src[n, c]   src = dOut [N, C], dst = dTable [V, C]
// kernels/embedding.ts prepends `alias T = vec4<f32>;` when C % 4 == 0, else `alias T = f32;`,
// so one invocation moves W = 4 or 1 channels. The backward is a gather over positions in
// increasing n, not a scatter, so its sums are bit-identical from run to run without atomics.

override MODE: u32;
override N: u32; // ids
override V: u32; // rows of the table
override CW: u32; // channels per row, in units of T
override ACCUMULATE: bool = false;

@group(0) @binding(0) var<storage, read> src: array<T>;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<T>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  let c = i % CW;
  let row = i / CW;
  if (MODE == 0u) {
    if (row >= N) {
      return;
    }
    let id = idx[row];
    // An id outside the table yields zeros rather than a clamped, plausible-looking row.
    var value = T(0.0);
    if (id < V) {
      value = src[id * CW + c];
    }
    dst[i] = value;
    return;
  }
  if (row >= V) {
    return;
  }
  var sum = T(0.0);
  for (var n = 0u; n < N; n = n + 1u) {
    if (idx[n] == row) {
      sum = sum + src[n * CW + c];
    }
  }
  if (ACCUMULATE) {
    sum = dst[i] + sum;
  }
  dst[i] = sum;
}
