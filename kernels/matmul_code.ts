/**
 * WGSL generation for the buffer matmul kernel: the layout that decides a pipeline's code, and
 * the unrolled TM×TN tile body on top of the shared header (kernels/matmul.wgsl). The dispatcher
 * that picks a layout for a shape lives in matmul.ts.
 */
import headerSource from "./matmul.wgsl" with { type: "text" };
import {
  epilogueDeclarations,
  type EpilogueLayout,
  storeTileLines,
  XYZW,
} from "./matmul_epilogue.ts";
import { fmaTileLines, type MatmulTile } from "./matmul_tile.ts";

/** Everything that decides the generated WGSL; shapes travel in the uniform. */
export interface MatmulLayout extends MatmulTile {
  transA: boolean;
  transB: boolean;
  /** a is read as vec4 along its contiguous axis. */
  vecA: boolean;
  /** b is read as vec4 along its contiguous axis. */
  vecB: boolean;
  /** out is written as vec4 along N. */
  vecC: boolean;
  /** K % 4 != 0: the last chunk of four k is clamped and masked. */
  raggedK: boolean;
  /**
   * b is bound as a uniform array of this many vec4s (0: as storage). llvmpipe (Mesa 22.3)
   * loads a storage element lane by lane in a loop with a branch per lane and component, a
   * uniform one with one branch-free gather: a small shared b (a Linear's weight) is read
   * several times faster. The size is part of the WGSL, so each size is its own pipeline.
   */
  uniformB?: number;
  /** a is bound as a uniform array of this many vec4s (0: as storage), as b above. */
  uniformA?: number;
  epilogue: EpilogueLayout;
}

/** WGSL for one matmul layout: the shared header plus an unrolled TM×TN tile body. */
export function matmulCode(layout: MatmulLayout): string {
  const { tm, tn, transA, transB, vecA, vecB, vecC, raggedK } = layout;
  if (tn % 4 !== 0) throw new RangeError(`matmul tile: tn=${tn} must be a multiple of 4`);
  if (transA && vecA && tm % 4 !== 0) {
    throw new RangeError(`matmul tile: tm=${tm} must be a multiple of 4 for vec4 reads of aᵀ`);
  }
  if (raggedK && ((vecA && !transA) || (vecB && transB))) {
    throw new RangeError("matmul: vec4 reads along k need K % 4 == 0");
  }
  const groups = tn / 4;
  const L: string[] = [headerSource];
  const arr = (vec: boolean) => vec ? "array<vec4<f32>>" : "array<f32>";
  L.push(
    layout.uniformA
      ? `@group(0) @binding(0) var<uniform> a: array<vec4<f32>, ${layout.uniformA}>;`
      : `@group(0) @binding(0) var<storage, read> a: ${arr(vecA)};`,
  );
  L.push(
    layout.uniformB
      ? `@group(0) @binding(1) var<uniform> b: array<vec4<f32>, ${layout.uniformB}>;`
      : `@group(0) @binding(1) var<storage, read> b: ${arr(vecB)};`,
  );
  L.push(`@group(0) @binding(2) var<storage, read_write> c: ${arr(vecC)};`);
  L.push(...epilogueDeclarations(layout.epilogue, vecC));
  L.push(`@compute @workgroup_size(${layout.wgx}, ${layout.wgy})`);
  L.push(`fn main(@builtin(global_invocation_id) gid: vec3<u32>) {`);
  L.push(`  let M = p.M;`);
  L.push(`  let N = p.N;`);
  L.push(`  let K = p.K;`);
  L.push(`  let n0 = gid.x * ${tn}u;`);
  L.push(`  let m0 = gid.y * ${tm}u;`);
  L.push(`  if (n0 >= N || m0 >= M) { return; }`);
  L.push(`  let a_off = gid.z * p.a_batch;`);
  L.push(`  let b_off = gid.z * p.b_batch;`);
  L.push(`  let c_off = gid.z * M * N;`);
  // Rows/columns past the edge are clamped onto the last one: the loads stay in bounds and
  // branch-free, and the stores below drop their results.
  for (let i = 0; i < tm; i++) L.push(`  let mi${i} = min(m0 + ${i}u, M - 1u);`);
  for (let j = 0; j < tn; j++) L.push(`  let nj${j} = min(n0 + ${j}u, N - 1u);`);
  // Per chunk of four k (k = 4·kc + kk): A(i, kk) is a scalar expression, B(kk, g) a vec4
  // expression over the columns n0 + 4g .. n0 + 4g + 3. With a ragged K the last chunk reads
  // row K-1 in place of the missing ones and zeroes the a side, instead of a separate tail
  // loop that would double the code llvmpipe has to compile.
  const kIndex = (kk: number) => raggedK ? `min(k + ${kk}u, K - 1u)` : `(k + ${kk}u)`;
  const masked = (kk: number, value: string, zero: string) =>
    raggedK ? `select(${zero}, ${value}, k + ${kk}u < K)` : value;
  const aExpr: string[][] = Array.from({ length: tm }, () => []);
  const bExpr: string[][] = Array.from({ length: 4 }, () => []);
  const loads: string[] = [];
  if (!transA && vecA) {
    for (let i = 0; i < tm; i++) {
      L.push(`  let ar${i} = (a_off + mi${i} * K) / 4u;`);
      loads.push(`    let a${i} = a[ar${i} + kc];`);
      for (let kk = 0; kk < 4; kk++) aExpr[i][kk] = `a${i}.${XYZW[kk]}`;
    }
  } else if (!transA) {
    for (let i = 0; i < tm; i++) {
      L.push(`  let ar${i} = a_off + mi${i} * K;`);
      for (let kk = 0; kk < 4; kk++) {
        loads.push(`    let a${i}_${kk} = ${masked(kk, `a[ar${i} + ${kIndex(kk)}]`, "0.0")};`);
        aExpr[i][kk] = `a${i}_${kk}`;
      }
    }
  } else if (vecA) {
    // aᵀ rows are contiguous in m: one vec4 covers four rows of the tile.
    for (let g = 0; g < tm / 4; g++) L.push(`  let ag${g} = min(m0 / 4u + ${g}u, M / 4u - 1u);`);
    for (let kk = 0; kk < 4; kk++) {
      for (let g = 0; g < tm / 4; g++) {
        const load = `a[(a_off + ${kIndex(kk)} * M) / 4u + ag${g}]`;
        loads.push(`    let a${kk}_${g} = ${masked(kk, load, "vec4<f32>(0.0)")};`);
        for (let c = 0; c < 4; c++) aExpr[4 * g + c][kk] = `a${kk}_${g}.${XYZW[c]}`;
      }
    }
  } else {
    for (let kk = 0; kk < 4; kk++) {
      for (let i = 0; i < tm; i++) {
        const load = `a[a_off + ${kIndex(kk)} * M + mi${i}]`;
        loads.push(`    let a${kk}_${i} = ${masked(kk, load, "0.0")};`);
        aExpr[i][kk] = `a${kk}_${i}`;
      }
    }
  }
  const vec4Of = (parts: string[]) => `vec4<f32>(${parts.join(", ")})`;
  if (!transB && vecB) {
    for (let g = 0; g < groups; g++) L.push(`  let bg${g} = min(n0 / 4u + ${g}u, N / 4u - 1u);`);
    for (let kk = 0; kk < 4; kk++) {
      for (let g = 0; g < groups; g++) {
        loads.push(`    let b${kk}_${g} = b[(b_off + ${kIndex(kk)} * N) / 4u + bg${g}];`);
        bExpr[kk][g] = `b${kk}_${g}`;
      }
    }
  } else if (!transB) {
    for (let kk = 0; kk < 4; kk++) {
      loads.push(`    let br${kk} = b_off + ${kIndex(kk)} * N;`);
      for (let g = 0; g < groups; g++) {
        const parts = [0, 1, 2, 3].map((c) => `b[br${kk} + nj${4 * g + c}]`);
        loads.push(`    let b${kk}_${g} = ${vec4Of(parts)};`);
        bExpr[kk][g] = `b${kk}_${g}`;
      }
    }
  } else {
    // bᵀ rows are contiguous in k: read four k at once per column, then regroup by column.
    for (let j = 0; j < tn; j++) {
      if (vecB) {
        L.push(`  let bc${j} = (b_off + nj${j} * K) / 4u;`);
        loads.push(`    let b${j} = b[bc${j} + kc];`);
      } else {
        L.push(`  let bc${j} = b_off + nj${j} * K;`);
        const parts = [0, 1, 2, 3].map((kk) => `b[bc${j} + ${kIndex(kk)}]`);
        loads.push(`    let b${j} = ${vec4Of(parts)};`);
      }
    }
    for (let kk = 0; kk < 4; kk++) {
      for (let g = 0; g < groups; g++) {
        bExpr[kk][g] = vec4Of([0, 1, 2, 3].map((c) => `b${4 * g + c}.${XYZW[kk]}`));
      }
    }
  }
  for (let i = 0; i < tm; i++) {
    for (let g = 0; g < groups; g++) L.push(`  var c${i}_${g} = vec4<f32>(0.0);`);
  }
  // Four k per iteration, so only ceil(K/4) iterations count against llvmpipe's budget.
  L.push(`  for (var kc = 0u; kc < (K + 3u) / 4u; kc = kc + 1u) {`);
  L.push(`    let k = kc * 4u;`);
  L.push(...loads);
  L.push(...fmaTileLines(tm, groups, (i, kk) => aExpr[i][kk], (kk, g) => bExpr[kk][g]));
  L.push(`  }`);
  L.push(...storeTileLines(tm, groups, vecC, layout.epilogue));
  L.push(`}`);
  return L.join("\n");
}

const codeCache = new Map<string, string>();

/** matmulCode for a layout, generated once per pipeline key. */
export function cachedCode(key: string, layout: MatmulLayout): string {
  let code = codeCache.get(key);
  if (code === undefined) codeCache.set(key, code = matmulCode(layout));
  return code;
}
