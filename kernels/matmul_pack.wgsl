// Packs a row-major f32 matrix (or a batch of them) from a storage buffer into an rgba32float
// array texture for the texture-input matmul: texel (x, y) of layer l holds the logical
// X[l][y][4x .. 4x + 3], zero past the matrix. The zero padding (rows up to a whole register
// tile, columns up to a whole vec4) is what lets the matmul run with no clamps or masks.
//
// Logical X is [rows, cols]; the source stores it as is, or transposed ([cols, rows]) when
// TRANS is set, so aᵀ and bᵀ operands are transposed once here, in O(n²), instead of being
// gathered column-wise inside the O(n³) product.

struct PackParams {
  rows: u32,
  cols: u32,
  // Elements between consecutive source matrices (0: one matrix, packed into layer 0 only).
  batch_stride: u32,
}

override TRANS: bool = false;

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var dst: texture_storage_2d_array<rgba32float, write>;
@group(0) @binding(2) var<storage, read> p: PackParams;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let size = textureDimensions(dst);
  if (gid.x >= size.x || gid.y >= size.y) { return; }
  let base = gid.z * p.batch_stride;
  let row = gid.y;
  var v = vec4<f32>(0.0);
  if (row < p.rows) {
    // Out-of-range columns read a clamped (valid) element and are zeroed by select, so every
    // lane issues the same loads.
    for (var c = 0u; c < 4u; c = c + 1u) {
      let col = 4u * gid.x + c;
      let cc = min(col, p.cols - 1u);
      let index = select(row * p.cols + cc, cc * p.rows + row, TRANS);
      v[c] = select(0.0, src[base + index], col < p.cols);
    }
  }
  textureStore(dst, vec2<u32>(gid.xy), gid.z, v);
}
