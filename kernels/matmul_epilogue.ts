/**
 * The matmul epilogue: what happens to each output of a register tile on its way to memory,
 * shared by the storage-buffer and texture kernels so that they agree bit for bit. Plain, it
 * stores (or accumulates) the product; a Linear layer's tail adds the bias, saves the
 * pre-activation when asked and applies ReLU or GELU, saving a dispatch and a round trip
 * through memory per layer.
 */
import { type Activation, activationExpr, GELU_WGSL } from "./activation.ts";
import { requireDisjoint, requireF32, requireSameShape } from "./validate.ts";
import { bindingResource } from "./program.ts";
import { ShapeError, type Tensor } from "./tensor.ts";

/** Vector component names, by index. */
export const XYZW = ["x", "y", "z", "w"];

/**
 * A Linear layer's tail fused into the matmul's store: out = act(a·b + bias), with the
 * pre-activation a·b + bias optionally saved (GELU's backward needs it; ReLU's can use out).
 */
export interface MatmulEpilogue {
  /** f32 [N], added to every row. */
  bias?: Tensor;
  activation?: Activation;
  /** Receives a·b + bias (the shape of out) before the activation. */
  preActivation?: Tensor;
}

/** What of the epilogue the generated WGSL contains (bias at binding 4, pre at binding 5). */
export interface EpilogueLayout {
  bias: boolean;
  activation: Activation;
  savePre: boolean;
}

/** No epilogue: the plain product. */
export const PLAIN_EPILOGUE: EpilogueLayout = { bias: false, activation: "none", savePre: false };

/** The epilogue's bindings (bias 4, pre-activation 5) and functions, for either kernel. */
export function epilogueDeclarations(e: EpilogueLayout, vecC: boolean): string[] {
  const arr = vecC ? "array<vec4<f32>>" : "array<f32>";
  const lines: string[] = [];
  if (e.bias) lines.push(`@group(0) @binding(4) var<storage, read> bias: ${arr};`);
  if (e.savePre) lines.push(`@group(0) @binding(5) var<storage, read_write> pre: ${arr};`);
  if (e.activation === "gelu") lines.push(GELU_WGSL);
  return lines;
}

/** A short tag of the epilogue for kernel names and code caches. */
export function epilogueKey(e: EpilogueLayout): string {
  return (e.bias ? "_b" : "") + (e.activation === "none" ? "" : `_${e.activation}`) +
    (e.savePre ? "_p" : "");
}

/**
 * Stores (or, with ACCUMULATE, adds) a tm × 4·groups register tile at (m0, n0) of c, skipping
 * what lies past M and N. With `vecC` (N % 4 == 0, n0 % 4 == 0) a group of four is entirely
 * inside or entirely past the edge, so it is stored as one vec4.
 */
export function storeTileLines(
  tm: number,
  groups: number,
  vecC: boolean,
  epilogue: EpilogueLayout = PLAIN_EPILOGUE,
): string[] {
  const lines: string[] = [];
  // With an epilogue the value stored is act(c + bias), the pre-activation saved on the way.
  const plain = epilogue === PLAIN_EPILOGUE ||
    (!epilogue.bias && epilogue.activation === "none" && !epilogue.savePre);
  const finish = (o: string, v: string, col: string, vec: boolean) => {
    if (plain) return [`if (ACCUMULATE) { c[${o}] = c[${o}] + ${v}; } else { c[${o}] = ${v}; }`];
    const out = [`var v = ${v};`];
    if (epilogue.bias) out.push(`v = v + bias[${col}];`);
    if (epilogue.savePre) out.push(`pre[${o}] = v;`);
    out.push(`c[${o}] = ${activationExpr(epilogue.activation, "v", vec)};`);
    return out;
  };
  for (let i = 0; i < tm; i++) {
    lines.push(`  if (m0 + ${i}u < M) {`);
    lines.push(`    let row = c_off + (m0 + ${i}u) * N + n0;`);
    for (let g = 0; g < groups; g++) {
      if (vecC) {
        lines.push(`    if (n0 + ${4 * g}u < N) {`);
        lines.push(`      let o = row / 4u + ${g}u;`);
        for (const l of finish("o", `c${i}_${g}`, `n0 / 4u + ${g}u`, true)) {
          lines.push(`      ${l}`);
        }
        lines.push(`    }`);
      } else {
        for (let cc = 0; cc < 4; cc++) {
          const j = 4 * g + cc, v = `c${i}_${g}.${XYZW[cc]}`;
          lines.push(`    if (n0 + ${j}u < N) {`);
          lines.push(`      let o = row + ${j}u;`);
          for (const l of finish("o", v, `n0 + ${j}u`, false)) lines.push(`      ${l}`);
          lines.push(`    }`);
        }
      }
    }
    lines.push(`  }`);
  }
  return lines;
}

/** Validates an epilogue against the output; returns its layout. */
export function checkEpilogue(
  out: Tensor,
  N: number,
  opts: { accumulate?: boolean; epilogue?: MatmulEpilogue },
): EpilogueLayout {
  const e = opts.epilogue;
  if (!e) return PLAIN_EPILOGUE;
  const activation = e.activation ?? "none";
  const layout = { bias: e.bias !== undefined, activation, savePre: e.preActivation !== undefined };
  if (!layout.bias && activation === "none" && !layout.savePre) return PLAIN_EPILOGUE;
  if (opts.accumulate) throw new ShapeError("matmul: an epilogue cannot accumulate into out");
  if (!["none", "relu", "gelu"].includes(activation)) {
    throw new ShapeError(`matmul: unknown activation ${JSON.stringify(activation)}`);
  }
  if (e.bias) {
    requireF32("matmul", e.bias);
    if (e.bias.shape.length !== 1 || e.bias.shape[0] !== N) {
      throw new ShapeError(`matmul: bias ${e.bias.describe()} must be [${N}]`);
    }
    requireDisjoint("matmul", [out], [e.bias]);
  }
  if (e.preActivation) {
    requireF32("matmul", e.preActivation);
    requireSameShape("matmul", out, e.preActivation);
    requireDisjoint("matmul", [e.preActivation], [out, ...(e.bias ? [e.bias] : [])]);
  }
  return layout;
}

/** The epilogue's bind-group entries: bias at binding 4, the pre-activation at 5. */
export function epilogueBindings(e: MatmulEpilogue | undefined): GPUBindGroupEntry[] {
  const entries: GPUBindGroupEntry[] = [];
  if (e?.bias) entries.push({ binding: 4, resource: bindingResource(e.bias) });
  if (e?.preActivation) entries.push({ binding: 5, resource: bindingResource(e.preActivation) });
  return entries;
}
