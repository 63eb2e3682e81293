/**
 * Every differentiable op of nn/ops.ts, nn/matmul_ops.ts, nn/normalization_ops.ts and the add /
 * ReLU of nn/elementwise_ops.ts on small random shapes: the device forward against a float64
 * reference, and the device backward (run through the Graph tape exactly as training runs it)
 * against central finite differences of the float64 loss.
 */
import { ok } from "node:assert/strict";
import { createCounters } from "../kernels/counters.ts";
import { crossEntropyReference } from "../kernels/cross_entropy.ts";
import { getGpu } from "../kernels/device.ts";
import { elementwiseReference } from "../kernels/elementwise.ts";
import { embeddingForwardReference } from "../kernels/embedding.ts";
import { layerNormReference } from "../kernels/layernorm.ts";
import { matmulReference } from "../kernels/matmul.ts";
import { softmaxReference } from "../kernels/softmax.ts";
import { createTensor } from "../kernels/tensor.ts";
import { add, relu } from "../nn/elementwise_ops.ts";
import { layerNorm, softmax } from "../nn/normalization_ops.ts";
import { matmul } from "../nn/matmul_ops.ts";
import type { Graph } from "../nn/graph.ts";
import { linear, linearReference } from "../nn/layer_ops.ts";
import { crossEntropyLoss, embedding } from "../nn/ops.ts";
import {
  assertChecked,
  FORWARD_TOL,
  GRAD_TOL,
  gradCheck,
  type GradCheckSpec,
  hostTensors,
  randomIds,
  relError,
} from "./support.ts";

const { host, awayFromZero, nextSeed } = hostTensors(100);

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function matmulSpec(
  transA: boolean,
  transB: boolean,
  batchA: number | undefined,
  batchB: number | undefined,
  [M, K, N]: [number, number, number],
): GradCheckSpec {
  const lead = (b: number | undefined) => b === undefined ? [] : [b];
  const aShape = [...lead(batchA), ...(transA ? [K, M] : [M, K])];
  const bShape = [...lead(batchB), ...(transB ? [N, K] : [K, N])];
  const batch = batchA ?? batchB;
  return {
    name: `matmul(transA=${transA}, transB=${transB}) a [${aShape}] b [${bShape}]`,
    inputs: { a: host(aShape), b: host(bShape) },
    forward: (g, { a, b }) => matmul(g, a, b, { transA, transB }),
    reference: ({ a, b }) => {
      if (batch === undefined || (batchA !== undefined && batchB !== undefined)) {
        return matmulReference(a, aShape, b, bShape, { transA, transB });
      }
      // The reference takes batched operands on both sides: repeat the shared one.
      const repeat = (x: Float64Array) => {
        const out = new Float64Array(batch * x.length);
        for (let i = 0; i < batch; i++) out.set(x, i * x.length);
        return out;
      };
      const a3 = batchA === undefined ? repeat(a) : a;
      const b3 = batchB === undefined ? repeat(b) : b;
      const s3 = (s: number[], bt: number | undefined) => bt === undefined ? [batch, ...s] : s;
      return matmulReference(a3, s3(aShape, batchA), b3, s3(bShape, batchB), {
        transA,
        transB,
      });
    },
  };
}

Deno.test("nn.matmul: forward and gradients for every transpose flag, batched and shared", async () => {
  const gpu = await getGpu();
  const specs: GradCheckSpec[] = [];
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      // Ragged dimensions (not multiples of 4) take the scalar paths.
      specs.push(matmulSpec(transA, transB, undefined, undefined, [3, 5, 2]));
      specs.push(matmulSpec(transA, transB, 2, 2, [3, 5, 6]));
      specs.push(matmulSpec(transA, transB, 3, undefined, [2, 3, 4]));
      specs.push(matmulSpec(transA, transB, undefined, 2, [4, 2, 3]));
    }
  }
  // Multiples of 4 take the vec4 paths.
  specs.push(matmulSpec(false, false, 2, 2, [4, 8, 4]));
  specs.push(matmulSpec(true, true, 2, undefined, [8, 4, 4]));
  assertChecked(await gradCheck(gpu, specs));
});

Deno.test("nn.linear: forward and gradients with and without bias, 2-D and 3-D input", async () => {
  const gpu = await getGpu();
  const specs: GradCheckSpec[] = [
    {
      name: "linear with bias, x [2, 3, 5] → [2, 3, 4]",
      inputs: { x: host([2, 3, 5]), w: host([4, 5]), b: host([4]) },
      forward: (g, { x, w, b }) => linear(g, x, w, b),
      reference: ({ x, w, b }) => linearReference(x, w, b, 5, 4),
    },
    {
      name: "linear without bias, x [3, 5] → [6]",
      inputs: { x: host([3, 5]), w: host([6, 5]) },
      forward: (g, { x, w }) => linear(g, x, w),
      reference: ({ x, w }) => linearReference(x, w, undefined, 5, 6),
    },
    {
      name: "linear with bias, vec4 shapes x [2, 4, 8] → [4]",
      inputs: { x: host([2, 4, 8]), w: host([4, 8]), b: host([4]) },
      forward: (g, { x, w, b }) => linear(g, x, w, b),
      reference: ({ x, w, b }) => linearReference(x, w, b, 8, 4),
    },
  ];
  assertChecked(await gradCheck(gpu, specs));
});

Deno.test("nn.add: same shape, broadcast over leading axes, a scalar, and x + x", async () => {
  const gpu = await getGpu();
  const pair = (aShape: number[], bShape: number[]): GradCheckSpec => ({
    name: `add [${aShape}] + [${bShape}]`,
    inputs: { a: host(aShape), b: host(bShape) },
    forward: (g, { a, b }) => add(g, a, b),
    reference: ({ a, b }) => elementwiseReference("add", a, b),
  });
  const specs: GradCheckSpec[] = [
    pair([2, 3, 5], [2, 3, 5]),
    pair([2, 3, 5], [3, 5]),
    // Equal sizes, different shapes: positions [T, C] onto a batch of one.
    pair([1, 3, 5], [3, 5]),
    pair([2, 3, 4], [4]),
    pair([3, 5], [1]),
    {
      name: "add x + x (both contributions reach x)",
      inputs: { x: host([3, 5]) },
      forward: (g, { x }) => add(g, x, x),
      reference: ({ x }) => x.map((v) => 2 * v),
    },
  ];
  assertChecked(await gradCheck(gpu, specs));
});

Deno.test("nn.softmax: plain, scaled, causal (square and rectangular rows)", async () => {
  const gpu = await getGpu();
  const spec = (shape: number[], opts: { causal?: boolean; scale?: number }): GradCheckSpec => ({
    name: `softmax [${shape}] ${JSON.stringify(opts)}`,
    inputs: { x: host(shape, 2) },
    forward: (g, { x }) => softmax(g, x, opts),
    reference: ({ x }) =>
      softmaxReference(x, shape.length > 1 ? shape[shape.length - 2] : 1, shape.at(-1)!, opts),
  });
  assertChecked(
    await gradCheck(gpu, [
      spec([3, 5], {}),
      spec([2, 6], { scale: 0.7 }),
      spec([2, 4, 4], { causal: true, scale: 0.5 }),
      spec([2, 3, 5], { causal: true }),
      spec([2, 5, 3], { causal: true, scale: 1.5 }),
    ]),
  );
});

Deno.test("nn.relu: forward and gradient away from the kink", async () => {
  const gpu = await getGpu();
  assertChecked(
    await gradCheck(gpu, [
      {
        name: "relu [3, 7]",
        inputs: { x: awayFromZero([3, 7]) },
        forward: (g, { x }) => relu(g, x),
        reference: ({ x }) => elementwiseReference("relu", x),
      },
      {
        name: "relu [2, 8] (vec4)",
        inputs: { x: awayFromZero([2, 8]) },
        forward: (g, { x }) => relu(g, x),
        reference: ({ x }) => elementwiseReference("relu", x),
      },
    ]),
  );
});

Deno.test("nn.layerNorm: forward and gradients of x, gamma and beta", async () => {
  const gpu = await getGpu();
  const spec = (shape: number[]): GradCheckSpec => {
    const C = shape.at(-1)!;
    const gamma = host([C], 0.5);
    gamma.data = gamma.data.map((v) => v + 1);
    return {
      name: `layerNorm [${shape}]`,
      inputs: { x: host(shape, 2), gamma, beta: host([C]) },
      forward: (g, { x, gamma, beta }) => layerNorm(g, x, gamma, beta),
      reference: ({ x, gamma, beta }) => layerNormReference(x, gamma, beta, C).out,
    };
  };
  assertChecked(await gradCheck(gpu, [spec([4, 5]), spec([2, 3, 8]), spec([3, 1, 4])]));
});

function idsTensor(g: Graph, shape: number[], ids: Uint32Array) {
  return g.constant(createTensor(g.gpu, shape, "u32", "ids", ids));
}

Deno.test("nn.embedding: forward and the table gradient with repeated ids", async () => {
  const gpu = await getGpu();
  const spec = (V: number, C: number, idShape: number[]): GradCheckSpec => {
    // Few rows and many ids: most rows are picked more than once, some perhaps never.
    const ids = randomIds(size(idShape), V, nextSeed());
    return {
      name: `embedding [${V}, ${C}] at ids [${idShape}]`,
      inputs: { table: host([V, C]) },
      forward: (g, { table }) => embedding(g, table, idsTensor(g, idShape, ids)),
      reference: ({ table }) => embeddingForwardReference(table, ids, V, C),
    };
  };
  assertChecked(await gradCheck(gpu, [spec(6, 5, [2, 4]), spec(5, 4, [3, 5]), spec(3, 3, [7])]));
});

Deno.test("nn.crossEntropyLoss: the loss and d(loss)/d(logits), alone and after linear", async () => {
  const gpu = await getGpu();
  const ceSpec = (B: number, T: number, V: number, withLinear: boolean): GradCheckSpec => {
    const targets = randomIds(B * T, V, nextSeed());
    const inF = 6;
    return {
      name: `crossEntropyLoss [${B}, ${T}, ${V}]${withLinear ? " after linear" : ""}`,
      inputs: withLinear
        ? { x: host([B, T, inF]), w: host([V, inF]), b: host([V]) }
        : { logits: host([B, T, V], 3) },
      forward: (g, x) => {
        const logits = withLinear ? linear(g, x.x, x.w, x.b) : x.logits;
        const losses = createTensor(g.gpu, [1], "f32", "losses");
        // The kernel writes slot (counter − 1) mod capacity: counter 1 → slot 0.
        const counters = createCounters(g.gpu, [1]);
        const t = idsTensor(g, [B, T], targets);
        crossEntropyLoss(g, logits, t, { losses, counters, counterIndex: 0 });
        return { loss: losses };
      },
      reference: (x) => {
        const logits = withLinear ? linearReference(x.x, x.w, x.b, inF, V) : x.logits;
        return [crossEntropyReference(logits, targets, B * T, V).loss];
      },
    };
  };
  assertChecked(
    await gradCheck(gpu, [
      ceSpec(2, 3, 5, false),
      ceSpec(1, 4, 8, false),
      ceSpec(2, 3, 5, true),
    ]),
  );
});

Deno.test("the gradient check catches wrong gradients", async () => {
  const gpu = await getGpu();
  const x = host([2, 6], 2);
  // The device runs softmax with one scale, the reference with another: the forward and the
  // gradient must both be flagged, so a scale missing from a backward cannot pass.
  const [wrongScale] = await gradCheck(gpu, [{
    name: "softmax scale 0.5 vs reference scale 0.55",
    inputs: { x },
    forward: (g, { x }) => softmax(g, x, { scale: 0.5 }),
    reference: ({ x }) => softmaxReference(x, 2, 6, { scale: 0.55 }),
  }]);
  ok(wrongScale.forwardError > FORWARD_TOL);
  ok(wrongScale.gradErrors.x > GRAD_TOL, `softmax scale error ${wrongScale.gradErrors.x}`);
  // A single gradient entry off by 1% of the gradient's scale is caught.
  const [right] = await gradCheck(gpu, [{
    name: "layerNorm [3, 4]",
    inputs: { x: host([3, 4]), gamma: host([4]), beta: host([4]) },
    forward: (g, { x, gamma, beta }) => layerNorm(g, x, gamma, beta),
    reference: ({ x, gamma, beta }) => layerNormReference(x, gamma, beta, 4).out,
  }]);
  assertChecked([right]);
  const scale = Math.max(...right.fd.x.map(Math.abs));
  const off = right.grads.x.slice();
  off[5] += 0.01 * scale;
  ok(relError(off, right.fd.x) > GRAD_TOL, "a 1% error in one gradient entry must fail");
});
