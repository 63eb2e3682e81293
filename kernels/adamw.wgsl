// One AdamW step (PyTorch semantics, decoupled weight decay) over a flat parameter arena.
// kernels/adamw.ts prepends `alias T = vec4<f32>;` when the arena length is a multiple of four,
// else `alias T = f32;`. The step t is read from the device counters, so a captured training
// step replays with no host data. kernels/adamw.ts prepends kernels/adamw_bias.wgsl and
// kernels/adamw_step.wgsl, which the fused training steps share.

override LEN: u32; // elements, in units of T
override COUNTER: u32; // counters slot holding the 1-based step

alias AdamwLane = T;

@group(0) @binding(0) var<storage, read_write> params: array<T>;
@group(0) @binding(1) var<storage, read> grads: array<T>;
@group(0) @binding(2) var<storage, read_write> m: array<T>;
@group(0) @binding(3) var<storage, read_write> v: array<T>;
@group(0) @binding(4) var<storage, read> counters: array<u32>;
@group(0) @binding(5) var<uniform> p: Adamw;

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
  let next = adamw_step(p, params[i], grads[i], m[i], v[i], p.lr / bc1, sqrt(bc2));
  m[i] = next.m;
  v[i] = next.v;
  params[i] = next.param;
}
