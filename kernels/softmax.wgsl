// Softmax over the last axis, out = softmax(SCALE * x) with an optional causal mask, and its
// backward. One invocation per row, walking the row in order, so the sums are deterministic.
// kernels/softmax.ts prepends the lane types: T = vec4<f32> (U = vec4<u32>, W = 4, LANE =
// (0,1,2,3)) when the row length is a multiple of four, else T = f32 (U = u32, W = 1, LANE = 0),
// plus hmax/hsum folding a T into one f32 in a fixed order.

// Rows in total (all leading axes together).
override ROWS: u32;
// Rows per matrix: the causal mask compares column j with i = row % R.
override R: u32;
// Row length in elements (a multiple of W).
override C: u32;
override SCALE: f32 = 1.0;
override CAUSAL: bool = false;
override ACCUMULATE: bool = false;

// Stands in for -inf: exp(-BIG - max) is exactly 0, and it survives arithmetic that an
// infinity would turn into NaN.
const BIG: f32 = 3.0e38;

fn row_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * 64u;
}

//@kernel forward
@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read_write> out: array<T>;

// SCALE * x at group g of the row, with columns at or past `limit` replaced by -BIG.
fn masked(base: u32, g: u32, limit: u32) -> T {
  let cols = U(g * W) + LANE;
  return select(T(-BIG), SCALE * x[base + g], cols < U(limit));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = row_index(gid, nwg);
  if (row >= ROWS) {
    return;
  }
  // Valid columns are [0, limit): all of them, or j <= i under the causal mask.
  let limit = select(C, min(row % R + 1u, C), CAUSAL);
  let groups = (limit + W - 1u) / W;
  let base = row * (C / W);
  var m = T(-BIG);
  for (var g = 0u; g < groups; g = g + 1u) {
    m = max(m, masked(base, g, limit));
  }
  let mx = hmax(m);
  var s = T(0.0);
  for (var g = 0u; g < groups; g = g + 1u) {
    s = s + exp(masked(base, g, limit) - mx);
  }
  let total = hsum(s);
  for (var g = 0u; g < C / W; g = g + 1u) {
    var p = T(0.0);
    if (g < groups) {
      p = exp(masked(base, g, limit) - mx) / total;
    }
    out[base + g] = p;
  }
}

//@kernel backward
@group(0) @binding(0) var<storage, read> y: array<T>;
@group(0) @binding(1) var<storage, read> dy: array<T>;
@group(0) @binding(2) var<storage, read_write> dx: array<T>;

// dx = SCALE * y * (dy - Σ dy·y): masked positions have y = 0 and get 0.
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = row_index(gid, nwg);
  if (row >= ROWS) {
    return;
  }
  let base = row * (C / W);
  var d = T(0.0);
  for (var g = 0u; g < C / W; g = g + 1u) {
    d = d + dy[base + g] * y[base + g];
  }
  let dot = hsum(d);
  for (var g = 0u; g < C / W; g = g + 1u) {
    var r = SCALE * y[base + g] * (dy[base + g] - dot);
    if (ACCUMULATE) {
      r = r + dx[base + g];
    }
    dx[base + g] = r;
  }
}
