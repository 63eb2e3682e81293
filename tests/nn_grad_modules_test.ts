/**
 * The modules (Linear, Embedding, TokenAndPosition, Head) and a whole single-head language
 * model checked the same way as the ops: device forward against float64, device gradients in
 * the parameter arena against central finite differences. Also: a value or parameter used more
 * than once sums every contribution, and replaying a recorded step overwrites its gradients
 * instead of adding to the previous replay's.
 */
import { deepEqual, ok } from "node:assert/strict";
import { createCounters } from "../kernels/counters.ts";
import { crossEntropyReference } from "../kernels/cross_entropy.ts";
import { getGpu, type Gpu } from "../kernels/device.ts";
import { embeddingForwardReference } from "../kernels/embedding.ts";
import { layerNormReference } from "../kernels/layernorm.ts";
import { matmulReference } from "../kernels/matmul.ts";
import { softmaxReference } from "../kernels/softmax.ts";
import { createTensor } from "../kernels/tensor.ts";
import { add } from "../nn/elementwise_ops.ts";
import { layerNorm } from "../nn/normalization_ops.ts";
import { matmul } from "../nn/matmul_ops.ts";
import type { Graph, Var } from "../nn/graph.ts";
import { Embedding, Head, Linear, TokenAndPosition } from "../nn/modules.ts";
import { crossEntropyLoss, embedding } from "../nn/ops.ts";
import { ParamStore } from "../nn/params.ts";
import { assertChecked, gradCheck, type GradCheckSpec, hostTensors, randomIds } from "./support.ts";

const { host, nextSeed, reseed } = hostTensors(500);

/** A finalised store with random values (not the init) for every parameter. */
function storeWith(gpu: Gpu, build: (store: ParamStore) => void) {
  const store = new ParamStore(gpu);
  build(store);
  const params = new Map<string, Float32Array>();
  for (const p of store.finalize()) params.set(p.name, host(p.shape).data);
  return { store, params };
}

function ids(g: Graph, shape: number[], values: Uint32Array): Var {
  return g.constant(createTensor(g.gpu, shape, "u32", "ids", values));
}

/** x·Wᵀ (+ b) in float64 for x [M, in]. */
function linearRef(x: Float64Array, w: Float64Array, inF: number, b?: Float64Array) {
  const outF = w.length / inF;
  const y = matmulReference(x, [x.length / inF, inF], w, [outF, inF], { transB: true });
  return b ? y.map((v, i) => v + b[i % outF]) : y;
}

/** Causal single-head attention in float64 from its parts (independent of the device graph). */
function headRef(
  x: Float64Array,
  v: Record<string, Float64Array>,
  name: string,
  [B, T, C]: number[],
  hs: number,
): Float64Array {
  const k = linearRef(x, v[`${name}.key.weight`], C);
  const q = linearRef(x, v[`${name}.query.weight`], C);
  const val = linearRef(x, v[`${name}.value.weight`], C);
  const scores = matmulReference(q, [B, T, hs], k, [B, T, hs], { transB: true });
  const wei = softmaxReference(scores, T, T, { causal: true, scale: 1 / Math.sqrt(hs) });
  return matmulReference(wei, [B, T, T], val, [B, T, hs]);
}

/** Token + position embeddings in float64. */
function embedRef(v: Record<string, Float64Array>, idx: Uint32Array, T: number, C: number) {
  const V = v["token_embedding_table.weight"].length / C;
  const tok = embeddingForwardReference(v["token_embedding_table.weight"], idx, V, C);
  const pos = v["position_embedding_table.weight"];
  return tok.map((t, i) => t + pos[i % (T * C)]);
}

Deno.test("modules: Linear, Embedding, TokenAndPosition and Head match float64 and finite differences", async () => {
  const gpu = await getGpu();
  const specs: GradCheckSpec[] = [];
  {
    let lin!: Linear;
    const { store, params } = storeWith(gpu, (s) => lin = new Linear(s, "lin", 5, 3));
    specs.push({
      name: "Linear(5 → 3) with bias on x [2, 3, 5]",
      inputs: { x: host([2, 3, 5]) },
      store,
      params,
      forward: (g, { x }) => lin.call(g, x),
      reference: (v) => linearRef(v.x, v["lin.weight"], 5, v["lin.bias"]),
    });
  }
  {
    let lin!: Linear;
    const { store, params } = storeWith(gpu, (s) => lin = new Linear(s, "nobias", 4, 6, false));
    specs.push({
      name: "Linear(4 → 6) without bias on x [3, 4]",
      inputs: { x: host([3, 4]) },
      store,
      params,
      forward: (g, { x }) => lin.call(g, x),
      reference: (v) => linearRef(v.x, v["nobias.weight"], 4),
    });
  }
  {
    let emb!: Embedding;
    const { store, params } = storeWith(gpu, (s) => emb = new Embedding(s, "emb", 5, 3));
    const idx = randomIds(8, 5, nextSeed());
    specs.push({
      name: "Embedding(5, 3) at ids [2, 4]",
      store,
      params,
      forward: (g) => emb.call(g, ids(g, [2, 4], idx)),
      reference: (v) => embeddingForwardReference(v["emb.weight"], idx, 5, 3),
    });
  }
  {
    // T = 4 of blockSize 5: the last position row gets no gradient (and must get zero).
    const [B, T, V, C] = [3, 4, 6, 4];
    let embed!: TokenAndPosition;
    const { store, params } = storeWith(gpu, (s) => embed = new TokenAndPosition(s, V, 5, C));
    const idx = randomIds(B * T, V, nextSeed());
    specs.push({
      name: `TokenAndPosition(V=${V}, block 5, C=${C}) at ids [${B}, ${T}]`,
      store,
      params,
      forward: (g) => embed.call(g, ids(g, [B, T], idx)),
      reference: (v) => embedRef(v, idx, T, C),
    });
  }
  for (const [B, T, C, hs] of [[2, 4, 6, 4], [1, 5, 3, 2], [2, 3, 8, 8], [2, 1, 3, 2]]) {
    let head!: Head;
    const { store, params } = storeWith(gpu, (s) => head = new Head(s, "h", C, hs));
    specs.push({
      name: `Head(C=${C}, headSize=${hs}) on x [${B}, ${T}, ${C}]`,
      inputs: { x: host([B, T, C]) },
      store,
      params,
      // x feeds key, query and value: its gradient is the sum of three contributions.
      forward: (g, { x }) => head.call(g, x),
      reference: (v) => headRef(v.x, v, "h", [B, T, C], hs),
      // With one position the attention weight is 1 whatever the scores: no gradient flows
      // to key or query.
      zeroGrads: T === 1 ? ["h.key.weight", "h.query.weight"] : undefined,
    });
  }
  const results = await gradCheck(gpu, specs);
  assertChecked(results);
  const tp = results.find((r) => r.name.startsWith("TokenAndPosition"))!;
  const pos = tp.grads["position_embedding_table.weight"];
  ok(pos.subarray(4 * 4).every((v) => v === 0), "an unused position row has zero gradient");
});

/** The attention_head experiment's model, built from the modules, ending in cross-entropy. */
function languageModelSpec(gpu: Gpu, [B, T, V, C, hs]: number[]): GradCheckSpec {
  let embed!: TokenAndPosition, head!: Head, lmHead!: Linear;
  const { store, params } = storeWith(gpu, (s) => {
    embed = new TokenAndPosition(s, V, T, C);
    head = new Head(s, "sa_head", C, hs);
    lmHead = new Linear(s, "lm_head", hs, V);
  });
  const idx = randomIds(B * T, V, nextSeed()), targets = randomIds(B * T, V, nextSeed());
  return {
    name: `embed → head → lm_head → cross-entropy (B=${B}, T=${T}, V=${V}, C=${C}, hs=${hs})`,
    store,
    params,
    forward: (g) => {
      const logits = lmHead.call(g, head.call(g, embed.call(g, ids(g, [B, T], idx))));
      const losses = createTensor(gpu, [1], "f32", "losses");
      crossEntropyLoss(g, logits, ids(g, [B, T], targets), {
        losses,
        counters: createCounters(gpu, [1]),
        counterIndex: 0,
      });
      return { loss: losses };
    },
    reference: (v) => {
      const x = embedRef(v, idx, T, C);
      const h = headRef(x, v, "sa_head", [B, T, C], hs);
      const logits = linearRef(h, v["lm_head.weight"], hs, v["lm_head.bias"]);
      return [crossEntropyReference(logits, targets, B * T, V).loss];
    },
  };
}

Deno.test("the single-head language model's loss gradient matches finite differences", async () => {
  const gpu = await getGpu();
  assertChecked(
    await gradCheck(gpu, [
      languageModelSpec(gpu, [2, 4, 5, 4, 4]),
      languageModelSpec(gpu, [
        1,
        3,
        7,
        6,
        3,
      ]),
    ]),
  );
});

/** Specs where one value or parameter is used more than once in the graph. */
function sharedUseSpecs(gpu: Gpu): GradCheckSpec[] {
  const specs: GradCheckSpec[] = [];
  {
    // A square Linear applied twice: W and b each get two contributions.
    let lin!: Linear;
    const { store, params } = storeWith(gpu, (s) => lin = new Linear(s, "twice", 4, 4));
    specs.push({
      name: "Linear applied twice, lin(lin(x))",
      inputs: { x: host([2, 3, 4]) },
      store,
      params,
      forward: (g, { x }) => lin.call(g, lin.call(g, x)),
      reference: (v) => {
        const once = linearRef(v.x, v["twice.weight"], 4, v["twice.bias"]);
        return linearRef(once, v["twice.weight"], 4, v["twice.bias"]);
      },
    });
  }
  {
    // Tied embedding: the table gathers rows, then scores them (matmul with the shared
    // [V, C] table against batched [B, T, C] rows: the batch-summed gradient path).
    const [B, T, V, C] = [2, 3, 5, 4];
    let emb!: Embedding;
    const { store, params } = storeWith(gpu, (s) => emb = new Embedding(s, "tied", V, C));
    const idx = randomIds(B * T, V, nextSeed());
    specs.push({
      name: "tied embedding table: gather, then rows · tableᵀ",
      store,
      params,
      forward: (g) => {
        const rows = emb.call(g, ids(g, [B, T], idx));
        return matmul(g, rows, g.param(store.params[0]), { transB: true });
      },
      reference: (v) => {
        const table = v["tied.weight"];
        const rows = embeddingForwardReference(table, idx, V, C);
        return matmulReference(rows, [B * T, C], table, [V, C], { transB: true });
      },
    });
  }
  {
    // Layer norm twice with the same gamma and beta, plus a residual from x.
    const C = 4;
    const store = new ParamStore(gpu);
    const gammaHandle = store.register("ln.gamma", [C], { kind: "constant", value: 1 });
    const betaHandle = store.register("ln.beta", [C], { kind: "constant", value: 0 });
    store.finalize();
    const gamma = host([C], 0.5);
    gamma.data = gamma.data.map((v) => v + 1);
    const params = new Map([["ln.gamma", gamma.data], ["ln.beta", host([C]).data]]);
    specs.push({
      name: "layerNorm twice with shared gamma/beta, plus a residual",
      inputs: { x: host([3, C], 2) },
      store,
      params,
      forward: (g, { x }) => {
        const gm = g.param(gammaHandle()), bt = g.param(betaHandle());
        return add(g, layerNorm(g, layerNorm(g, x, gm, bt), gm, bt), x);
      },
      reference: (v) => {
        const once = layerNormReference(v.x, v["ln.gamma"], v["ln.beta"], C).out;
        const twice = layerNormReference(once, v["ln.gamma"], v["ln.beta"], C).out;
        return twice.map((y, i) => y + v.x[i]);
      },
    });
  }
  {
    // An input used by two ops and an embedding table used by two lookups.
    const [V, C] = [4, 4];
    const a = randomIds(6, V, nextSeed()), b = randomIds(6, V, nextSeed());
    specs.push({
      name: "one table, two lookups added",
      inputs: { table: host([V, C]) },
      forward: (g, { table }) =>
        add(g, embedding(g, table, ids(g, [6], a)), embedding(g, table, ids(g, [6], b))),
      reference: ({ table }) => {
        const ra = embeddingForwardReference(table, a, V, C);
        const rb = embeddingForwardReference(table, b, V, C);
        return ra.map((x, i) => x + rb[i]);
      },
    });
  }
  return specs;
}

Deno.test("a value or parameter used more than once accumulates every contribution", async () => {
  const gpu = await getGpu();
  assertChecked(await gradCheck(gpu, sharedUseSpecs(gpu)));
});

Deno.test("replaying a recorded step overwrites gradients instead of doubling them", async () => {
  const gpu = await getGpu();
  // The same specs with the same data, recorded once and replayed once or three times.
  const build = () => {
    reseed(900);
    return [...sharedUseSpecs(gpu), languageModelSpec(gpu, [2, 3, 5, 4, 4])];
  };
  const once = await gradCheck(gpu, build());
  const thrice = await gradCheck(gpu, build(), { replays: 3 });
  assertChecked(thrice);
  for (let i = 0; i < once.length; i++) {
    for (const name of Object.keys(once[i].grads)) {
      // Bit for bit: the replays recompute the same values, they do not add to them.
      deepEqual(thrice[i].grads[name], once[i].grads[name], `${once[i].name}: d/d${name}`);
    }
  }
});
