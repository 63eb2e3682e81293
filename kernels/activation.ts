/**
 * Activations fused into other kernels (the matmul epilogue): ReLU and the exact GELU x·Φ(x)
 * that PyTorch's nn.GELU() computes by default, with an erf accurate to about 1e-7 in f32
 * (WGSL has no erf builtin), and their float64 references.
 */
import source from "./activation.wgsl" with { type: "text" };
import { wgslSection } from "./wgsl.ts";

/** An activation a matmul can apply to its output. */
export type Activation = "none" | "relu" | "gelu";

/** WGSL functions `erf_f32`, `gelu_f32` and `gelu_grad_f32` for a kernel to include. */
export const GELU_WGSL: string = wgslSection(source, "functions");

/**
 * The WGSL expression applying `activation` to `v` (f32 or vec4<f32>, as `vec` says); GELU
 * needs GELU_WGSL in the module.
 */
export function activationExpr(activation: Activation, v: string, vec: boolean): string {
  if (activation === "relu") return `max(${v}, ${vec ? "vec4<f32>(0.0)" : "0.0"})`;
  if (activation === "gelu") return vec ? `gelu_vec4(${v})` : `gelu_f32(${v})`;
  return v;
}

/** float64 erf: its Taylor series near 0, erfcReference further out. */
export function erfReference(x: number): number {
  const z = Math.abs(x);
  if (z >= 2.5) return Math.sign(x) * (1 - erfcReference(z));
  // Σ (−1)ⁿ z^(2n+1) / (n!·(2n+1)): terms stay below 500, so ~1e-14 after cancellation.
  let term = z, sum = z;
  for (let n = 1; n < 60; n++) {
    term *= -z * z / n;
    sum += term / (2 * n + 1);
  }
  return Math.sign(x) * sum * 2 / Math.sqrt(Math.PI);
}

/**
 * float64 erfc = 1 − erf, accurate relative to itself in the tail: for z ≥ 2.5 the continued
 * fraction exp(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))), evaluated bottom-up.
 */
export function erfcReference(z: number): number {
  if (z < 2.5) return 1 - erfReference(z);
  let f = z;
  for (let n = 80; n >= 1; n--) f = z + (n / 2) / f;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}

/** float64 GELU: x·Φ(x) = x/2 · erfc(−x/√2) (no cancellation in the negative tail). */
export function geluReference(x: number): number {
  return 0.5 * x * erfcReference(-x / Math.SQRT2);
}

/** float64 d GELU/dx = Φ(x) + x·φ(x). */
export function geluGradReference(x: number): number {
  const cdf = 0.5 * erfcReference(-x / Math.SQRT2);
  return cdf + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
}

/** float64 activation of one value. */
export function activationReference(activation: Activation, x: number): number {
  if (activation === "relu") return Math.max(x, 0);
  if (activation === "gelu") return geluReference(x);
  return x;
}
