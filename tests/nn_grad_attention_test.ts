/**
 * nn.causalSelfAttention through the Graph tape as training runs it: forward against the
 * float64 reference, gradients of q, k, v against central finite differences, with dropout of
 * the weights, with an earlier gradient contribution (accumulate) and with one input passed
 * as two operands.
 */
import { ok, throws } from "node:assert/strict";
import { attentionDropoutMask, attentionReference } from "../kernels/attention.ts";
import { createCounters } from "../kernels/counters.ts";
import { getGpu } from "../kernels/device.ts";
import { streamKey } from "../kernels/philox.ts";
import { Recorder } from "../kernels/program.ts";
import { createTensor, ShapeError } from "../kernels/tensor.ts";
import { add } from "../nn/elementwise_ops.ts";
import { causalSelfAttention, causalSelfAttentionQkv } from "../nn/attention.ts";
import { Graph, Var } from "../nn/graph.ts";
import {
  assertChecked,
  gradCheck,
  type GradCheckSpec,
  type HostTensor,
  hostTensors,
} from "./support.ts";

const { host } = hostTensors(900);

function spec(
  [B, T, nHead, headSize]: number[],
  opts: { p?: number; sameQK?: boolean; plusQ?: boolean; scale?: number } = {},
): GradCheckSpec {
  const C = nHead * headSize;
  const shape = { B, T, nHead, headSize, scale: opts.scale };
  const counter = 11, callIndex = 3, key = streamKey(42, "dropout");
  const mask = opts.p ? attentionDropoutMask(shape, opts.p, key, counter, callIndex) : undefined;
  const inputs: Record<string, HostTensor> = opts.sameQK
    ? { x: host([B, T, C], 1.5), v: host([B, T, C]) }
    : { q: host([B, T, C], 1.5), k: host([B, T, C], 1.5), v: host([B, T, C]) };
  return {
    name: `causalSelfAttention [${B}, ${T}, ${nHead}×${headSize}] ${JSON.stringify(opts)}`,
    inputs,
    forward: (g, x) => {
      const dropout = opts.p
        ? { p: opts.p, key, counters: createCounters(g.gpu, [counter]), counterIndex: 0, callIndex }
        : undefined;
      const [q, k] = opts.sameQK ? [x.x, x.x] : [x.q, x.k];
      const y = causalSelfAttention(g, q, k, x.v, { nHead, scale: opts.scale, dropout });
      return opts.plusQ ? add(g, y, q) : y;
    },
    reference: (x) => {
      const [q, k] = opts.sameQK ? [x.x, x.x] : [x.q, x.k];
      const y = attentionReference(q, k, x.v, shape, mask).out;
      return opts.plusQ ? y.map((o, i) => o + q[i]) : y;
    },
  };
}

Deno.test("nn.causalSelfAttention: forward and gradients of q, k, v against finite differences", async () => {
  const gpu = await getGpu();
  const results = await gradCheck(gpu, [
    spec([2, 5, 2, 3]),
    spec([1, 8, 2, 4], { scale: 0.3 }),
    spec([2, 6, 3, 2], { p: 0.4 }),
    spec([1, 7, 1, 4], { plusQ: true }),
    spec([2, 4, 2, 2], { sameQK: true }),
  ]);
  assertChecked(results);
  // The dropout case must drop some weights and keep others.
  const mask = attentionDropoutMask(
    { B: 2, T: 6, nHead: 3, headSize: 2 },
    0.4,
    streamKey(42, "dropout"),
    11,
    3,
  );
  const kept = mask.filter((m) => m !== 0).length;
  ok(kept > 0 && kept < (2 * 3 * 6 * 7) / 2, `kept ${kept}`);
});

/** q, k, v of a fused [B, T, 3C] array. */
function split(qkv: Float64Array, C: number): Float64Array[] {
  return [0, 1, 2].map((i) => qkv.filter((_, e) => Math.floor((e % (3 * C)) / C) === i));
}

/** causalSelfAttentionQkv, used once or twice (the second use adds to qkv's gradient). */
function qkvSpec([B, T, nHead, headSize]: number[], twice: boolean): GradCheckSpec {
  const C = nHead * headSize, shape = { B, T, nHead, headSize };
  return {
    name: `causalSelfAttentionQkv [${B}, ${T}, 3·${nHead}×${headSize}]${twice ? " twice" : ""}`,
    inputs: { qkv: host([B, T, 3 * C], 1.5) },
    forward: (g, { qkv }) => {
      const y = causalSelfAttentionQkv(g, qkv, { nHead });
      return twice ? add(g, y, causalSelfAttentionQkv(g, qkv, { nHead, scale: 0.9 })) : y;
    },
    reference: ({ qkv }) => {
      const [q, k, v] = split(qkv, C);
      const y = attentionReference(q, k, v, shape).out;
      if (!twice) return y;
      const z = attentionReference(q, k, v, { ...shape, scale: 0.9 }).out;
      return y.map((o, i) => o + z[i]);
    },
  };
}

Deno.test("nn.causalSelfAttentionQkv: q, k, v read from and gradients written to one fused tensor", async () => {
  const gpu = await getGpu();
  assertChecked(await gradCheck(gpu, [qkvSpec([2, 5, 2, 4], false), qkvSpec([1, 6, 3, 1], true)]));
});

Deno.test("nn.causalSelfAttention refuses operands of different shapes", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const g = new Graph(rec, true);
  const v = (shape: number[]) => new Var(createTensor(gpu, shape, "f32", "x"), true);
  throws(
    () => causalSelfAttention(g, v([1, 4, 8]), v([1, 4, 8]), v([1, 5, 8]), { nHead: 2 }),
    ShapeError,
  );
  throws(() => causalSelfAttention(g, v([4, 8]), v([4, 8]), v([4, 8]), { nHead: 2 }), ShapeError);
  await rec.finish();
});
