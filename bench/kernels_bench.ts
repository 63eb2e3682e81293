/**
 * Kernel throughput on the current adapter: matmul GFLOP/s at the shapes the lecture's models
 * use (with the dispatcher's kernel and, for comparison, the other one), softmax and layernorm
 * in GB/s and rows/s. Run: `deno run -A bench/kernels_bench.ts` (or `deno task bench`).
 *
 * Method, per figure: the op is recorded `reps` times into one plan (many dispatches per
 * submit, so the ~30 µs launch cost is what a training step pays, not a 10 ms host round trip);
 * the plan is compiled and run once as a warm-up, `reps` is calibrated so that one submission
 * takes about 0.3 s, then each of five trials times submit → a 4-byte readback of the output,
 * which cannot complete before the last dispatch has. A shape's two matmul kernels take turns
 * trial by trial, so both see the same machine. The figure is the median trial, less the
 * median time of an empty readback (Deno notices completion on a ~10 ms poll, which would
 * otherwise count as kernel time), divided by `reps`. The CI machines' two cores are shared,
 * so figures move by ±10% between runs; the median keeps one slow trial out.
 */
import { getGpu, type Gpu } from "../kernels/device.ts";
import { embeddingBackward } from "../kernels/embedding.ts";
import { layerNorm } from "../kernels/layernorm.ts";
import {
  chooseMatmulKernel,
  matmul,
  matmulDims,
  type MatmulKernel,
  type MatmulOptions,
} from "../kernels/matmul.ts";
import { fillUniform } from "../kernels/random_fill.ts";
import { type Plan, Recorder, runOnce } from "../kernels/program.ts";
import { softmax } from "../kernels/softmax.ts";
import { createTensor, readBytes, type Tensor } from "../kernels/tensor.ts";
import { median } from "../harness/replay_timing.ts";

/** One measured figure. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** How it was measured (repetitions, trials, kernel), kept in the JSON. */
  detail?: string;
  /** Raw milliseconds of each timed submission of `reps` repetitions. */
  trialsMs?: number[];
}

const TRIALS = 5;
const TRIAL_SECONDS = 0.3;

/** A tensor of U[-1, 1) values filled on the device. */
export async function randomTensor(gpu: Gpu, shape: number[], name: string): Promise<Tensor> {
  const t = createTensor(gpu, shape, "f32", name);
  await runOnce(gpu, (rec) => fillUniform(rec, t, [7, 7], shape.length, -1, 1));
  return t;
}

/** Milliseconds from submitting `plan` until four bytes of `out` are back on the host. */
async function timeSubmission(gpu: Gpu, plan: Plan | undefined, out: Tensor): Promise<number> {
  const start = performance.now();
  plan?.submit();
  await readBytes(gpu, out.buffer, out.byteOffset, 4);
  return performance.now() - start;
}

/** Median latency of a readback with nothing queued before it: subtracted from every trial. */
export async function readbackFloorMs(gpu: Gpu): Promise<number> {
  const probe = createTensor(gpu, [4], "f32", "probe");
  const times: number[] = [];
  for (let i = 0; i < 2 * TRIALS; i++) times.push(await timeSubmission(gpu, undefined, probe));
  return median(times);
}

/** The outcome of timePerRep. */
interface Timing {
  /** Seconds per repetition. */
  seconds: number;
  reps: number;
  /** Milliseconds of each timed submission, readback included, nothing subtracted. */
  trials: number[];
}

/** A compiled, calibrated and warmed plan of `reps` repetitions of one op. */
interface Prepared {
  plan: Plan;
  reps: number;
  /** Read back after each submission: its last write ends the timed interval. */
  out: Tensor;
}

/** Compiles `record`, then grows its plan until one submission takes about TRIAL_SECONDS. */
async function prepare(
  gpu: Gpu,
  floorMs: number,
  record: (rec: Recorder) => void,
  out: Tensor,
): Promise<Prepared> {
  const planOf = async (reps: number) => {
    const rec = new Recorder(gpu);
    for (let i = 0; i < reps; i++) record(rec);
    return await rec.finish();
  };
  await runOnce(gpu, record); // compiles the pipelines
  // Calibration doubles as the warm-up: grow the plan until one submission is measurable.
  let reps = 4, plan = await planOf(reps), ms = await timeSubmission(gpu, plan, out) - floorMs;
  while (ms < 50 && reps < 4096) {
    reps *= 4;
    plan = await planOf(reps);
    ms = await timeSubmission(gpu, plan, out) - floorMs;
  }
  const want = Math.max(2, Math.min(8192, Math.round((reps * TRIAL_SECONDS * 1000) / ms)));
  if (want !== reps) plan = await planOf(reps = want);
  await timeSubmission(gpu, plan, out);
  return { plan, reps, out };
}

/**
 * Times TRIALS submissions of each prepared plan, taking turns, so that ops compared with
 * each other see the same share of a busy machine.
 */
async function measure(gpu: Gpu, floorMs: number, prepared: Prepared[]): Promise<Timing[]> {
  const trials = prepared.map((): number[] => []);
  for (let t = 0; t < TRIALS; t++) {
    for (const [i, p] of prepared.entries()) {
      trials[i].push(await timeSubmission(gpu, p.plan, p.out));
    }
  }
  return prepared.map((p, i) => ({
    seconds: Math.max(1e-9, median(trials[i]) - floorMs) / 1000 / p.reps,
    reps: p.reps,
    trials: trials[i],
  }));
}

/** Seconds per repetition of `record` (see the module comment for the method). */
async function timePerRep(
  gpu: Gpu,
  floorMs: number,
  record: (rec: Recorder) => void,
  out: Tensor,
): Promise<Timing> {
  const [timing] = await measure(gpu, floorMs, [await prepare(gpu, floorMs, record, out)]);
  return timing;
}

function detail(reps: number, extra = ""): string {
  return `median of ${TRIALS} submissions × ${reps} reps, timed to a readback${extra}`;
}

function trialsMs(timing: Timing): number[] {
  return timing.trials.map((t) => Math.round(t * 10) / 10);
}

/**
 * GFLOP/s of one matmul shape with each of `kernels` (default: the dispatcher's choice), timed
 * in alternation. The texture kernel's packing dispatches are recorded by matmul itself, so
 * they are part of every timed repetition.
 */
async function benchMatmul(
  gpu: Gpu,
  floorMs: number,
  M: number,
  K: number,
  N: number,
  opts: MatmulOptions = {},
  kernels?: MatmulKernel[],
): Promise<BenchResult[]> {
  const a = await randomTensor(gpu, opts.transA ? [K, M] : [M, K], "a");
  const b = await randomTensor(gpu, opts.transB ? [N, K] : [K, N], "b");
  const outs = new Map<MatmulKernel, Tensor>();
  const outFor = (kernel: MatmulKernel) => {
    let out = outs.get(kernel);
    if (!out) outs.set(kernel, out = createTensor(gpu, [M, N], "f32", `out.${kernel}`));
    return out;
  };
  const chosen = chooseMatmulKernel(matmulDims(a, b, outFor("buffer"), opts), opts);
  const which = kernels ?? [chosen];
  const prepared: Prepared[] = [];
  for (const kernel of which) {
    const out = outFor(kernel);
    prepared.push(
      await prepare(gpu, floorMs, (rec) => matmul(rec, a, b, out, { ...opts, kernel }), out),
    );
  }
  const timings = await measure(gpu, floorMs, prepared);
  const flops = 2 * M * N * K;
  const flags = `${opts.transA ? " Aᵀ" : ""}${opts.transB ? " Bᵀ" : ""}`;
  const alternating = which.length > 1 ? `, alternating with the ${which.join("/")} kernels` : "";
  return which.map((kernel, i) => ({
    name: `matmul (${M}×${K})·(${K}×${N})${flags} [${kernel}, ` +
      `${kernel === chosen ? "chosen" : "forced"}]`,
    value: flops / timings[i].seconds / 1e9,
    unit: "GFLOP/s",
    detail: detail(
      timings[i].reps,
      (kernel === "texture" ? ", packing included" : "") + alternating,
    ),
    trialsMs: trialsMs(timings[i]),
  }));
}

/** Runs every kernel benchmark and returns the figures. */
export async function benchKernels(): Promise<BenchResult[]> {
  const gpu = await getGpu();
  const floorMs = await readbackFloorMs(gpu);
  const results: BenchResult[] = [];
  const shapes: [number, number, number][] = [
    [256, 256, 256],
    [512, 512, 512],
    [256, 32, 32],
    [256, 65, 65],
    [512, 64, 256],
  ];
  // Each shape with both kernels, the dispatcher's choice first: the other row is what the
  // choice is measured against.
  for (const [M, K, N] of shapes) {
    const chosen = chooseMatmulKernel({ batch: 1, M, N, K, aBatched: false, bBatched: false });
    const kernels: MatmulKernel[] = [chosen, chosen === "texture" ? "buffer" : "texture"];
    results.push(...await benchMatmul(gpu, floorMs, M, K, N, {}, kernels));
  }
  // The two gradient layouts of a Linear layer: dX = dY·Wᵀ and dW = Xᵀ·dY.
  results.push(...await benchMatmul(gpu, floorMs, 512, 512, 512, { transB: true }));
  results.push(...await benchMatmul(gpu, floorMs, 512, 512, 512, { transA: true }));

  // Attention weights of a small GPT: B·heads = 24 matrices of T×T = 256×256, causal, scaled.
  // Traffic: every score read once and every weight written once, 8 bytes per element.
  const att = [24, 256, 256];
  const attRows = att[0] * att[1], attSize = attRows * att[2];
  const x = await randomTensor(gpu, att, "scores");
  const p = createTensor(gpu, att, "f32", "weights");
  const sm = await timePerRep(
    gpu,
    floorMs,
    (rec) => softmax(rec, x, p, { causal: true, scale: 0.125 }),
    p,
  );
  results.push({
    name: `softmax causal [${att.join(", ")}]`,
    value: (8 * attSize) / sm.seconds / 1e9,
    unit: "GB/s",
    detail: detail(sm.reps, ", 8 bytes per element (read x, write y)"),
    trialsMs: trialsMs(sm),
  });
  results.push({
    name: `softmax causal [${att.join(", ")}] rows of ${att[2]}`,
    value: attRows / sm.seconds / 1e3,
    unit: "krows/s",
    detail: detail(sm.reps),
  });

  // LayerNorm over the residual stream: B·T = 4096 rows of C = 384. Traffic: x read, y
  // written (8 bytes per element) plus mean and rstd (8 bytes per row).
  const [rows, C] = [4096, 384];
  const h = await randomTensor(gpu, [rows, C], "h");
  const gamma = await randomTensor(gpu, [C], "gamma");
  const beta = await randomTensor(gpu, [C], "beta");
  const y = createTensor(gpu, [rows, C], "f32", "y");
  const mean = createTensor(gpu, [rows], "f32", "mean");
  const rstd = createTensor(gpu, [rows], "f32", "rstd");
  const ln = await timePerRep(
    gpu,
    floorMs,
    (rec) => layerNorm(rec, h, gamma, beta, y, mean, rstd),
    y,
  );
  results.push({
    name: `layerNorm [${rows}, ${C}]`,
    value: (8 * rows * C + 8 * rows) / ln.seconds / 1e9,
    unit: "GB/s",
    detail: detail(ln.reps, ", 8 bytes per element + 8 per row"),
    trialsMs: trialsMs(ln),
  });
  results.push({
    name: `layerNorm [${rows}, ${C}] rows of ${C}`,
    value: rows / ln.seconds / 1e3,
    unit: "krows/s",
    detail: detail(ln.reps),
  });
  // Embedding backward at the bigram's and the small GPT's token-embedding shapes: index build
  // and gather, with the ids fixed (a step samples new ones on the device; the cost is the same).
  for (const [B, T, V, C] of [[32, 8, 65, 65], [16, 32, 65, 64]]) {
    const ids = createTensor(
      gpu,
      [B, T],
      "u32",
      "ids",
      Uint32Array.from({ length: B * T }, (_, i) => (i * 7919) % V),
    );
    const dOut = await randomTensor(gpu, [B, T, C], "dOut");
    const dTable = createTensor(gpu, [V, C], "f32", "dTable");
    const eb = await timePerRep(
      gpu,
      floorMs,
      (rec) => embeddingBackward(rec, ids, dOut, dTable, false),
      dTable,
    );
    results.push({
      name: `embeddingBackward B=${B} T=${T} V=${V} C=${C}`,
      value: eb.seconds * 1e6,
      unit: "µs/call",
      detail: detail(eb.reps, ", 2 dispatches per call (index build, gather)"),
      trialsMs: trialsMs(eb),
    });
  }
  results.push({
    name: "readback latency subtracted from each trial",
    value: floorMs,
    unit: "ms",
    detail: `median of ${2 * TRIALS} empty readbacks`,
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
