/**
 * The texture-input matmul: both operands are first packed (transposed where the flags say so,
 * zero-padded to whole register tiles) into rgba32float textures by one small dispatch, then
 * a register-blocked kernel reads them with textureLoad. On llvmpipe texel fetches beat
 * vec4 storage-buffer loads by about half again (see matmul_texture.wgsl); the packing costs
 * O(M·K + K·N) against the product's O(M·N·K) (about 0.7 ms per 512×512 operand, nearly all of
 * it textureStore), so the dispatcher in matmul.ts takes this path for large shapes only. The
 * packing dispatch is part of the op: every figure in bench/ includes it.
 */
import headerSource from "./matmul_texture.wgsl" with { type: "text" };
import packSource from "./matmul_pack.wgsl" with { type: "text" };
import type { Gpu } from "./device.ts";
import { fmaTileLines, type MatmulDims, type MatmulTile } from "./matmul_tile.ts";
import { XYZW } from "./matmul_epilogue.ts";
import {
  epilogueDeclarations,
  epilogueKey,
  type EpilogueLayout,
  storeTileLines,
} from "./matmul_epilogue.ts";
import { bindingResource, pipelineFor, type Recorder, storageU32 } from "./program.ts";
import type { Tensor } from "./tensor.ts";

/** Generated WGSL by variant key: generating a 16×16 tile body is not free. */
const codeCache = new Map<string, string>();

/** Everything that decides the generated WGSL of the texture-input kernel. */
export interface TextureMatmulLayout extends MatmulTile {
  /** out is written as vec4 along N (N % 4 == 0). */
  vecC: boolean;
  /** The operands are bound as 2-D array textures (batched); otherwise as plain 2-D views. */
  layered: boolean;
  epilogue: EpilogueLayout;
}

/** WGSL for one texture-input layout: the shared header plus an unrolled TM×TN tile body. */
export function textureMatmulCode(layout: TextureMatmulLayout): string {
  const { tm, tn, wgx, wgy, vecC, layered } = layout;
  if (tn % 4 !== 0) throw new RangeError(`texture matmul tile: tn=${tn} must be a multiple of 4`);
  const groups = tn / 4;
  const texType = layered ? "texture_2d_array<f32>" : "texture_2d<f32>";
  const L: string[] = [headerSource];
  L.push(`@group(0) @binding(0) var ta: ${texType};`);
  L.push(`@group(0) @binding(1) var tb: ${texType};`);
  L.push(
    `@group(0) @binding(2) var<storage, read_write> c: ${
      vecC ? "array<vec4<f32>>" : "array<f32>"
    };`,
  );
  L.push(...epilogueDeclarations(layout.epilogue, vecC));
  L.push(`@compute @workgroup_size(${wgx}, ${wgy})`);
  L.push(`fn main(@builtin(global_invocation_id) gid: vec3<u32>) {`);
  L.push(`  let M = p.M;`);
  L.push(`  let N = p.N;`);
  L.push(`  let n0 = gid.x * ${tn}u;`);
  L.push(`  let m0 = gid.y * ${tm}u;`);
  L.push(`  if (n0 >= N || m0 >= M) { return; }`);
  if (layered) {
    L.push(`  let la = gid.z * p.a_batched;`);
    L.push(`  let lb = gid.z * p.b_batched;`);
  }
  L.push(`  let c_off = (gid.z + p.first) * M * N;`);
  // The textures are padded to whole tiles, so every coordinate below is in range.
  for (let i = 0; i < tm; i++) L.push(`  let ay${i} = m0 + ${i}u;`);
  for (let g = 0; g < groups; g++) L.push(`  let bx${g} = n0 / 4u + ${g}u;`);
  for (let i = 0; i < tm; i++) {
    for (let g = 0; g < groups; g++) L.push(`  var c${i}_${g} = vec4<f32>(0.0);`);
  }
  // Four k per iteration: ceil(K/4) iterations count against llvmpipe's loop budget.
  L.push(`  let K4 = p.K4;`);
  L.push(`  for (var kc = 0u; kc < K4; kc = kc + 1u) {`);
  L.push(`    let k = kc * 4u;`);
  for (let i = 0; i < tm; i++) {
    L.push(`    let a${i} = textureLoad(ta, vec2<u32>(kc, ay${i}), ${layered ? "la, " : ""}0);`);
  }
  for (let kk = 0; kk < 4; kk++) {
    for (let g = 0; g < groups; g++) {
      L.push(
        `    let b${kk}_${g} = textureLoad(tb, vec2<u32>(bx${g}, k + ${kk}u), ${
          layered ? "lb, " : ""
        }0);`,
      );
    }
  }
  // The storage-buffer kernel's order of fused multiply-adds, so the two agree bit for bit.
  L.push(...fmaTileLines(tm, groups, (i, kk) => `a${i}.${XYZW[kk]}`, (kk, g) => `b${kk}_${g}`));
  L.push(`  }`);
  L.push(...storeTileLines(tm, groups, vecC, layout.epilogue));
  L.push(`}`);
  return L.join("\n");
}

/**
 * Width, height and layers of the two packed operand textures for a shape and tile; a batch
 * larger than `maxLayers` is packed and multiplied in chunks of at most that many layers.
 */
export function packedSizes(dims: MatmulDims, tile: MatmulTile, maxLayers: number): {
  a: [number, number, number];
  b: [number, number, number];
} {
  const { batch, M, N, K, aBatched, bBatched } = dims;
  const k4 = Math.ceil(K / 4);
  const layers = Math.min(batch, maxLayers);
  return {
    a: [k4, Math.ceil(M / tile.tm) * tile.tm, aBatched ? layers : 1],
    b: [Math.ceil(N / tile.tn) * (tile.tn / 4), 4 * k4, bBatched ? layers : 1],
  };
}

/**
 * Why the texture path cannot take a shape on this device (a packed operand wider or taller
 * than maxTextureDimension2D), or undefined when it can.
 */
export function textureMatmulObstacle(
  gpu: Gpu,
  dims: MatmulDims,
  tile: MatmulTile,
): string | undefined {
  const { a, b } = packedSizes(dims, tile, gpu.limits.maxTextureArrayLayers);
  const maxSide = gpu.limits.maxTextureDimension2D;
  for (const [name, [w, h]] of [["a", a], ["b", b]] as const) {
    if (w > maxSide || h > maxSide) {
      return `packed ${name} is ${w}×${h} texels, above maxTextureDimension2D ${maxSide}`;
    }
  }
  return undefined;
}

/**
 * Packed textures are scratch: every matmul packs its operands right before reading them, and
 * dispatches in a pass (and submissions on the queue) run in order, so every matmul of one
 * texture size can share one texture per operand role instead of allocating its own.
 */
const texturePool = new WeakMap<GPUDevice, Map<string, GPUTexture>>();

function scratchTexture(gpu: Gpu, role: "a" | "b", [w, h, layers]: number[]): GPUTexture {
  let pool = texturePool.get(gpu.device);
  if (!pool) texturePool.set(gpu.device, pool = new Map());
  const key = `${role}:${w}x${h}x${layers}`;
  let texture = pool.get(key);
  if (!texture) {
    texture = gpu.device.createTexture({
      label: `matmul.packed_${role}`,
      size: [w, h, layers],
      format: "rgba32float",
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.TEXTURE_BINDING,
    });
    pool.set(key, texture);
  }
  return texture;
}

/** How the packing kernel reads one operand (see matmul_pack.wgsl). */
type PackMode = "rows" | "scalar" | "transposed";

/** One operand to pack: where it comes from, its logical shape and its texture. */
interface PackJob {
  src: Tensor;
  transposed: boolean;
  rows: number;
  cols: number;
  /** Elements between batch matrices; 0 for an operand shared by every batch. */
  batchStride: number;
  texture: GPUTexture;
}

function packMode(job: PackJob): PackMode {
  return job.transposed ? "transposed" : job.cols % 4 === 0 ? "rows" : "scalar";
}

/** WGSL packing one or two operands (slot i binds src_i at 1 + 2i and dst_i at 2 + 2i). */
export function packCode(modes: readonly PackMode[]): string {
  const L: string[] = [packSource];
  modes.forEach((mode, i) => {
    const elem = mode === "rows" ? "vec4<f32>" : "f32";
    L.push(`@group(0) @binding(${1 + 2 * i}) var<storage, read> src${i}: array<${elem}>;`);
    L.push(
      `@group(0) @binding(${2 + 2 * i}) var dst${i}: ` +
        `texture_storage_2d_array<rgba32float, write>;`,
    );
  });
  L.push(`@compute @workgroup_size(64)`);
  L.push(`fn main(`);
  L.push(`  @builtin(global_invocation_id) gid: vec3<u32>,`);
  L.push(`  @builtin(num_workgroups) groups: vec3<u32>,`);
  L.push(`) {`);
  // Invocations are numbered linearly, and each operand maps the number onto its own texels:
  // the two textures may have very different shapes (a 64×4096 a and a 4096×64 b), which a
  // grid spanning both widths and both heights would cover many times over.
  L.push(`  let i = gid.y * groups.x * 64u + gid.x;`);
  modes.forEach((mode, i) => {
    L.push(`  {`);
    L.push(`    let o = p.op[${i}];`);
    L.push(`    let size = textureDimensions(dst${i});`);
    // Neighbouring invocations take neighbouring texels of a row, or of a column when the
    // source is transposed, so that they read neighbouring addresses.
    L.push(
      mode === "transposed"
        ? `    let texel = vec2<u32>(i / size.y, i % size.y);`
        : `    let texel = vec2<u32>(i % size.x, i / size.x);`,
    );
    // A shared operand has one layer and is packed by the first chunk's dispatch only.
    L.push(`    if (texel.y < size.y && texel.x < size.x && gid.z < textureNumLayers(dst${i})) {`);
    L.push(`      let base = (gid.z + o.first) * o.batch_stride;`);
    L.push(`      var v = vec4<f32>(0.0);`);
    if (mode === "rows") {
      L.push(`      if (texel.y < o.rows && texel.x < o.cols / 4u) {`);
      L.push(`        v = src${i}[base / 4u + texel.y * (o.cols / 4u) + texel.x];`);
      L.push(`      }`);
    } else {
      // Out-of-range columns read a clamped (valid) element and are zeroed by select, so
      // every lane issues the same loads.
      L.push(`      if (texel.y < o.rows) {`);
      for (let c = 0; c < 4; c++) {
        L.push(`        let col${c} = min(4u * texel.x + ${c}u, o.cols - 1u);`);
        const index = mode === "transposed"
          ? `col${c} * o.rows + texel.y`
          : `texel.y * o.cols + col${c}`;
        L.push(
          `        v.${XYZW[c]} = select(0.0, src${i}[base + ${index}], ` +
            `4u * texel.x + ${c}u < o.cols);`,
        );
      }
      L.push(`      }`);
    }
    L.push(`      textureStore(dst${i}, texel, gid.z, v);`);
    L.push(`    }`);
    L.push(`  }`);
  });
  L.push(`}`);
  return L.join("\n");
}

/** Packs one or two operands in one dispatch, source matrices first .. first + layers - 1. */
function pack(rec: Recorder, jobs: readonly PackJob[], first: number, layers: number): void {
  const gpu = rec.gpu;
  const modes = jobs.map(packMode);
  const name = `matmul_pack_${modes.join("_")}`;
  let code = codeCache.get(name);
  if (code === undefined) codeCache.set(name, code = packCode(modes));
  const pipeline = pipelineFor(gpu, { name, code });
  const values = [0, 1].flatMap((i) => {
    const job = jobs[i];
    return job ? [job.rows, job.cols, job.batchStride, job.batchStride ? first : 0] : [0, 0, 0, 0];
  });
  const params = storageU32(gpu, values, "matmul_pack.params");
  const texels = Math.max(...jobs.map((job) => job.texture.width * job.texture.height));
  const groups = Math.ceil(texels / 64);
  // Linear invocation numbers, folded into two grid dimensions past the per-dimension limit.
  const gx = Math.min(groups, 4096);
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: params } }];
  jobs.forEach((job, i) => {
    entries.push({ binding: 1 + 2 * i, resource: bindingResource(job.src) });
    entries.push({
      binding: 2 + 2 * i,
      resource: job.texture.createView({ dimension: "2d-array" }),
    });
  });
  rec.dispatchWith(name, pipeline, entries, [gx, Math.ceil(groups / gx), layers]);
}

/**
 * Records the texture-input matmul: pack a and b (one dispatch), then the product. Shapes are validated by
 * the caller (matmul in matmul.ts), which also checks textureMatmulObstacle first.
 */
export function matmulTexture(
  rec: Recorder,
  a: Tensor,
  b: Tensor,
  out: Tensor,
  dims: MatmulDims,
  opts: {
    transA: boolean;
    transB: boolean;
    accumulate: boolean;
    epilogue: EpilogueLayout;
    /** The epilogue's bind-group entries (bindings 4 and 5). */
    epilogueBindings: readonly GPUBindGroupEntry[];
  },
  tile: MatmulTile,
): void {
  const gpu = rec.gpu;
  const { batch, M, N, K, aBatched, bBatched } = dims;
  const maxLayers = gpu.limits.maxTextureArrayLayers;
  const sizes = packedSizes(dims, tile, maxLayers);
  const ta = scratchTexture(gpu, "a", sizes.a);
  const tb = scratchTexture(gpu, "b", sizes.b);
  const layered = batch > 1;
  const layout: TextureMatmulLayout = {
    ...tile,
    vecC: N % 4 === 0,
    layered,
    epilogue: opts.epilogue,
  };
  const key = `${tile.tm}x${tile.tn}_${tile.wgx}x${tile.wgy}_${layout.vecC ? "v" : "s"}` +
    (layered ? "_l" : "") + epilogueKey(opts.epilogue);
  const view = { dimension: layered ? "2d-array" : "2d" } as const;
  let code = codeCache.get(key);
  if (code === undefined) codeCache.set(key, code = textureMatmulCode(layout));
  const pipeline = pipelineFor(gpu, {
    name: `matmul_tex_${key}`,
    code,
    constants: { ACCUMULATE: opts.accumulate ? 1 : 0 },
  });
  // One texture layer per batch matrix, in chunks of the device's layer limit. A shared
  // (unbatched) operand is packed once, into layer 0, by the first chunk's packing dispatch.
  const jobA: PackJob = {
    src: a,
    transposed: opts.transA,
    rows: M,
    cols: K,
    batchStride: aBatched ? M * K : 0,
    texture: ta,
  };
  const jobB: PackJob = {
    src: b,
    transposed: opts.transB,
    rows: K,
    cols: N,
    batchStride: bBatched ? K * N : 0,
    texture: tb,
  };
  for (let first = 0; first < batch; first += maxLayers) {
    const count = Math.min(maxLayers, batch - first);
    const jobs = [jobA, jobB].filter((job) => first === 0 || job.batchStride > 0);
    pack(rec, jobs, first, jobs.some((job) => job.batchStride > 0) ? count : 1);
    const params = storageU32(gpu, [
      M,
      N,
      Math.ceil(K / 4),
      aBatched ? 1 : 0,
      bBatched ? 1 : 0,
      first,
    ], "matmul_tex.params");
    rec.dispatchWith(
      `matmul_tex_${key}`,
      pipeline,
      [
        { binding: 0, resource: ta.createView(view) },
        { binding: 1, resource: tb.createView(view) },
        { binding: 2, resource: bindingResource(out) },
        { binding: 3, resource: { buffer: params } },
        ...opts.epilogueBindings,
      ],
      [
        Math.ceil(Math.ceil(N / tile.tn) / tile.wgx),
        Math.ceil(Math.ceil(M / tile.tm) / tile.wgy),
        count,
      ],
    );
  }
}
