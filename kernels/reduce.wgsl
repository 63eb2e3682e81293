// Row and column sums in a fixed order (no atomics), so results are bit-identical run to run.
// kernels/reduce.ts prepends the element types and `to_out`: x is read as T (vec4<f32> when
// the row length is a multiple of four, else f32) and written as O; row sums fold a T into
// one f32, column sums keep T.

override MODE: u32; // 0: row sums, 1: column sums
override ROWS: u32;
// Row length in units of T.
override COLS: u32;
override ACCUMULATE: bool = false;

const WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read_write> out: array<O>;

var<workgroup> partial: array<T, WG>;

@compute @workgroup_size(WG)
fn main(
  @builtin(local_invocation_index) t: u32,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let group = wid.x + wid.y * nwg.x;
  if (MODE == 0u) {
    // One invocation per row, walking the row front to back.
    let row = group * WG + t;
    if (row >= ROWS) {
      return;
    }
    var acc = T(0.0);
    for (var c = 0u; c < COLS; c = c + 1u) {
      acc = acc + x[row * COLS + c];
    }
    let v = to_out(acc);
    out[row] = select(v, out[row] + v, ACCUMULATE);
    return;
  }
  // One workgroup per column (or group of four columns): invocation t sums rows t, t + WG, ...
  // in order, then a fixed binary tree combines the WG partial sums.
  if (group >= COLS) {
    return;
  }
  var acc = T(0.0);
  for (var r = t; r < ROWS; r = r + WG) {
    acc = acc + x[r * COLS + group];
  }
  partial[t] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) {
      partial[t] = partial[t] + partial[t + s];
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    let v = to_out(partial[0]);
    out[group] = select(v, out[group] + v, ACCUMULATE);
  }
}
