/**
 * The matmuls of one `gpt` default-config training step (512 rows, C = 64, FFN 256, qkv 192,
 * V = 89), each timed with the dispatcher's automatic choice and with alternative kernels and
 * tiles, in µs per call (wall and the process's CPU time, which load moves far less).
 * Run: `deno run -A bench/gpt_matmul_bench.ts [filter]`.
 *
 * Method as in layer_ops_bench.ts: a plan of REPS calls, each on its own output, submitted
 * SUBMITS times per trial and read back once; the median of TRIALS trials less an empty
 * readback's, variants of one shape taking turns.
 */
import process from "node:process";
import { getGpu, type Gpu } from "../kernels/device.ts";
import {
  chooseMatmulKernel,
  chooseMatmulTile,
  matmul,
  matmulDims,
  type MatmulKernel,
  type MatmulOptions,
  type MatmulTile,
} from "../kernels/matmul.ts";
import { fillUniform } from "../kernels/random_fill.ts";
import { type Plan, Recorder, runOnce } from "../kernels/program.ts";
import { createTensor, readBytes, type Tensor } from "../kernels/tensor.ts";

const REPS = 8, SUBMITS = 6, TRIALS = 5;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function random(gpu: Gpu, shape: number[], name: string): Promise<Tensor> {
  const t = createTensor(gpu, shape, "f32", name);
  await runOnce(gpu, (rec) => fillUniform(rec, t, [5, shape.length], 0, -1, 1));
  return t;
}

/** One matmul of the step: logical M×N×K and the operand layout the model uses. */
interface Case {
  name: string;
  M: number;
  N: number;
  K: number;
  opts: MatmulOptions;
  /** How often it runs per step. */
  perStep: number;
  /** The Linear's epilogue: bias, and ReLU when "relu". */
  epilogue?: "bias" | "relu";
}

const CASES: Case[] = [
  { name: "qkv fwd", M: 512, N: 192, K: 64, opts: { transB: true }, perStep: 4 },
  { name: "proj fwd", M: 512, N: 64, K: 64, opts: { transB: true }, perStep: 4, epilogue: "bias" },
  {
    name: "ffn up fwd",
    M: 512,
    N: 256,
    K: 64,
    opts: { transB: true },
    perStep: 4,
    epilogue: "relu",
  },
  {
    name: "ffn down fwd",
    M: 512,
    N: 64,
    K: 256,
    opts: { transB: true },
    perStep: 4,
    epilogue: "bias",
  },
  { name: "head fwd", M: 512, N: 89, K: 64, opts: { transB: true }, perStep: 1, epilogue: "bias" },
  { name: "qkv dW", M: 192, N: 64, K: 512, opts: { transA: true }, perStep: 4 },
  { name: "qkv dX", M: 512, N: 64, K: 192, opts: {}, perStep: 4 },
  { name: "proj dW", M: 64, N: 64, K: 512, opts: { transA: true }, perStep: 4 },
  { name: "proj dX", M: 512, N: 64, K: 64, opts: {}, perStep: 4 },
  { name: "ffn up dW", M: 256, N: 64, K: 512, opts: { transA: true }, perStep: 4 },
  { name: "ffn up dX", M: 512, N: 64, K: 256, opts: {}, perStep: 4 },
  { name: "ffn down dW", M: 64, N: 256, K: 512, opts: { transA: true }, perStep: 4 },
  { name: "ffn down dX", M: 512, N: 256, K: 64, opts: {}, perStep: 4 },
  { name: "head dW", M: 89, N: 64, K: 512, opts: { transA: true }, perStep: 1 },
  { name: "head dX", M: 512, N: 64, K: 89, opts: {}, perStep: 1 },
];

interface Variant {
  name: string;
  kernel?: MatmulKernel;
  tile?: MatmulTile;
  noUniform?: boolean;
}

const VARIANTS: Variant[] = [
  { name: "auto" },
  { name: "tex 16x16 8x1", kernel: "texture" },
  { name: "buf 16x8 stor", tile: { tm: 16, tn: 8, wgx: 8, wgy: 4 }, noUniform: true },
  { name: "buf 16x8 8x4", tile: { tm: 16, tn: 8, wgx: 8, wgy: 4 } },
  { name: "buf 8x16 8x4", tile: { tm: 8, tn: 16, wgx: 8, wgy: 4 } },
  { name: "buf 4x16 8x4", tile: { tm: 4, tn: 16, wgx: 8, wgy: 4 } },
  { name: "buf 4x16 4x8", tile: { tm: 4, tn: 16, wgx: 4, wgy: 8 } },
  { name: "buf 4x32 2x16", tile: { tm: 4, tn: 32, wgx: 2, wgy: 16 } },
  { name: "buf 8x32 2x16", tile: { tm: 8, tn: 32, wgx: 2, wgy: 16 } },
  { name: "buf 4x64 1x32", tile: { tm: 4, tn: 64, wgx: 1, wgy: 32 } },
];

async function main(): Promise<void> {
  const filter = Deno.args[0];
  const gpu = await getGpu();
  const floorProbe = createTensor(gpu, [4], "f32", "floor");
  const trial = async (plan: Plan | undefined, probe: Tensor) => {
    const cpu0 = process.cpuUsage(), start = performance.now();
    for (let i = 0; plan && i < SUBMITS; i++) plan.submit();
    await readBytes(gpu, probe.buffer, probe.byteOffset, 4);
    const cpu = process.cpuUsage(cpu0);
    return { wall: performance.now() - start, cpu: (cpu.user + cpu.system) / 1000 };
  };
  const floors = [];
  for (let i = 0; i < 2 * TRIALS; i++) floors.push(await trial(undefined, floorProbe));
  const floorWall = median(floors.map((f) => f.wall)), floorCpu = median(floors.map((f) => f.cpu));
  let totalAuto = 0, totalBest = 0;
  for (const c of CASES) {
    if (filter && !c.name.includes(filter)) continue;
    const a = await random(gpu, c.opts.transA ? [c.K, c.M] : [c.M, c.K], "a");
    const b = await random(gpu, c.opts.transB ? [c.N, c.K] : [c.K, c.N], "b");
    const bias = await random(gpu, [c.N], "bias");
    const epilogue = c.epilogue
      ? { bias, activation: c.epilogue === "relu" ? "relu" as const : "none" as const }
      : undefined;
    const dims = matmulDims(a, b, createTensor(gpu, [c.M, c.N], "f32", "o"), c.opts);
    const kernel = chooseMatmulKernel(dims, c.opts);
    const tile = chooseMatmulTile(dims);
    const plans: { name: string; plan: Plan; probe: Tensor }[] = [];
    for (const v of VARIANTS) {
      const rec = new Recorder(gpu);
      let probe = floorProbe;
      try {
        for (let r = 0; r < REPS; r++) {
          probe = createTensor(gpu, [c.M, c.N], "f32", "out");
          matmul(rec, a, b, probe, {
            ...c.opts,
            epilogue,
            kernel: v.kernel,
            tile: v.tile,
            noUniform: v.noUniform,
          });
        }
      } catch (e) {
        console.log(`  ${v.name}: ${(e as Error).message}`);
        continue;
      }
      const plan = await rec.finish();
      plan.submit();
      await readBytes(gpu, probe.buffer, probe.byteOffset, 4);
      plans.push({ name: v.name, plan, probe });
    }
    const trials = plans.map((): { wall: number; cpu: number }[] => []);
    for (let t = 0; t < TRIALS; t++) {
      for (const [i, p] of plans.entries()) trials[i].push(await trial(p.plan, p.probe));
    }
    const per = (ms: number) => (ms * 1000) / (REPS * SUBMITS);
    const rows = trials.map((t) => ({
      wall: per(median(t.map((x) => x.wall)) - floorWall),
      cpu: per(median(t.map((x) => x.cpu)) - floorCpu),
    }));
    // Without row blocks (see kernels/matmul_uniform.ts), which the dispatcher tries first.
    const auto = kernel === "texture" ? "tex" : `buf ${tile.tm}x${tile.tn} ${tile.wgx}x${tile.wgy}`;
    console.log(
      `${c.name} (${c.M}×${c.N}×${c.K} ${c.opts.transA ? "t" : "n"}${
        c.opts.transB ? "t" : "n"
      }, ×${c.perStep}/step; unblocked auto = ${auto})`,
    );
    plans.forEach((p, i) => {
      console.log(
        `  ${p.name.padEnd(14)} ${rows[i].wall.toFixed(0).padStart(6)} µs wall ` +
          `${rows[i].cpu.toFixed(0).padStart(6)} µs CPU`,
      );
    });
    totalAuto += rows[0].wall * c.perStep;
    totalBest += Math.min(...rows.map((r) => r.wall)) * c.perStep;
  }
  console.log(
    `per step: auto ${(totalAuto / 1000).toFixed(1)} ms, best ${
      (totalBest / 1000).toFixed(1)
    } ms (wall)`,
  );
}

if (import.meta.main) await main();
