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
  // Source matrix packed into layer 0: batches beyond maxTextureArrayLayers go in chunks.
  first: u32,
}

@group(0) @binding(1) var dst: texture_storage_2d_array<rgba32float, write>;
@group(0) @binding(2) var<storage, read> p: PackParams;

//@kernel pack_rows
// Untransposed with cols % 4 == 0 (and so a batch stride that is a multiple of four): a texel
// is one aligned vec4 of the source, and neighbouring lanes read neighbouring vec4s.
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let size = textureDimensions(dst);
  if (gid.x >= size.x || gid.y >= size.y) { return; }
  let c4 = p.cols / 4u;
  var v = vec4<f32>(0.0);
  if (gid.y < p.rows && gid.x < c4) {
    v = src[((gid.z + p.first) * p.batch_stride) / 4u + gid.y * c4 + gid.x];
  }
  textureStore(dst, vec2<u32>(gid.xy), gid.z, v);
}

//@kernel pack_scalar
// Any layout, one element at a time. With TRANS the source row of a texel is a column of
// memory, so invocation x walks the texture's rows instead: neighbouring lanes then read
// neighbouring addresses in both layouts.
override TRANS: bool = false;

@group(0) @binding(0) var<storage, read> src: array<f32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let size = textureDimensions(dst);
  let texel = select(gid.xy, gid.yx, TRANS);
  if (texel.x >= size.x || texel.y >= size.y) { return; }
  let base = (gid.z + p.first) * p.batch_stride;
  let row = texel.y;
  var v = vec4<f32>(0.0);
  if (row < p.rows) {
    // Out-of-range columns read a clamped (valid) element and are zeroed by select, so every
    // lane issues the same loads.
    for (var c = 0u; c < 4u; c = c + 1u) {
      let col = 4u * texel.x + c;
      let cc = min(col, p.cols - 1u);
      let index = select(row * p.cols + cc, cc * p.rows + row, TRANS);
      v[c] = select(0.0, src[base + index], col < p.cols);
    }
  }
  textureStore(dst, texel, gid.z, v);
}
