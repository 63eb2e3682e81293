/**
 * The layer-level graph ops of nn/layer_ops.ts (linear with a fused activation, addLayerNorm,
 * classifierLoss): device forward against float64 references, backward (through the Graph
 * tape, as training runs it) against central finite differences, and the dispatch counts the
 * fusion promises.
 */
import { deepStrictEqual, ok, throws } from "node:assert/strict";
import type { Activation } from "../kernels/activation.ts";
import { addLayerNormReference } from "../kernels/add_layernorm.ts";
import { createCounters } from "../kernels/counters.ts";
import { crossEntropyReference } from "../kernels/cross_entropy.ts";
import { getGpu } from "../kernels/device.ts";
import { layerNormReference } from "../kernels/layernorm.ts";
import { Recorder } from "../kernels/program.ts";
import { createTensor, readF32, ShapeError } from "../kernels/tensor.ts";
import { add } from "../nn/elementwise_ops.ts";
import { layerNorm } from "../nn/normalization_ops.ts";
import { Graph, Var } from "../nn/graph.ts";
import { addLayerNorm, classifierLoss, linear, linearReference } from "../nn/layer_ops.ts";
import {
  assertChecked,
  gradCheck,
  type GradCheckSpec,
  hostTensors,
  randomIds,
  relError,
} from "./support.ts";

const { host, nextSeed } = hostTensors(1000);

/** gamma near 1, as a trained LayerNorm's. */
function gammaHost(C: number) {
  const t = host([C], 0.5);
  t.data = t.data.map((v) => v + 1);
  return t;
}

Deno.test("layer_ops.linear: bias and ReLU/GELU epilogues, forward and gradients", async () => {
  const gpu = await getGpu();
  const spec = (
    xShape: number[],
    outF: number,
    activation: Activation,
    withBias: boolean,
  ): GradCheckSpec => {
    const inF = xShape.at(-1)!;
    return {
      name: `linear ${activation}${withBias ? " + bias" : ""} x [${xShape}] → ${outF}`,
      inputs: {
        x: host(xShape),
        w: host([outF, inF]),
        ...(withBias ? { b: host([outF]) } : {}),
      },
      forward: (g, { x, w, b }) => linear(g, x, w, b, { activation }),
      reference: ({ x, w, b }) => linearReference(x, w, b, inF, outF, activation),
    };
  };
  assertChecked(
    await gradCheck(gpu, [
      spec([2, 3, 5], 6, "relu", true),
      spec([3, 8], 12, "relu", true),
      spec([2, 3, 5], 7, "gelu", true),
      spec([3, 8], 8, "gelu", true),
      spec([4, 6], 5, "gelu", false),
      spec([4, 6], 8, "relu", false),
      spec([3, 5], 4, "none", true),
    ]),
  );
});

Deno.test("layer_ops.linear: a parameter used twice accumulates both gradients", async () => {
  const gpu = await getGpu();
  // y = gelu(relu(x·Wᵀ + b)·Wᵀ + b) with W [C, C]: W and b both receive two contributions.
  const C = 4;
  assertChecked(
    await gradCheck(gpu, [{
      name: "linear twice with shared W and b",
      inputs: { x: host([3, C]), w: host([C, C]), b: host([C]) },
      forward: (g, { x, w, b }) =>
        linear(g, linear(g, x, w, b, { activation: "relu" }), w, b, { activation: "gelu" }),
      reference: ({ x, w, b }) =>
        linearReference(linearReference(x, w, b, C, C, "relu"), w, b, C, C, "gelu"),
    }]),
  );
});

Deno.test("layer_ops.addLayerNorm: the residual sum and its layer norm, with every gradient", async () => {
  const gpu = await getGpu();
  const plain = (shape: number[]): GradCheckSpec => {
    const C = shape.at(-1)!;
    return {
      name: `addLayerNorm [${shape}] → out`,
      inputs: { x: host(shape, 2), d: host(shape), gamma: gammaHost(C), beta: host([C]) },
      forward: (g, { x, d, gamma, beta }) => addLayerNorm(g, x, d, gamma, beta).out,
      reference: ({ x, d, gamma, beta }) => addLayerNormReference(x, d, gamma, beta, C).out,
    };
  };
  const both = (shape: number[]): GradCheckSpec => {
    const C = shape.at(-1)!;
    return {
      name: `addLayerNorm [${shape}] → sum + out (a gradient reaches the sum directly)`,
      inputs: { x: host(shape, 2), d: host(shape), gamma: gammaHost(C), beta: host([C]) },
      forward: (g, { x, d, gamma, beta }) => {
        const r = addLayerNorm(g, x, d, gamma, beta);
        return add(g, r.sum, r.out);
      },
      reference: ({ x, d, gamma, beta }) => {
        const r = addLayerNormReference(x, d, gamma, beta, C);
        return r.sum.map((v, i) => v + r.out[i]);
      },
    };
  };
  assertChecked(
    await gradCheck(gpu, [plain([3, 5]), plain([2, 3, 8]), both([3, 5]), both([2, 2, 8])]),
  );
});

Deno.test("layer_ops: a pre-LN block (ln1, ReLU FFN, add+ln2, GELU FFN, add+ln_f)", async () => {
  const gpu = await getGpu();
  const [T, C, H] = [3, 4, 8];
  // x feeds ln1 and the first residual: its gradient is written by addLayerNorm, then added to
  // by layerNorm's backward; the first sum feeds the second residual add directly.
  assertChecked(
    await gradCheck(gpu, [{
      name: "pre-LN block",
      inputs: {
        x: host([2, T, C], 2),
        g1: gammaHost(C),
        b1: host([C]),
        w1: host([C, C]),
        c1: host([C]),
        g2: gammaHost(C),
        b2: host([C]),
        w2: host([H, C]),
        c2: host([H]),
        w3: host([C, H]),
        c3: host([C]),
        g3: gammaHost(C),
        b3: host([C]),
      },
      forward: (g, v) => {
        const h = layerNorm(g, v.x, v.g1, v.b1);
        const a = linear(g, h, v.w1, v.c1, { activation: "relu" });
        const r1 = addLayerNorm(g, v.x, a, v.g2, v.b2);
        const f = linear(g, linear(g, r1.out, v.w2, v.c2, { activation: "gelu" }), v.w3, v.c3);
        return addLayerNorm(g, r1.sum, f, v.g3, v.b3).out;
      },
      reference: (v) => {
        const h = layerNormReference(v.x, v.g1, v.b1, C).out;
        const a = linearReference(h, v.w1, v.c1, C, C, "relu");
        const r1 = addLayerNormReference(v.x, a, v.g2, v.b2, C);
        const f = linearReference(
          linearReference(r1.out, v.w2, v.c2, C, H, "gelu"),
          v.w3,
          v.c3,
          H,
          C,
        );
        return addLayerNormReference(r1.sum, f, v.g3, v.b3, C).out;
      },
    }]),
  );
});

Deno.test("layer_ops.classifierLoss: loss, and gradients of x, W and b", async () => {
  const gpu = await getGpu();
  const spec = (B: number, T: number, C: number, V: number, withBias: boolean): GradCheckSpec => {
    const targets = randomIds(B * T, V, nextSeed());
    return {
      name: `classifierLoss [${B}, ${T}, ${C}] → ${V}${withBias ? " + bias" : ""}`,
      inputs: { x: host([B, T, C]), w: host([V, C]), ...(withBias ? { b: host([V]) } : {}) },
      forward: (g, { x, w, b }) => {
        const losses = createTensor(g.gpu, [1], "f32", "losses");
        // The kernel writes slot (counter − 1) mod capacity: counter 1 → slot 0.
        const counters = createCounters(g.gpu, [1]);
        const t = g.constant(createTensor(g.gpu, [B, T], "u32", "targets", targets));
        classifierLoss(g, x, w, b, t, { losses, counters, counterIndex: 0 });
        return { loss: losses };
      },
      reference: ({ x, w, b }) => {
        const logits = linearReference(x, w, b, C, V);
        return [crossEntropyReference(logits, targets, B * T, V).loss];
      },
    };
  };
  assertChecked(
    await gradCheck(gpu, [
      spec(2, 3, 5, 7, true),
      spec(2, 4, 8, 12, true),
      spec(1, 3, 4, 5, false),
    ]),
  );
});

/** Records forward + backward of `body` into a fresh training graph; returns the dispatches. */
function recordKernels(
  gpu: Awaited<ReturnType<typeof getGpu>>,
  body: (g: Graph, v: (shape: number[]) => Var) => Var | undefined,
): { names: string[]; rec: Recorder } {
  const rec = new Recorder(gpu);
  const g = new Graph(rec, true);
  const v = (shape: number[]) => new Var(createTensor(gpu, shape, "f32", "v"), true);
  const out = body(g, v);
  if (out) g.gradTarget(out);
  const before = rec.dispatches.length;
  g.backward();
  ok(rec.dispatches.length > before || out === undefined);
  return { names: rec.dispatches.map((d) => d.kernel), rec };
}

Deno.test("layer_ops: dispatches per layer (forward + backward)", async () => {
  const gpu = await getGpu();
  // Small shapes, so that the pipelines compile fast; the counts are those of any shape, less
  // the texture path's packing dispatches (bench/layer_ops_bench.ts counts them at the GPT's).
  const [M, C, H, V] = [24, 8, 16, 5];
  // FFN up-projection with GELU: forward matmul, backward d(pre)+db, dW, dX.
  const ffn = recordKernels(
    gpu,
    (g, v) => linear(g, v([M, C]), v([H, C]), v([H]), { activation: "gelu" }),
  );
  const ffnKinds = ffn.names.filter((n) => !n.startsWith("matmul_pack"));
  deepStrictEqual(ffnKinds.length, 4, ffn.names.join(", "));
  ok(ffn.names.includes("activation_backward_gelu_bias"), ffn.names.join(", "));
  await ffn.rec.finish();
  const res = recordKernels(gpu, (g, v) => {
    const r = addLayerNorm(g, v([M, C]), v([M, C]), v([C]), v([C]));
    return add(g, r.sum, r.out);
  });
  deepStrictEqual(
    res.names.filter((n) => n.includes("layernorm")),
    ["add_layernorm", "add_layernorm_backward_2", "layernorm_backward_params"],
  );
  await res.rec.finish();
  const head = recordKernels(gpu, (g, v) => {
    const sink = {
      losses: createTensor(gpu, [1], "f32", "losses"),
      counters: createCounters(gpu, [1]),
      counterIndex: 0,
    };
    const targets = g.constant(createTensor(gpu, [M], "u32", "targets"));
    classifierLoss(g, v([M, C]), v([V, C]), v([V]), targets, sink);
    return undefined;
  });
  deepStrictEqual(
    head.names.filter((n) => !n.startsWith("matmul_pack")).length,
    4,
    head.names.join(),
  );
  ok(head.names.includes("cross_entropy_bias"));
  await head.rec.finish();
});

Deno.test("layer_ops: replays are bit-identical", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const g = new Graph(rec, true);
  const param = (shape: number[], seed: number) => {
    const t = host(shape);
    return new Var(createTensor(gpu, shape, "f32", `p${seed}`, t.data), true);
  };
  const x = param([2, 8, 8], 1), w = param([16, 8], 2), b = param([16], 3);
  const w2 = param([8, 16], 4), gamma = param([8], 5), beta = param([8], 6);
  const wc = param([11, 8], 7);
  const h = linear(g, linear(g, x, w, b, { activation: "gelu" }), w2);
  const r = addLayerNorm(g, x, h, gamma, beta);
  const sink = {
    losses: createTensor(gpu, [1], "f32", "losses"),
    counters: createCounters(gpu, [1]),
    counterIndex: 0,
  };
  const targets = g.constant(createTensor(gpu, [2, 8], "u32", "t", randomIds(16, 11, 5)));
  classifierLoss(g, r.out, wc, undefined, targets, sink);
  g.backward();
  const plan = await rec.finish();
  const snapshot = () => {
    plan.submit();
    return Promise.all([sink.losses, ...[x, w, b, w2, gamma, beta, wc].map((v) => g.gradOf(v)!)]
      .map((t) => readF32(t)));
  };
  const first = await snapshot();
  ok(first.slice(1).every((grad) => grad.some((v) => v !== 0)), "every gradient has signal");
  deepStrictEqual(await snapshot(), first);
});

Deno.test("layer_ops reject bad shapes with a clear ShapeError", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const g = new Graph(rec, true);
  const v = (shape: number[]) => new Var(createTensor(gpu, shape, "f32", "v"), true);
  const x = v([3, 4]);
  throws(() => linear(g, x, v([5, 3])), ShapeError);
  throws(() => linear(g, x, v([5, 4]), v([4])), ShapeError);
  throws(
    () => linear(g, x, v([5, 4]), undefined, { activation: "tanh" as Activation }),
    /unknown activation/,
  );
  throws(() => addLayerNorm(g, x, x, v([4]), v([4])), /one value/);
  throws(() => addLayerNorm(g, x, v([3, 5]), v([4]), v([4])), ShapeError);
  const sink = {
    losses: createTensor(gpu, [1], "f32", "l"),
    counters: createCounters(gpu, [1]),
    counterIndex: 0,
  };
  const targets = g.constant(createTensor(gpu, [4], "u32", "t"));
  throws(() => classifierLoss(g, x, v([7, 4]), v([7]), targets, sink), /targets/);
  await rec.finish().catch(() => {});
});

Deno.test("layer_ops forward-only (evaluation, sampling): logits and loss, no gradients", async () => {
  const gpu = await getGpu();
  const [B, T, C, V] = [2, 3, 8, 7];
  const hx = host([B, T, C]), hw = host([V, C]), hb = host([V]), hw1 = host([C, C]);
  const ids = randomIds(B * T, V, nextSeed());
  const rec = new Recorder(gpu);
  const g = new Graph(rec, false);
  const param = (h: { shape: number[]; data: Float32Array }) =>
    new Var(createTensor(gpu, h.shape, "f32", "p", h.data), true);
  const h = linear(g, param(hx), param(hw1), undefined, { activation: "gelu" });
  const sink = {
    losses: createTensor(gpu, [1], "f32", "losses"),
    counters: createCounters(gpu, [1]),
    counterIndex: 0,
  };
  const targets = g.constant(createTensor(gpu, [B, T], "u32", "targets", ids));
  const logits = classifierLoss(g, h, param(hw), param(hb), targets, sink);
  ok(!logits.requiresGrad);
  await (await rec.finish()).run();
  const f64 = (h: { data: Float32Array }) => Float64Array.from(h.data);
  const wantH = linearReference(f64(hx), f64(hw1), undefined, C, C, "gelu");
  const wantLogits = linearReference(wantH, f64(hw), f64(hb), C, V);
  ok(relError(await readF32(logits.data), wantLogits) < 1e-5, "logits");
  const { loss } = crossEntropyReference(wantLogits, ids, B * T, V);
  const [got] = await readF32(sink.losses);
  ok(Math.abs(got - loss) < 1e-5 * Math.abs(loss), `loss ${got} vs ${loss}`);
  ok(!rec.dispatches.some((d) => d.kernel.includes("backward")), "no backward recorded");
});
