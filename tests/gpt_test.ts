/**
 * The gpt experiment and its modules: parameter names and shapes are gpt.py's state dict, head
 * groups are stored back to back and initialised as if registered alone, a Block's gradients
 * match float64 finite differences, a tiny gpt trains, and dropout runs reproduce bit for bit.
 */
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { createGpt, gpt, type GptConfig } from "../experiments/gpt.ts";
import { getGpu, type Gpu } from "../kernels/device.ts";
import { layerNormReference } from "../kernels/layernorm.ts";
import { matmulReference } from "../kernels/matmul.ts";
import { softmaxReference } from "../kernels/softmax.ts";
import { runOnce } from "../kernels/program.ts";
import { Block, type BlockOptions } from "../nn/transformer.ts";
import type { Graph } from "../nn/graph.ts";
import { ParamStore } from "../nn/params.ts";
import { assertChecked, gradCheck, type GradCheckSpec, hostTensors, randomIds } from "./support.ts";
import { createCounters } from "../kernels/counters.ts";
import { crossEntropyReference } from "../kernels/cross_entropy.ts";
import { embeddingForwardReference } from "../kernels/embedding.ts";
import { createTensor } from "../kernels/tensor.ts";
import { trainEveryStep } from "./training_support.ts";

const { host, nextSeed } = hostTensors(9200);

/** A gpt config with the tiny shapes the tests use. */
function tinyConfig(model: Partial<GptConfig["model"]> = {}, steps = 12): GptConfig {
  return gpt.schema.parse({
    train: { steps, batchSize: 2, blockSize: 4 },
    eval: { interval: steps, iters: 2 },
    sample: { tokens: 4 },
    model: { nEmbd: 8, nHead: 2, nLayer: 1, ...model },
  });
}

/** The state-dict names and shapes gpt.py's GPTLanguageModel has for these settings. */
function lectureStateDict(V: number, T: number, C: number, nHead: number, nLayer: number) {
  const hs = C / nHead;
  const out: [string, number[]][] = [
    ["token_embedding_table.weight", [V, C]],
    ["position_embedding_table.weight", [T, C]],
  ];
  for (let b = 0; b < nLayer; b++) {
    const p = `blocks.${b}`;
    for (let h = 0; h < nHead; h++) {
      for (const kind of ["key", "query", "value"]) {
        out.push([`${p}.sa.heads.${h}.${kind}.weight`, [hs, C]]);
      }
    }
    out.push([`${p}.sa.proj.weight`, [C, C]], [`${p}.sa.proj.bias`, [C]]);
    out.push([`${p}.ffwd.net.0.weight`, [4 * C, C]], [`${p}.ffwd.net.0.bias`, [4 * C]]);
    out.push([`${p}.ffwd.net.2.weight`, [C, 4 * C]], [`${p}.ffwd.net.2.bias`, [C]]);
    for (const ln of ["ln1", "ln2"]) out.push([`${p}.${ln}.weight`, [C]], [`${p}.${ln}.bias`, [C]]);
  }
  out.push(["ln_f.weight", [C]], ["ln_f.bias", [C]]);
  out.push(["lm_head.weight", [V, C]], ["lm_head.bias", [V]]);
  return out;
}

function namesAndShapes(gpu: Gpu, config: GptConfig, V: number): [string, number[]][] {
  const store = new ParamStore(gpu);
  createGpt(store, config, V);
  return store.finalize().map((p) => [p.name, p.shape]);
}

Deno.test("gpt: parameter names and shapes are gpt.py's state dict", async () => {
  const gpu = await getGpu();
  const sorted = (list: [string, number[]][]) =>
    [...list].sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
  const config = tinyConfig({ nEmbd: 12, nHead: 3, nLayer: 2 });
  deepEqual(sorted(namesAndShapes(gpu, config, 7)), sorted(lectureStateDict(7, 4, 12, 3, 2)));
  // The ladder's first steps: no projections, no norms, and (ffnMult 1, no residual) a
  // feed-forward of net.0 alone.
  const early = namesAndShapes(
    gpu,
    tinyConfig({ ffnMult: 1, residual: false, layerNorm: false }),
    7,
  ).map(([n]) => n);
  ok(early.includes("blocks.0.ffwd.net.0.weight"));
  for (const absent of ["sa.proj", "net.2", "ln1", "ln_f"]) {
    ok(!early.some((n) => n.includes(absent)), `no ${absent} in ${early.join(", ")}`);
  }
  const noFfn = namesAndShapes(gpu, tinyConfig({ ffnMult: 0 }), 7).map(([n]) => n);
  ok(!noFfn.some((n) => n.includes("ffwd")));
});

Deno.test("registerGroup: members back to back, one whole view, init as if registered alone", async () => {
  const gpu = await getGpu();
  // 3·6 = 18 floats per member: unaligned, so members 1 and 2 start inside an aligned block.
  const names = ["h.0.w", "h.1.w", "h.2.w"];
  const init = { kind: "normal", mean: 0, std: 1 } as const;
  const grouped = new ParamStore(gpu);
  grouped.register("before", [5], init);
  const group = grouped.registerGroup("h", names, [3, 6], init);
  grouped.register("after", [2, 2], init);
  grouped.finalize();
  const alone = new ParamStore(gpu);
  alone.register("before", [5], init);
  for (const n of names) alone.register(n, [3, 6], init);
  alone.register("after", [2, 2], init);
  alone.finalize();
  await runOnce(gpu, (rec) => {
    grouped.recordInit(rec, 42);
    alone.recordInit(rec, 42);
  });
  const a = await grouped.read(), b = await alone.read();
  for (const n of ["before", ...names, "after"]) deepEqual(a.get(n), b.get(n), n);
  const whole = group.whole();
  deepEqual(whole.shape, [9, 6]);
  const parts = group.parts.map((p) => p());
  parts.forEach((p, k) => equal(p.value.byteOffset, whole.value.byteOffset + k * 18 * 4));
  equal(whole.grad.byteOffset - grouped.arenas.grads.byteOffset, whole.value.byteOffset);
  ok(a.get("h.1.w")!.some((v) => v !== 0), "the unaligned member was filled");
});

/** x·Wᵀ (+ b) in float64 for x [M, in]. */
function linearRef(x: Float64Array, w: Float64Array, inF: number, b?: Float64Array) {
  const outF = w.length / inF;
  const y = matmulReference(x, [x.length / inF, inF], w, [outF, inF], { transB: true });
  return b ? y.map((v, i) => v + b[i % outF]) : y;
}

/** gpt.py's Block in float64 from its parameters (independent of the device modules). */
function blockRef(
  x: Float64Array,
  all: Record<string, Float64Array>,
  [B, T, C]: number[],
  o: BlockOptions,
  prefix = "blk",
) {
  // Parameters by their names below the block's prefix.
  const v = new Proxy(all, { get: (t, k) => t[String(k).replace(/^blk\./, `${prefix}.`)] });
  const hs = C / o.nHead;
  const ln = (x: Float64Array, n: string) =>
    o.layerNorm ? layerNormReference(x, v[`blk.${n}.weight`], v[`blk.${n}.bias`], C).out : x;
  const plus = (x: Float64Array, y: Float64Array) => o.residual ? x.map((a, i) => a + y[i]) : y;
  const h = ln(x, "ln1");
  const heads = new Float64Array(B * T * C);
  for (let head = 0; head < o.nHead; head++) {
    const w = (kind: string) => v[`blk.sa.heads.${head}.${kind}.weight`];
    const k = linearRef(h, w("key"), C), q = linearRef(h, w("query"), C);
    const val = linearRef(h, w("value"), C);
    const scores = matmulReference(q, [B, T, hs], k, [B, T, hs], { transB: true });
    const wei = softmaxReference(scores, T, T, { causal: true, scale: 1 / Math.sqrt(hs) });
    const out = matmulReference(wei, [B, T, T], val, [B, T, hs]);
    for (let r = 0; r < B * T; r++) {
      for (let j = 0; j < hs; j++) heads[r * C + head * hs + j] = out[r * hs + j];
    }
  }
  const sa = o.residual
    ? linearRef(heads, v["blk.sa.proj.weight"], C, v["blk.sa.proj.bias"])
    : heads;
  x = plus(x, sa);
  if (o.ffnMult === 0) return x;
  const hidden = linearRef(ln(x, "ln2"), v["blk.ffwd.net.0.weight"], C, v["blk.ffwd.net.0.bias"])
    .map((a) => Math.max(a, 0));
  const proj = v["blk.ffwd.net.2.weight"];
  const f = proj ? linearRef(hidden, proj, o.ffnMult * C, v["blk.ffwd.net.2.bias"]) : hidden;
  return plus(x, f);
}

Deno.test("Block: forward matches float64 and gradients match finite differences", async () => {
  const gpu = await getGpu();
  const cases: [number[], Partial<BlockOptions>][] = [
    // The full gpt.py block, heads of 3 (unaligned head groups).
    [[2, 4, 6], { nHead: 2, ffnMult: 2, residual: true, layerNorm: true }],
    // The ladder's early block: no residual, no norms, net.0 + ReLU alone.
    [[1, 3, 4], { nHead: 2, ffnMult: 1, residual: false, layerNorm: false }],
  ];
  const specs: GradCheckSpec[] = cases.map(([[B, T, C], partial]) => {
    const opts: BlockOptions = {
      nEmbd: C,
      nHead: 2,
      dropout: 0,
      ffnMult: 4,
      residual: true,
      layerNorm: true,
      init: "pytorch",
      ...partial,
    };
    const store = new ParamStore(gpu);
    const block = new Block(store, "blk", opts);
    const params = new Map<string, Float32Array>();
    for (const p of store.finalize()) {
      const t = host(p.shape, 0.5);
      // LayerNorm weights near 1, as trained ones are.
      params.set(
        p.name,
        p.name.endsWith("ln1.weight") || p.name.endsWith("ln2.weight")
          ? t.data.map((a) => 1 + a)
          : t.data,
      );
    }
    return {
      name: `Block(C=${C}, ${JSON.stringify(partial)}) on x [${B}, ${T}, ${C}]`,
      inputs: { x: host([B, T, C]) },
      store,
      params,
      forward: (g, { x }) => block.call(g, x),
      reference: (v) => blockRef(v.x, v, [B, T, C], opts),
    };
  });
  void nextSeed;
  assertChecked(await gradCheck(gpu, specs));
});

Deno.test("gpt: logits and the fused loss match float64, gradients match finite differences", async () => {
  const gpu = await getGpu();
  const [B, T, C, V, nLayer] = [2, 4, 8, 5, 2];
  const config = tinyConfig({ nEmbd: C, nHead: 2, nLayer, ffnMult: 2 });
  config.train.blockSize = T;
  // One store per spec: the specs run in one plan, and each needs its own grad arena.
  const build = () => {
    const store = new ParamStore(gpu);
    const model = createGpt(store, config, V);
    return { store, model, names: store.finalize().map((p) => [p.name, p.shape] as const) };
  };
  const [a, b] = [build(), build()];
  const params = new Map<string, Float32Array>();
  for (const [name, shape] of a.names) {
    // Attention weights of amplitude 1 (and C = 8, T = 4) keep the second block's query and
    // key gradients well above f32 rounding; at 0.5 with C = 4 they were ~1e-4 of the largest.
    const t = host([...shape], name.includes(".heads.") ? 1 : 0.5);
    params.set(name, /ln.*\.weight$/.test(name) ? t.data.map((x) => 1 + x) : t.data);
  }
  const idx = randomIds(B * T, V, nextSeed()), targets = randomIds(B * T, V, nextSeed());
  const ids = (g: Graph, data: Uint32Array) =>
    g.constant(createTensor(gpu, [B, T], "u32", "ids", data));
  const opts: BlockOptions = { ...config.model, dropout: 0 };
  const logitsRef = (v: Record<string, Float64Array>) => {
    const tok = embeddingForwardReference(v["token_embedding_table.weight"], idx, V, C);
    const pos = v["position_embedding_table.weight"];
    let x: Float64Array = tok.map((a, i) => a + pos[i % (T * C)]);
    for (let b = 0; b < nLayer; b++) x = blockRef(x, v, [B, T, C], opts, `blocks.${b}`);
    x = layerNormReference(x, v["ln_f.weight"], v["ln_f.bias"], C).out;
    return linearRef(x, v["lm_head.weight"], C, v["lm_head.bias"]);
  };
  const specs: GradCheckSpec[] = [{
    name: "gpt forward (logits)",
    store: a.store,
    params,
    forward: (g) => a.model.forward(g, ids(g, idx)),
    reference: logitsRef,
  }, {
    name: "gpt forwardLoss (fused classifier)",
    store: b.store,
    params,
    forward: (g) => {
      const losses = createTensor(gpu, [1], "f32", "losses");
      const sink = { losses, counters: createCounters(gpu, [1]), counterIndex: 0 };
      b.model.forwardLoss!(g, ids(g, idx), ids(g, targets), sink);
      return { loss: losses };
    },
    reference: (v) => [crossEntropyReference(logitsRef(v), targets, B * T, V).loss],
  }];
  assertChecked(await gradCheck(gpu, specs));
});

/** Tiny token splits over a vocabulary of 6. */
function tinyData() {
  const text = Uint32Array.from({ length: 400 }, (_, i) => (i * 7 + (i >> 3)) % 6);
  return { trainTokens: text.slice(0, 360), valTokens: text.slice(360), vocabSize: 6 };
}

Deno.test("gpt: a tiny model trains, and dropout runs reproduce bit for bit", async () => {
  const data = tinyData();
  const run = (model: Partial<GptConfig["model"]>, seed = 3) =>
    trainEveryStep({ experiment: gpt, config: tinyConfig(model), seed, ...data });
  const plain = await run({});
  equal(plain.outcome.status, "ok");
  equal(plain.outcome.path, "graph");
  const first = plain.outcome.curve[0].train!, last = plain.outcome.curve.at(-1)!.train!;
  ok(last < first - 0.1, `loss fell from ${first} to ${last}`);

  const dropped = await run({ dropout: 0.1 });
  const again = await run({ dropout: 0.1 });
  deepEqual(again.losses, dropped.losses);
  equal(again.outcome.paramsSha256, dropped.outcome.paramsSha256);
  // Dropout is active in training (the losses move) and the seed picks the masks.
  notEqual(dropped.outcome.paramsSha256, plain.outcome.paramsSha256);
  notEqual(dropped.losses[0], plain.losses[0]);
  const otherSeed = await run({ dropout: 0.1 }, 4);
  notEqual(otherSeed.outcome.paramsSha256, dropped.outcome.paramsSha256);
});
