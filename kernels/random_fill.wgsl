// Fills a buffer from the Philox stream: raw words, uniform [a, b) or normal(a, b).
// Layouts match kernels/philox.ts (philoxWords, uniformFillReference, normalFillReference).

override MODE: u32 = 0u; // 0 raw words, 1 uniform, 2 normal

struct Params {
  key: vec2<u32>,
  c1: u32,
  n: u32,
  a: f32,
  b: f32,
  // Draw i is written to out[skip + i] (a target that starts inside an aligned view).
  skip: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (MODE == 0u) {
    // One invocation per counter, four words each.
    let base = i * 4u;
    if (base >= p.n) {
      return;
    }
    let w = philox4x32_10(vec4<u32>(i, p.c1, 0u, 0u), p.key);
    for (var j = 0u; j < 4u; j = j + 1u) {
      if (base + j < p.n) {
        out[p.skip + base + j] = w[j];
      }
    }
    return;
  }
  if (i >= p.n) {
    return;
  }
  let w = philox4x32_10(vec4<u32>(i, p.c1, 0u, 0u), p.key);
  var v: f32 = 0.0;
  if (MODE == 1u) {
    v = p.a + (p.b - p.a) * philox_unit(w.x);
  } else {
    v = p.a + p.b * philox_normal(w.x, w.y);
  }
  out[p.skip + i] = bitcast<u32>(v);
}
