// One AdamW step (PyTorch semantics, decoupled weight decay) over a flat parameter arena.
// kernels/adamw.ts prepends `alias T = vec4<f32>;` when the arena length is a multiple of four,
// else `alias T = f32;`. The step t is read from the device counters, so a captured training
// step replays with no host data.

override LEN: u32; // elements, in units of T
override COUNTER: u32; // counters slot holding the 1-based step

struct Params {
  lr: f32,
  decay: f32, // 1 − lr·weight_decay
  beta1: f32,
  one_minus_beta1: f32,
  beta2: f32,
  one_minus_beta2: f32,
  ln_beta1: f32,
  ln_beta2: f32,
  eps: f32,
}

@group(0) @binding(0) var<storage, read_write> params: array<T>;
@group(0) @binding(1) var<storage, read> grads: array<T>;
@group(0) @binding(2) var<storage, read_write> m: array<T>;
@group(0) @binding(3) var<storage, read_write> v: array<T>;
@group(0) @binding(4) var<storage, read> counters: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= LEN) {
    return;
  }
  // A step run before any batch was drawn behaves as step 1 rather than dividing by zero.
  let t = f32(max(counters[COUNTER], 1u));
  let bc1 = one_minus_exp(t * p.ln_beta1);
  let bc2 = one_minus_exp(t * p.ln_beta2);
  let g = grads[i];
  let m1 = p.beta1 * m[i] + p.one_minus_beta1 * g;
  let v1 = p.beta2 * v[i] + p.one_minus_beta2 * g * g;
  m[i] = m1;
  v[i] = v1;
  let denom = sqrt(v1) / sqrt(bc2) + p.eps;
  params[i] = params[i] * p.decay - (p.lr / bc1) * m1 / denom;
}
