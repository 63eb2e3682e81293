// Concatenation along an axis and its inverse, split, in one dispatch for many pieces. Both
// see the joined tensor as OUTER rows of ROW elements (the joined axis times everything inside
// it) and piece k as OUTER rows of its own width, holding columns [start_k, end_k) of each
// joined row. A dispatch covers the columns [COL0, COL0 + SPAN) of one group of consecutive
// pieces, one invocation per element. kernels/concat.ts prepends the group's piece bindings
// (@binding(1) onwards) and the function that picks a column's piece as a chain of
// comparisons: WGSL cannot index bindings, and the chain is short (a group has at most the
// device's storage bindings per stage). Every element is copied once, so results are exact
// (one addition when accumulating).

override OUTER: u32;
override ROW: u32;
override COL0: u32;
override SPAN: u32;

fn position(gid: vec3<u32>, nwg: vec3<u32>) -> vec2<u32> {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= OUTER * SPAN) {
    return vec2<u32>(OUTER, 0u);
  }
  return vec2<u32>(i / SPAN, COL0 + i % SPAN);
}

//@kernel concat
// joined[r, col] (+)= piece_k[r, col - start_k], with zeros for a piece that is not bound.

override ACCUMULATE: bool = false;

@group(0) @binding(0) var<storage, read_write> joined: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = position(gid, nwg);
  if (p.x >= OUTER) {
    return;
  }
  let at = p.x * ROW + p.y;
  var value = pieceValue(p.x, p.y);
  if (ACCUMULATE) {
    value = joined[at] + value;
  }
  joined[at] = value;
}

//@kernel split
// piece_k[r, col - start_k] (+)= joined[r, col], for each piece that is bound.

@group(0) @binding(0) var<storage, read> joined: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = position(gid, nwg);
  if (p.x >= OUTER) {
    return;
  }
  storePiece(p.x, p.y, joined[p.x * ROW + p.y]);
}
