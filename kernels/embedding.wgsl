// Embedding gather and its backward, for table [V, C] and N ids; kernels/embedding.ts takes one
// section with the prelude and prepends `alias T = vec4<f32>;` when C % 4 == 0, else
// `alias T = f32;`, so one invocation moves W = 4 or 1 channels.

const END: u32 = 0xffffffffu; // the end of a row's list in the backward's index

override N: u32; // ids
override V: u32; // rows of the table
override CW: u32; // channels per row, in units of T

fn flatIndex(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * 256u;
}

//@kernel forward
// out[n, :] = table[idx[n], :]

@group(0) @binding(0) var<storage, read> table: array<T>;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatIndex(gid, nwg);
  let row = i / CW;
  if (row >= N) {
    return;
  }
  let id = idx[row];
  // An id outside the table yields zeros rather than a clamped, plausible-looking row.
  var value = T(0.0);
  if (id < V) {
    value = table[id * CW + i % CW];
  }
  out[i] = value;
}

//@kernel backward
// dTable[v, c] (+)= Σ_{n: idx[n] = v} dOut[n, c], a gather, not a scatter. `index` is the
// per-batch index of embedding_index.wgsl (row heads, then a `next` link per position); each
// (row, channel) walks only its row's positions, in increasing n. These are the additions, in
// the order, of a scan over every n, so the sums are bit-identical from run to run without
// atomics, for O(N·C) work in all rather than O(V·N·C).

override ACCUMULATE: bool = false;

@group(0) @binding(0) var<storage, read> dOut: array<T>;
@group(0) @binding(1) var<storage, read> idx: array<u32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read_write> dTable: array<T>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flatIndex(gid, nwg);
  let row = i / CW;
  if (row >= V) {
    return;
  }
  // A head left from an earlier batch fails this test (see embedding_index.wgsl).
  var n = index[row];
  if (n >= N || idx[n] != row) {
    n = END;
  }
  var sum = T(0.0);
  while (n != END) {
    sum = sum + dOut[n * CW + i % CW];
    n = index[V + n];
  }
  if (ACCUMULATE) {
    sum = dTable[i] + sum;
  }
  dTable[i] = sum;
}
