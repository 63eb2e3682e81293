// Elementwise maps: out = f(x, y) (+ out). kernels/elementwise.ts prepends `alias T = ...;`:
// vec4<f32> when every length is a multiple of four (a quarter of the index arithmetic and
// bounds checks per element, which is what llvmpipe's per-lane loads cost), f32 otherwise; the
// same code serves both because WGSL's builtins are generic over scalars and vectors.

override OP: u32;
// Elements of out (and x) and of y, in units of T. y repeats every Y_LEN units (broadcast of a
// bias along the leading axes).
override LEN: u32;
override Y_LEN: u32 = 1u;
override S: f32 = 1.0;
override ACCUMULATE: bool = false;

const OP_ADD: u32 = 0u; // x + y
const OP_MUL: u32 = 1u; // x * y
const OP_SCALE: u32 = 2u; // S * x
const OP_RELU: u32 = 3u; // max(x, 0)
const OP_RELU_BACKWARD: u32 = 4u; // y where x > 0 (x: forward input, y: upstream gradient)
const OP_COPY: u32 = 5u; // x (with ACCUMULATE: out += x)

@group(0) @binding(0) var<storage, read> x: array<T>;
@group(0) @binding(1) var<storage, read> y: array<T>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= LEN) {
    return;
  }
  let xv = x[i];
  var yv = T(0.0);
  // Unary ops bind x twice as y; the branch folds away once OP is known, so y costs no load.
  if (OP == OP_ADD || OP == OP_MUL || OP == OP_RELU_BACKWARD) {
    yv = y[i % Y_LEN];
  }
  var r = xv;
  switch OP {
    case OP_ADD: { r = xv + yv; }
    case OP_MUL: { r = xv * yv; }
    case OP_SCALE: { r = S * xv; }
    case OP_RELU: { r = max(xv, T(0.0)); }
    case OP_RELU_BACKWARD: { r = select(T(0.0), yv, xv > T(0.0)); }
    default: { r = xv; }
  }
  if (ACCUMULATE) {
    r = out[i] + r;
  }
  out[i] = r;
}
