/**
 * µs per call of causal multi-head attention, forward and backward, at the lecture's shapes:
 * the batched-head kernels of kernels/attention.ts (one dispatch each way) against what
 * nn/modules.ts's Head records for every head separately (q·kᵀ matmul, causal softmax,
 * weights·v matmul forward; five matmul/softmax dispatches backward).
 * Run: `deno run -A bench/attention_bench.ts`. Method as bench/kernels_bench.ts (calibrated
 * plans of many repetitions, median of five trials timed to a readback, floor subtracted).
 */
import { attentionBackward, attentionForward } from "../kernels/attention.ts";
import { getGpu, type Gpu } from "../kernels/device.ts";
import { matmul } from "../kernels/matmul.ts";
import type { Recorder } from "../kernels/program.ts";
import { softmax, softmaxBackward } from "../kernels/softmax.ts";
import { createTensor, type Tensor } from "../kernels/tensor.ts";
import { randomTensor, readbackFloorMs, timePerRep } from "./kernels_bench.ts";

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

/** Per head: the dispatches the graph records for Head.call and its backward. */
async function perHeadOps(gpu: Gpu, { B, T, nHead, headSize }: Shape) {
  const heads = [];
  for (let h = 0; h < nHead; h++) {
    const shape = [B, T, headSize];
    const [q, k, v, dOut] = await Promise.all(
      ["q", "k", "v", "dOut"].map((n) => randomTensor(gpu, shape, n)),
    );
    const t = (s: number[], name: string) => createTensor(gpu, s, "f32", name);
    heads.push({
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
    });
  }
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
  { label: "lecture big (batch 4 of 64)", shape: { B: 4, T: 256, nHead: 6, headSize: 64 } },
];

if (import.meta.main) {
  const gpu = await getGpu();
  console.log(`adapter: ${gpu.adapter.description || gpu.adapter.vendor}`);
  const floorMs = await readbackFloorMs(gpu);
  for (const { label, shape } of shapes) {
    const paths = [["batched", await batchedOps(gpu, shape)], [
      "per head",
      await perHeadOps(gpu, shape),
    ]] as const;
    for (const [path, ops] of paths) {
      const row = [];
      for (const dir of ["forward", "backward"] as const) {
        const op = ops[dir];
        const timing = await timePerRep(gpu, floorMs, op.record, op.out);
        row.push(`${dir} ${(timing.seconds * 1e6).toFixed(0).padStart(7)} µs`);
      }
      const s = shape;
      console.log(
        `${label.padEnd(28)} [B ${s.B}, T ${s.T}, ${s.nHead}×${s.headSize}] ` +
          `${path.padEnd(9)} ${row.join("  ")}`,
      );
    }
  }
}
