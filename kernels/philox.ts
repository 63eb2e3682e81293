/**
 * Philox4x32-10 in TypeScript, word for word the same as kernels/philox.wgsl, plus the stream
 * layout every random draw in seedlab uses. A draw is a pure function of (seed, stream,
 * counter), so changing one part of a run (steps, eval interval) never shifts another's numbers.
 */

const M0 = 0xD2511F53;
const M1 = 0xCD9E8D57;
const W0 = 0x9E3779B9;
const W1 = 0xBB67AE85;

/** Independent random streams derived from one run seed (the key's second word). */
export const Stream = {
  init: 1,
  train: 2,
  eval: 3,
  dropout: 4,
  sample: 5,
} as const;

/** Name of a random stream. */
export type StreamName = keyof typeof Stream;

/** The Philox key for a run seed and a stream. */
export function streamKey(seed: number, stream: StreamName): [number, number] {
  return [seed >>> 0, Stream[stream]];
}

function mulhi(a: number, b: number): number {
  const aLo = a & 0xffff, aHi = a >>> 16, bLo = b & 0xffff, bHi = b >>> 16;
  const loLo = aLo * bLo, hiLo = aHi * bLo, loHi = aLo * bHi;
  const cross = (loLo >>> 16) + (hiLo & 0xffff) + loHi;
  return (aHi * bHi + (hiLo >>> 16) + Math.floor(cross / 65536)) >>> 0;
}

/** Four random u32 words for a 128-bit counter and a 64-bit key. */
export function philox4x32(
  counter: readonly [number, number, number, number],
  key: readonly [number, number],
): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((v) => v >>> 0);
  let [k0, k1] = key.map((v) => v >>> 0);
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

/** Uniform in [0, 1) from the top 24 bits of a word (exact in f32). */
export function unitFloat(x: number): number {
  return (x >>> 8) * 5.9604644775390625e-8;
}

/** Standard normal from two words, Box-Muller as in the WGSL (computed here in f64). */
export function normalFrom(x0: number, x1: number): number {
  const u1 = ((x0 >>> 8) + 1) * 5.9604644775390625e-8;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * unitFloat(x1));
}

/** Raw words of the fill layout: element i is word i%4 of counter (i/4, c1, c2, 0). */
export function philoxWords(
  n: number,
  key: readonly [number, number],
  c1 = 0,
  c2 = 0,
): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i += 4) {
    const w = philox4x32([i / 4, c1, c2, 0], key);
    for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = w[j];
  }
  return out;
}

/** Reference for the normal fill: element i uses words 0,1 of counter (i, c1, c2, 0). */
export function normalFillReference(
  n: number,
  key: readonly [number, number],
  c1: number,
  mean: number,
  std: number,
): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const w = philox4x32([i, c1, 0, 0], key);
    out[i] = mean + std * normalFrom(w[0], w[1]);
  }
  return out;
}

/** Reference for the uniform fill: element i uses word 0 of counter (i, c1, c2, 0). */
export function uniformFillReference(
  n: number,
  key: readonly [number, number],
  c1: number,
  low: number,
  high: number,
): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = low + (high - low) * unitFloat(philox4x32([i, c1, 0, 0], key)[0]);
  }
  return out;
}
