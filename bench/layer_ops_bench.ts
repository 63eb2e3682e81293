/**
 * Layer-level ops before and after fusion, at the lecture GPT's shapes (B·T = 512 rows, C = 64,
 * FFN hidden 256, V = 65): forward + backward of one layer, in µs per call and dispatches per
 * call. "before" records the kernels the unfused graph ops recorded (matmul then a bias add,
 * a separate ReLU, a residual add then a layer norm whose gradient is copied to both summands,
 * logits then cross-entropy then a bias column sum); "after" records nn/layer_ops.ts.
 * Run: `deno run -A bench/layer_ops_bench.ts`.
 *
 * Method: one plan holds REPS repetitions of a layer (each with its own tensors, as a model's
 * layers have); a trial submits it SUBMITS times and reads back four bytes, which cannot
 * complete before the last dispatch. The figure is the median of TRIALS trials, less the median
 * latency of an empty readback, per repetition. Variants of one layer take turns trial by trial.
 * Also the process's CPU time per repetition (llvmpipe's threads run in this process): on a
 * machine shared with other jobs it moves far less than wall time.
 */
import process from "node:process";
import { type Activation } from "../kernels/activation.ts";
import { createCounters } from "../kernels/counters.ts";
import { crossEntropy } from "../kernels/cross_entropy.ts";
import { getGpu, type Gpu } from "../kernels/device.ts";
import { add, copy, relu, reluBackward } from "../kernels/elementwise.ts";
import { layerNorm, layerNormBackward } from "../kernels/layernorm.ts";
import { matmul } from "../kernels/matmul.ts";
import { fillUniform } from "../kernels/random_fill.ts";
import { type Plan, Recorder, runOnce } from "../kernels/program.ts";
import { colSum } from "../kernels/reduce.ts";
import { createTensor, readBytes, type Tensor } from "../kernels/tensor.ts";
import { Graph, Var } from "../nn/graph.ts";
import { addLayerNorm, classifierLoss, linear } from "../nn/layer_ops.ts";

const [M, C, H, V] = [512, 64, 256, 65];
const REPS = 8, SUBMITS = 8, TRIALS = 5;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** A tensor of U[-1, 1) values filled on the device. */
async function random(gpu: Gpu, shape: number[], name: string): Promise<Tensor> {
  const t = createTensor(gpu, shape, "f32", name);
  await runOnce(gpu, (rec) => fillUniform(rec, t, [3, shape.length], 0, -1, 1));
  return t;
}

/** Records one layer's forward and backward into `rec`; returns its last output. */
type Layer = (rec: Recorder) => Tensor;

interface Variant {
  name: string;
  plan: Plan;
  dispatches: number;
  probe: Tensor;
}

async function prepare(gpu: Gpu, name: string, layer: Layer): Promise<Variant> {
  const rec = new Recorder(gpu);
  let probe = layer(rec);
  for (let i = 1; i < REPS; i++) probe = layer(rec);
  const dispatches = rec.dispatches.length / REPS;
  const plan = await rec.finish();
  plan.submit(); // compiles and warms
  await readBytes(gpu, probe.buffer, probe.byteOffset, 4);
  return { name, plan, dispatches, probe };
}

/** Wall and CPU milliseconds of one trial. */
async function trialMs(
  gpu: Gpu,
  v: Variant | undefined,
  probe: Tensor,
): Promise<{ wall: number; cpu: number }> {
  const cpu0 = process.cpuUsage(), start = performance.now();
  for (let i = 0; v && i < SUBMITS; i++) v.plan.submit();
  await readBytes(gpu, probe.buffer, probe.byteOffset, 4);
  const cpu = process.cpuUsage(cpu0);
  return { wall: performance.now() - start, cpu: (cpu.user + cpu.system) / 1000 };
}

/** Wall and CPU µs per call of each variant, measured in alternation. */
async function measure(
  gpu: Gpu,
  variants: Variant[],
  floor: { wall: number; cpu: number },
): Promise<{ wall: number; cpu: number }[]> {
  const trials = variants.map((): { wall: number; cpu: number }[] => []);
  for (let t = 0; t < TRIALS; t++) {
    for (const [i, v] of variants.entries()) trials[i].push(await trialMs(gpu, v, v.probe));
  }
  const per = (ms: number) => (ms * 1000) / (REPS * SUBMITS);
  return trials.map((t) => ({
    wall: per(median(t.map((x) => x.wall)) - floor.wall),
    cpu: per(median(t.map((x) => x.cpu)) - floor.cpu),
  }));
}

/** A graph input or parameter: a device tensor whose gradient is wanted. */
const param = (t: Tensor) => new Var(t, true);

async function main(): Promise<void> {
  const gpu = await getGpu();
  const x = await random(gpu, [M, C], "x"), xh = await random(gpu, [M, H], "xh");
  const w1 = await random(gpu, [H, C], "w1"), b1 = await random(gpu, [H], "b1");
  const w2 = await random(gpu, [C, H], "w2"), b2 = await random(gpu, [C], "b2");
  const wv = await random(gpu, [V, C], "wv"), bv = await random(gpu, [V], "bv");
  const gamma = await random(gpu, [C], "gamma"), beta = await random(gpu, [C], "beta");
  const delta = await random(gpu, [M, C], "delta");
  const targets = createTensor(gpu, [M], "u32", "targets", new Uint32Array(M).map((_, i) => i % V));
  const sink = () => ({
    losses: createTensor(gpu, [1], "f32", "losses"),
    counters: createCounters(gpu, [1]),
    counterIndex: 0,
  });
  const t = (shape: number[], name: string) => createTensor(gpu, shape, "f32", name);

  // Upstream gradients arrive as a later layer leaves them, in a tensor of each repetition's
  // own: "before" allocates dy, "after" reads the one the graph allocates (no seeding dispatch
  // on either side).
  const linearBefore = (inF: number, outF: number, act: boolean): Layer => {
    const [xin, w, b] = inF === C ? [x, w1, b1] : [xh, w2, b2];
    return (rec) => {
      const dy = t([M, outF], "dy");
      const dX = t([M, inF], "dX");
      const prod = t([M, outF], "prod"), y = t([M, outF], "y"), z = t([M, outF], "z");
      const dPre = t([M, outF], "dPre"), dW = t([outF, inF], "dW"), db = t([outF], "db");
      matmul(rec, xin, w, prod, { transB: true });
      add(rec, prod, b, y);
      if (act) relu(rec, y, z);
      if (act) reluBackward(rec, y, dy, dPre);
      const d = act ? dPre : dy;
      colSum(rec, d, db);
      matmul(rec, d, xin, dW, { transA: true });
      matmul(rec, d, w, dX);
      return dX;
    };
  };
  const linearAfter = (inF: number, activation: Activation): Layer => {
    const xin = inF === C ? x : xh, [w, b] = inF === C ? [w1, b1] : [w2, b2];
    return (rec) => {
      const g = new Graph(rec, true);
      const xv = param(xin);
      g.gradTarget(linear(g, xv, param(w), param(b), { activation }));
      g.backward();
      return g.gradOf(xv)!;
    };
  };
  const residualBefore = (): Layer => {
    return (rec) => {
      const dd = t([M, C], "dd");
      const s = t([M, C], "s"), y = t([M, C], "y"), mean = t([M], "mean"), rstd = t([M], "rstd");
      const dS = t([M, C], "dS"), dx = t([M, C], "dx"), dG = t([C], "dG"), dB = t([C], "dB");
      add(rec, x, delta, s);
      layerNorm(rec, s, gamma, beta, y, mean, rstd);
      const dy = t([M, C], "dy");
      layerNormBackward(rec, s, gamma, mean, rstd, dy, dS, dG, dB, { accumulateX: true });
      copy(rec, dS, dx);
      copy(rec, dS, dd);
      return dd;
    };
  };
  const residualAfter = (): Layer => {
    return (rec) => {
      const g = new Graph(rec, true);
      const dv = param(delta);
      const r = addLayerNorm(g, param(x), dv, param(gamma), param(beta));
      g.gradTarget(r.sum); // the residual stream's own gradient, from later layers
      g.gradTarget(r.out);
      g.backward();
      return g.gradOf(dv)!;
    };
  };
  const headBefore = (): Layer => {
    return (rec) => {
      const dX = t([M, C], "dX");
      const prod = t([M, V], "prod"), logits = t([M, V], "logits");
      const dLogits = t([M, V], "dLogits"), dW = t([V, C], "dW"), db = t([V], "db");
      matmul(rec, x, wv, prod, { transB: true });
      add(rec, prod, bv, logits);
      crossEntropy(rec, { logits, targets, ...sink(), dLogits });
      matmul(rec, dLogits, x, dW, { transA: true });
      colSum(rec, dLogits, db);
      matmul(rec, dLogits, wv, dX);
      return dX;
    };
  };
  const headAfter = (): Layer => {
    return (rec) => {
      const g = new Graph(rec, true);
      const xv = param(x);
      classifierLoss(g, xv, param(wv), param(bv), g.constant(targets), sink());
      g.backward();
      return g.gradOf(xv)!;
    };
  };

  const floorProbe = t([4], "floor");
  const floors: { wall: number; cpu: number }[] = [];
  for (let i = 0; i < 2 * TRIALS; i++) floors.push(await trialMs(gpu, undefined, floorProbe));
  const floor = {
    wall: median(floors.map((f) => f.wall)),
    cpu: median(floors.map((f) => f.cpu)),
  };
  const groups: [string, [string, Layer][]][] = [
    [`FFN up: Linear ${C}→${H} + ReLU`, [
      ["before", linearBefore(C, H, true)],
      ["after", linearAfter(C, "relu")],
      ["after, GELU", linearAfter(C, "gelu")],
    ]],
    [`FFN down: Linear ${H}→${C} + bias`, [
      ["before", linearBefore(H, C, false)],
      ["after", linearAfter(H, "none")],
    ]],
    [`residual add + LayerNorm(${C})`, [["before", residualBefore()], ["after", residualAfter()]]],
    [`classifier ${C}→${V} + cross-entropy`, [["before", headBefore()], [
      "after",
      headAfter(),
    ]]],
  ];
  console.log(`rows ${M}; forward + backward of one layer per call`);
  for (const [title, variants] of groups) {
    const prepared: Variant[] = [];
    for (const [name, layer] of variants) prepared.push(await prepare(gpu, name, layer));
    const us = await measure(gpu, prepared, floor);
    console.log(title);
    prepared.forEach((v, i) => {
      console.log(
        `  ${v.name.padEnd(12)} ${us[i].wall.toFixed(0).padStart(6)} µs wall ` +
          `${us[i].cpu.toFixed(0).padStart(6)} µs CPU  ${v.dispatches} dispatches`,
      );
    });
  }
}

if (import.meta.main) await main();
