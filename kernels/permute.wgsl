// Strided copy: dst[i] (+)= src[offset(i)], where offset(i) splits dst's flat index i into
// coordinates over dst's shape and weights them by the source strides of the permuted axes.
// kernels/permute.ts merges axes that stay adjacent and drops unit axes first, so RANK is small
// and the loop short. One invocation per dst element, each reading one source element: no
// reduction, so results are exact copies (or one addition when accumulating).

override RANK: u32; // axes after merging, 1..8
override SIZE: u32; // elements of dst
override ACCUMULATE: bool = false;

struct Axes {
  // dst's shape and, per dst axis, the stride of the source axis it comes from (4 per vec4).
  shape: array<vec4<u32>, 2>,
  stride: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> axes: Axes;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= SIZE) {
    return;
  }
  var rest = i;
  var offset = 0u;
  for (var axis = RANK; axis > 0u; axis = axis - 1u) {
    let a = axis - 1u;
    let n = axes.shape[a / 4u][a % 4u];
    offset = offset + (rest % n) * axes.stride[a / 4u][a % 4u];
    rest = rest / n;
  }
  var value = src[offset];
  if (ACCUMULATE) {
    value = dst[i] + value;
  }
  dst[i] = value;
}
