/**
 * µs per call of causal multi-head attention, forward and backward, at the lecture's shapes:
 * the batched-head kernels of kernels/attention.ts (one dispatch each way) against what
 * nn/modules.ts's Head records for every head separately (q·kᵀ matmul, causal softmax,
 * weights·v matmul forward; five matmul/softmax dispatches backward).
 * Run: `deno run -A bench/attention_bench.ts` (method at perCall).
 */
import { attentionBackward, attentionForward } from "../kernels/attention.ts";
import { getGpu, type Gpu } from "../kernels/device.ts";
import { matmul } from "../kernels/matmul.ts";
import { type Plan, Recorder } from "../kernels/program.ts";
import { softmax, softmaxBackward } from "../kernels/softmax.ts";
import { createTensor, readBytes, type Tensor } from "../kernels/tensor.ts";
import { randomTensor, readbackFloorMs } from "./kernels_bench.ts";

interface Shape {
  B: number;
  T: number;
  nHead: number;
  headSize: number;
}

/** A recorded op and the tensor whose readback ends its timing. */
interface Op {
  record: (rec: Recorder) => void;
  out: Tensor;
}

async function batchedOps(gpu: Gpu, { B, T, nHead, headSize }: Shape) {
  const shape = [B, T, nHead * headSize];
  const [q, k, v, dOut] = await Promise.all(
    ["q", "k", "v", "dOut"].map((n) => randomTensor(gpu, shape, n)),
  );
  const t = (name: string) => createTensor(gpu, shape, "f32", name);
  const out = t("out"), dq = t("dq"), dk = t("dk"), dv = t("dv");
  const lse = createTensor(gpu, [B, nHead, T], "f32", "lse");
  const args = { q, k, v, out, lse, nHead, dOut, dq, dk, dv };
  const forward: Op = { record: (rec) => attentionForward(rec, args), out };
  const backward: Op = { record: (rec) => attentionBackward(rec, args), out: dv };
  return { forward, backward };
}

/** One head's tensors on the per-head path. */
async function headTensors(gpu: Gpu, { B, T, headSize }: Shape) {
  const shape = [B, T, headSize];
  const [q, k, v, dOut] = await Promise.all(
    ["q", "k", "v", "dOut"].map((n) => randomTensor(gpu, shape, n)),
  );
  const t = (s: number[], name: string) => createTensor(gpu, s, "f32", name);
  return {
    q,
    k,
    v,
    dOut,
    scores: t([B, T, T], "scores"),
    wei: t([B, T, T], "wei"),
    out: t(shape, "out"),
    dWei: t([B, T, T], "dWei"),
    dScores: t([B, T, T], "dScores"),
    dq: t(shape, "dq"),
    dk: t(shape, "dk"),
    dv: t(shape, "dv"),
  };
}

/** Per head: the dispatches the graph records for Head.call and its backward. */
async function perHeadOps(gpu: Gpu, s: Shape) {
  const { nHead, headSize } = s;
  const heads: Awaited<ReturnType<typeof headTensors>>[] = [];
  for (let h = 0; h < nHead; h++) heads.push(await headTensors(gpu, s));
  const scale = 1 / Math.sqrt(headSize);
  const forward: Op = {
    record: (rec) => {
      for (const h of heads) {
        matmul(rec, h.q, h.k, h.scores, { transB: true });
        softmax(rec, h.scores, h.wei, { causal: true, scale });
        matmul(rec, h.wei, h.v, h.out);
      }
    },
    out: heads[nHead - 1].out,
  };
  const backward: Op = {
    record: (rec) => {
      for (const h of heads) {
        matmul(rec, h.dOut, h.v, h.dWei, { transB: true });
        matmul(rec, h.wei, h.dOut, h.dv, { transA: true });
        softmaxBackward(rec, h.wei, h.dWei, h.dScores, { scale });
        matmul(rec, h.dScores, h.k, h.dq);
        matmul(rec, h.dScores, h.q, h.dk, { transA: true });
      }
    },
    out: heads[nHead - 1].dk,
  };
  return { forward, backward };
}

const shapes: { label: string; shape: Shape }[] = [
  { label: "gpt default", shape: { B: 16, T: 32, nHead: 4, headSize: 16 } },
  { label: "lecture small", shape: { B: 32, T: 8, nHead: 4, headSize: 8 } },
  { label: "lecture big, batch 4 of 64", shape: { B: 4, T: 256, nHead: 6, headSize: 64 } },
];

/** This process's CPU time in ms (llvmpipe's threads included), from /proc/self/stat. */
function cpuMs(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 1000 / 100;
}

/**
 * Wall and CPU µs per call: a plan of `reps` calls grown until a submission takes ≥ 0.3 s,
 * then the median of three submissions timed to a readback (the empty readback's latency
 * subtracted from the wall time). CPU time is what a loaded machine (other processes on its
 * two cores) distorts least; wall time is what a training step pays.
 */
async function perCall(gpu: Gpu, floorMs: number, op: Op) {
  const planOf = async (reps: number) => {
    const rec = new Recorder(gpu);
    for (let i = 0; i < reps; i++) op.record(rec);
    return await rec.finish();
  };
  const time = async (plan: Plan) => {
    const wall = performance.now(), cpu = cpuMs();
    plan.submit();
    await readBytes(gpu, op.out.buffer, op.out.byteOffset, 4);
    return { wall: performance.now() - wall - floorMs, cpu: cpuMs() - cpu };
  };
  let reps = 1, plan = await planOf(reps);
  await time(plan); // compiles and warms up
  while ((await time(plan)).wall < 300 && reps < 4096) plan = await planOf(reps *= 4);
  const trials = [await time(plan), await time(plan), await time(plan)];
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[1];
  return {
    wall: (median(trials.map((t) => t.wall)) * 1000) / reps,
    cpu: (median(trials.map((t) => t.cpu)) * 1000) / reps,
  };
}

if (import.meta.main) {
  const gpu = await getGpu();
  console.log(`adapter: ${gpu.adapter.description || gpu.adapter.vendor}`);
  console.log("µs per call, wall (CPU time of this process in brackets)");
  const floorMs = await readbackFloorMs(gpu);
  for (const { label, shape } of shapes) {
    const paths = [
      ["batched", await batchedOps(gpu, shape)],
      ["per head", await perHeadOps(gpu, shape)],
    ] as const;
    for (const [path, ops] of paths) {
      const row = [];
      for (const dir of ["forward", "backward"] as const) {
        const t = await perCall(gpu, floorMs, ops[dir]);
        row.push(`${dir} ${t.wall.toFixed(0).padStart(7)} (${t.cpu.toFixed(0).padStart(7)})`);
      }
      const s = shape;
      console.log(
        `${label.padEnd(27)} [B ${s.B}, T ${s.T}, ${s.nHead}×${s.headSize}] ${path.padEnd(8)} ` +
          row.join("  "),
      );
    }
  }
}
