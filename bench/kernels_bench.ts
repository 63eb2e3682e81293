/**
 * Kernel throughput on the current adapter: matmul GFLOP/s at the shapes the lecture's models
 * use, softmax and layernorm element rates. Each figure records N repetitions into one plan,
 * submits it once, waits for queue.onSubmittedWorkDone() and keeps the best of a few trials
 * (shared CI machines are noisy). Run: `deno run -A bench/kernels_bench.ts`.
 */
import { getGpu, type Gpu } from "../kernels/device.ts";
import { layerNorm } from "../kernels/layernorm.ts";
import { matmul, type MatmulOptions } from "../kernels/matmul.ts";
import { fillUniform } from "../kernels/random_fill.ts";
import { type Plan, Recorder, runOnce } from "../kernels/program.ts";
import { softmax } from "../kernels/softmax.ts";
import { createTensor, type Tensor } from "../kernels/tensor.ts";

/** One measured figure. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
}

/** A tensor of U[-1, 1) values filled on the device. */
async function randomTensor(gpu: Gpu, shape: number[], name: string): Promise<Tensor> {
  const t = createTensor(gpu, shape, "f32", name);
  await runOnce(gpu, (rec) => fillUniform(rec, t, [7, 7], shape.length, -1, 1));
  return t;
}

/**
 * Seconds per repetition of `record`: compiled and warmed first, then `reps` copies in one
 * plan, best of `trials` submissions.
 */
async function timePerRep(
  gpu: Gpu,
  record: (rec: Recorder) => void,
  reps: number,
  trials = 3,
): Promise<number> {
  await runOnce(gpu, record);
  const rec = new Recorder(gpu);
  for (let i = 0; i < reps; i++) record(rec);
  const plan: Plan = await rec.finish();
  let best = Infinity;
  for (let t = 0; t < trials; t++) {
    const start = performance.now();
    plan.submit();
    await gpu.device.queue.onSubmittedWorkDone();
    best = Math.min(best, performance.now() - start);
  }
  return best / 1000 / reps;
}

/** Repetitions that make one trial take roughly `seconds` at the expected rate. */
function repsFor(work: number, ratePerSecond: number, seconds = 0.25): number {
  return Math.max(2, Math.min(2000, Math.round((seconds * ratePerSecond) / work)));
}

async function benchMatmul(
  gpu: Gpu,
  M: number,
  K: number,
  N: number,
  opts: MatmulOptions = {},
): Promise<BenchResult> {
  const a = await randomTensor(gpu, opts.transA ? [K, M] : [M, K], "a");
  const b = await randomTensor(gpu, opts.transB ? [N, K] : [K, N], "b");
  const out = createTensor(gpu, [M, N], "f32", "out");
  const flops = 2 * M * N * K;
  const seconds = await timePerRep(
    gpu,
    (rec) => matmul(rec, a, b, out, opts),
    repsFor(flops, 1e10),
  );
  const flags = `${opts.transA ? " Aᵀ" : ""}${opts.transB ? " Bᵀ" : ""}`;
  return {
    name: `matmul (${M}×${K})·(${K}×${N})${flags}`,
    value: flops / seconds / 1e9,
    unit: "GFLOP/s",
  };
}

/** Runs every kernel benchmark and returns the figures. */
export async function benchKernels(): Promise<BenchResult[]> {
  const gpu = await getGpu();
  const results: BenchResult[] = [];
  for (
    const [M, K, N] of [[256, 256, 256], [512, 512, 512], [256, 32, 32], [256, 65, 65], [
      512,
      64,
      256,
    ]]
  ) {
    results.push(await benchMatmul(gpu, M, K, N));
  }
  // The two gradient layouts of a Linear layer: dX = dY·Wᵀ and dW = Xᵀ·dY.
  results.push(await benchMatmul(gpu, 512, 512, 512, { transB: true }));
  results.push(await benchMatmul(gpu, 512, 512, 512, { transA: true }));

  // Attention weights of a small GPT: B·heads = 24 matrices of T×T = 256×256, causal, scaled.
  const att = [24, 256, 256];
  const attSize = att[0] * att[1] * att[2];
  const x = await randomTensor(gpu, att, "scores");
  const p = createTensor(gpu, att, "f32", "weights");
  const softmaxSeconds = await timePerRep(
    gpu,
    (rec) => softmax(rec, x, p, { causal: true, scale: 0.125 }),
    repsFor(attSize, 2e8),
  );
  results.push({
    name: `softmax causal [${att.join(", ")}]`,
    value: attSize / softmaxSeconds / 1e6,
    unit: "Melem/s",
  });

  // LayerNorm over the residual stream: B·T = 4096 rows of C = 384.
  const [rows, C] = [4096, 384];
  const h = await randomTensor(gpu, [rows, C], "h");
  const gamma = await randomTensor(gpu, [C], "gamma");
  const beta = await randomTensor(gpu, [C], "beta");
  const y = createTensor(gpu, [rows, C], "f32", "y");
  const mean = createTensor(gpu, [rows], "f32", "mean");
  const rstd = createTensor(gpu, [rows], "f32", "rstd");
  const lnSeconds = await timePerRep(
    gpu,
    (rec) => layerNorm(rec, h, gamma, beta, y, mean, rstd),
    repsFor(rows * C, 2e8),
  );
  results.push({
    name: `layerNorm [${rows}, ${C}]`,
    value: (rows * C) / lnSeconds / 1e6,
    unit: "Melem/s",
  });
  return results;
}

if (import.meta.main) {
  const gpu = await getGpu();
  console.log(`adapter: ${gpu.adapter.description || gpu.adapter.vendor}`);
  const results = await benchKernels();
  const width = Math.max(...results.map((r) => r.name.length));
  for (const r of results) {
    console.log(`${r.name.padEnd(width)}  ${r.value.toFixed(2).padStart(9)} ${r.unit}`);
  }
}
