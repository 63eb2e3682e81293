/**
 * examples/silu.ts, the README's user-defined op: its kernels against the float64 references
 * (forward, backward, accumulating backward), the graph op against finite differences where
 * its input is used twice (so the backward must accumulate), and its model trains.
 */
import { ok } from "node:assert/strict";
import {
  silu,
  siluBackward,
  siluBackwardReference,
  siluForward,
  siluMlp,
  siluReference,
} from "../examples/silu.ts";
import { getGpu } from "../kernels/device.ts";
import { runOnce } from "../kernels/program.ts";
import { createTensor, readF32 } from "../kernels/tensor.ts";
import { mul } from "../nn/elementwise_ops.ts";
import { assertChecked, gradCheck, hostTensors, randomF32, relError } from "./support.ts";
import { trainEveryStep } from "./training_support.ts";

const { host } = hostTensors(9300);

Deno.test("example op silu: kernels match the float64 references", async () => {
  const gpu = await getGpu();
  // 1,031 elements: not a multiple of the workgroup size; values up to ±12 reach σ's tails.
  const n = 1031;
  const xs = randomF32(n, 1, 12), dys = randomF32(n, 2), prior = randomF32(n, 3);
  const x = createTensor(gpu, [n], "f32", "x", xs);
  const dy = createTensor(gpu, [n], "f32", "dy", dys);
  const y = createTensor(gpu, [n], "f32", "y");
  const dx = createTensor(gpu, [n], "f32", "dx");
  const dxAcc = createTensor(gpu, [n], "f32", "dxAcc", prior);
  await runOnce(gpu, (rec) => {
    siluForward(rec, x, y);
    siluBackward(rec, x, dy, dx, false);
    siluBackward(rec, x, dy, dxAcc, true);
  });
  const wantDx = siluBackwardReference(xs, dys);
  ok(relError(await readF32(y), siluReference(xs)) < 1e-6, "forward");
  ok(relError(await readF32(dx), wantDx) < 1e-6, "backward");
  ok(relError(await readF32(dxAcc), wantDx.map((v, i) => v + prior[i])) < 1e-6, "accumulate");
});

Deno.test("example op silu: gradients match finite differences, and its model trains", async () => {
  const gpu = await getGpu();
  assertChecked(
    await gradCheck(gpu, [{
      name: "silu(x) ⊙ x (x used twice)",
      inputs: { x: host([3, 5], 2) },
      forward: (g, { x }) => mul(g, silu(g, x), x),
      reference: (v) => siluReference(v.x).map((s, i) => s * v.x[i]),
    }]),
  );
  const text = Uint32Array.from({ length: 300 }, (_, i) => (i * 5 + (i >> 2)) % 7);
  const config = siluMlp.schema.parse({
    train: { steps: 30, batchSize: 4, blockSize: 4 },
    eval: { interval: 30, iters: 2 },
    sample: { tokens: 2 },
    model: { nEmbd: 8, hidden: 16 },
  });
  const run = await trainEveryStep({
    experiment: siluMlp,
    config,
    vocabSize: 7,
    seed: 1,
    trainTokens: text.slice(0, 260),
    valTokens: text.slice(260),
  });
  const [first, last] = [run.outcome.curve[0].train!, run.outcome.curve.at(-1)!.train!];
  ok(last < first - 0.2, `loss fell from ${first} to ${last}`);
});
