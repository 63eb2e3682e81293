// Philox4x32-10 (Salmon et al., SC11), identical to kernels/philox.ts.
// WGSL has no 64-bit integers, so the 32x32->64 product is built from 16-bit halves.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// High 32 bits of a * b.
fn philox_mulhi(a: u32, b: u32) -> u32 {
  let a_lo = a & 0xffffu;
  let a_hi = a >> 16u;
  let b_lo = b & 0xffffu;
  let b_hi = b >> 16u;
  let lo_lo = a_lo * b_lo;
  let hi_lo = a_hi * b_lo;
  let lo_hi = a_lo * b_hi;
  // Cannot overflow: at most 0xffff + 0xffff + 0xfffe0001.
  let cross = (lo_lo >> 16u) + (hi_lo & 0xffffu) + lo_hi;
  return a_hi * b_hi + (hi_lo >> 16u) + (cross >> 16u);
}

fn philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
  let hi0 = philox_mulhi(PHILOX_M0, c.x);
  let lo0 = PHILOX_M0 * c.x;
  let hi1 = philox_mulhi(PHILOX_M1, c.z);
  let lo1 = PHILOX_M1 * c.z;
  return vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
}

// Four random words for a 128-bit counter under a 64-bit key.
fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = counter;
  var k = key;
  for (var r = 0u; r < 10u; r = r + 1u) {
    if (r > 0u) {
      k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
    }
    c = philox_round(c, k);
  }
  return c;
}

// Uniform in [0, 1) from the top 24 bits: exact in f32, identical to the TypeScript reference.
fn philox_unit(x: u32) -> f32 {
  return f32(x >> 8u) * 5.9604644775390625e-8;
}

// Uniform in (0, 1]: safe under log().
fn philox_unit_open0(x: u32) -> f32 {
  return (f32(x >> 8u) + 1.0) * 5.9604644775390625e-8;
}

// Standard normal from two words (Box-Muller, cosine branch).
fn philox_normal(x0: u32, x1: u32) -> f32 {
  let r = sqrt(-2.0 * log(philox_unit_open0(x0)));
  return r * cos(6.283185307179586 * philox_unit(x1));
}
