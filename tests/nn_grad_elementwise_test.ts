/**
 * The elementwise ops of nn/elementwise_ops.ts (mul, scale, dropout, cumulativeMean) on small
 * random shapes: the device forward against a float64 reference and the backward, run through
 * the Graph tape, against central finite differences of the float64 loss. Dropout's function
 * is checked with the mask the device drew (read back); its statistics, its replay behaviour
 * and its stream are checked separately.
 */
import { deepEqual, equal, notDeepEqual, ok, throws } from "node:assert/strict";
import { sampleBatch } from "../kernels/batch.ts";
import { Counter, createCounters } from "../kernels/counters.ts";
import { cumulativeMeanReference } from "../kernels/cumulative_mean.ts";
import { getGpu, type Gpu } from "../kernels/device.ts";
import { dropoutReference } from "../kernels/dropout.ts";
import { elementwiseReference } from "../kernels/elementwise.ts";
import { streamKey } from "../kernels/philox.ts";
import { Recorder } from "../kernels/program.ts";
import { createTensor, readF32, ShapeError } from "../kernels/tensor.ts";
import { add, cumulativeMean, dropout, mul, scale } from "../nn/elementwise_ops.ts";
import { Graph, Var } from "../nn/graph.ts";
import { assertChecked, gradCheck, type GradCheckSpec, hostTensors } from "./support.ts";

const { host, awayFromZero } = hostTensors(900);

/** x + y elementwise in float64 (same length). */
const plus = (x: ArrayLike<number>, y: ArrayLike<number>) =>
  Float64Array.from({ length: x.length }, (_, i) => x[i] + y[i]);

Deno.test("nn.mul: same shape, broadcast like add, a scalar, x ⊙ x, and accumulated gradients", async () => {
  const gpu = await getGpu();
  const pair = (aShape: number[], bShape: number[]): GradCheckSpec => ({
    name: `mul [${aShape}] ⊙ [${bShape}]`,
    inputs: { a: host(aShape), b: host(bShape) },
    forward: (g, { a, b }) => mul(g, a, b),
    reference: ({ a, b }) => elementwiseReference("mul", a, b),
  });
  const specs: GradCheckSpec[] = [
    pair([2, 3, 5], [2, 3, 5]),
    pair([2, 3, 5], [3, 5]),
    // Equal sizes, different shapes: the gradient of b is dOut ⊙ a seen in b's shape.
    pair([1, 3, 5], [3, 5]),
    // vec4 lanes.
    pair([2, 3, 4], [4]),
    pair([2, 8], [2, 8]),
    pair([3, 5], [1]),
    {
      name: "mul x ⊙ x (both contributions reach x)",
      inputs: { x: host([3, 5]) },
      forward: (g, { x }) => mul(g, x, x),
      reference: ({ x }) => x.map((v) => v * v),
    },
    {
      // add's backward writes first (the tape runs in reverse), so mul's contributions to a
      // and to the broadcast b take the accumulate paths.
      name: "add(add(mul(a, b), a), b) with b [5] broadcast (mul accumulates into a and b)",
      inputs: { a: host([2, 3, 5]), b: host([5]) },
      forward: (g, { a, b }) => add(g, add(g, mul(g, a, b), a), b),
      reference: ({ a, b }) =>
        elementwiseReference("add", plus(elementwiseReference("mul", a, b), a), b),
    },
    {
      name: "add(mul(a, b), b) with equal-size b (accumulate through the reshape)",
      inputs: { a: host([1, 2, 4]), b: host([2, 4]) },
      forward: (g, { a, b }) => add(g, mul(g, a, b), b),
      reference: ({ a, b }) => elementwiseReference("add", elementwiseReference("mul", a, b), b),
    },
  ];
  assertChecked(await gradCheck(gpu, specs));
});

Deno.test("nn.scale: forward and gradient, vec4, negative factor, accumulated, zero factor", async () => {
  const gpu = await getGpu();
  const spec = (shape: number[], s: number): GradCheckSpec => ({
    name: `scale [${shape}] by ${s}`,
    inputs: { x: host(shape) },
    forward: (g, { x }) => scale(g, x, s),
    reference: ({ x }) => elementwiseReference("scale", x, x, s),
  });
  assertChecked(
    await gradCheck(gpu, [
      spec([3, 5], 0.37),
      spec([2, 8], -2.5),
      {
        name: "add(scale(x, 0.37), x) (scale accumulates into x)",
        inputs: { x: host([3, 5]) },
        forward: (g, { x }) => add(g, scale(g, x, 0.37), x),
        reference: ({ x }) => x.map((v) => 0.37 * v + v),
      },
      {
        name: "scale(scale(x, 3), -0.5) (chained)",
        inputs: { x: host([2, 4]) },
        forward: (g, { x }) => scale(g, scale(g, x, 3), -0.5),
        reference: ({ x }) => x.map((v) => -0.5 * (3 * v)),
      },
      { ...spec([2, 3], 0), zeroGrads: ["x"] },
    ]),
  );
});

Deno.test("nn.cumulativeMean: forward and gradient over time, vec4, T = 1, accumulated", async () => {
  const gpu = await getGpu();
  const spec = ([B, T, C]: [number, number, number]): GradCheckSpec => ({
    name: `cumulativeMean [${B}, ${T}, ${C}]`,
    inputs: { x: host([B, T, C]) },
    forward: (g, { x }) => cumulativeMean(g, x),
    reference: ({ x }) => cumulativeMeanReference(x, B, T, C),
  });
  assertChecked(
    await gradCheck(gpu, [
      spec([2, 5, 3]),
      spec([2, 4, 8]),
      spec([3, 1, 4]),
      spec([1, 7, 1]),
      {
        name: "add(cumulativeMean(x), x) [2, 4, 3] (cumulativeMean accumulates into x)",
        inputs: { x: host([2, 4, 3]) },
        forward: (g, { x }) => add(g, cumulativeMean(g, x), x),
        reference: ({ x }) => plus(cumulativeMeanReference(x, 2, 4, 3), x),
      },
      {
        name: "cumulativeMean(mul(x, w)) [2, 3, 4] ⊙ [3, 4] (chained)",
        inputs: { x: host([2, 3, 4]), w: host([3, 4]) },
        forward: (g, { x, w }) => cumulativeMean(g, mul(g, x, w)),
        reference: ({ x, w }) =>
          cumulativeMeanReference(elementwiseReference("mul", x, w), 2, 3, 4),
      },
    ]),
  );
});

const SEED = 1234;

/** 1/(1 − p) as the kernel stores it. */
const keepScale = (p: number) => (p < 1 ? Math.fround(1 / (1 - p)) : 0);

/** The mask each dropout gradient check read back, by spec name. */
const drawnMasks = new Map<string, Float64Array>();

/**
 * A dropout gradient check: the device draws the mask, `afterRun` reads it back from the
 * output (x has no zeros, so kept ⇔ out ≠ 0), and the reference is x ⊙ mask with that mask.
 * The drawn mask must also be the dropout stream's for the counter the device held.
 */
function dropoutSpec(
  shape: number[],
  p: number,
  opts: { twice?: boolean; callIndex?: number; counter?: number } = {},
): GradCheckSpec {
  const x = awayFromZero(shape);
  const callIndex = opts.callIndex ?? 0, counter = opts.counter ?? 5;
  let dropped: Var | undefined;
  let mask: Float64Array | undefined;
  const name = `dropout [${shape}] p = ${p}${opts.twice ? ", add(dropout(x), x)" : ""}`;
  return {
    name,
    inputs: { x },
    forward: (g, { x }) => {
      const counters = createCounters(g.gpu, [counter]);
      dropped = dropout(g, x, p, { seed: SEED, counters, callIndex });
      return opts.twice ? add(g, dropped, x) : dropped;
    },
    afterRun: async () => {
      const out = await readF32(dropped!.data);
      mask = Float64Array.from(out, (v) => v === 0 ? 0 : keepScale(p));
      drawnMasks.set(name, mask);
      const want = dropoutReference(x.data, p, streamKey(SEED, "dropout"), counter, callIndex);
      deepEqual(Float32Array.from(mask), want.mask, `dropout p = ${p}: not the stream's mask`);
    },
    reference: ({ x }) => {
      const y = x.map((v, i) => v * mask![i]);
      return opts.twice ? plus(y, x) : y;
    },
    zeroGrads: p === 1 ? ["x"] : [],
  };
}

Deno.test("nn.dropout: forward and gradient with the drawn mask, accumulated, p = 0 and p = 1", async () => {
  const gpu = await getGpu();
  const results = await gradCheck(gpu, [
    dropoutSpec([4, 9], 0.3),
    dropoutSpec([2, 8], 0.5, { callIndex: 3, counter: 17 }),
    dropoutSpec([3, 5], 0.25, { twice: true }),
    dropoutSpec([3, 4], 0),
    dropoutSpec([3, 4], 1),
  ]);
  assertChecked(results);
  // The masks must have both kinds of element, or the check above says little.
  for (const r of results.slice(0, 3)) {
    const mask = drawnMasks.get(r.name)!;
    const kept = mask.filter((v) => v !== 0).length;
    ok(kept > 0 && kept < mask.length, `${r.name}: kept ${kept} of ${mask.length}`);
  }
});

/** Records [sample a batch (advances the train counter), dropout] once for replays. */
async function recordDropoutStep(gpu: Gpu, seed: number, n: number, p: number) {
  const rec = new Recorder(gpu);
  const counters = createCounters(gpu);
  const tokens = createTensor(gpu, [4], "u32", "tokens", [0, 1, 2, 3]);
  sampleBatch(rec, {
    tokens,
    counters,
    counterIndex: Counter.trainBatch,
    key: streamKey(seed, "train"),
    inputs: createTensor(gpu, [1, 1], "u32", "inputs"),
    targets: createTensor(gpu, [1, 1], "u32", "targets"),
  });
  const g = new Graph(rec, true);
  const x = g.constant(createTensor(gpu, [n], "f32", "ones", new Float32Array(n).fill(1)));
  const y = dropout(g, x, p, { seed, counters, callIndex: 0 });
  const plan = await rec.finish();
  /** Replays the step once and returns its output. */
  return async (): Promise<Float32Array> => {
    plan.submit();
    await gpu.device.queue.onSubmittedWorkDone();
    return await readF32(y.data);
  };
}

Deno.test("nn.dropout: kept fraction ≈ 1 − p, kept values scaled by 1/(1 − p)", async () => {
  const gpu = await getGpu();
  const n = 1 << 16;
  for (const p of [0.1, 0.5, 0.8]) {
    const out = await (await recordDropoutStep(gpu, SEED, n, p))();
    const kept = out.filter((v) => v !== 0);
    ok(kept.every((v) => v === keepScale(p)), `p = ${p}: a kept value is not 1/(1 − p)`);
    // Binomial(n, 1 − p): 5 standard deviations is about 0.01 at n = 65536.
    const sd = Math.sqrt(p * (1 - p) / n);
    const frac = kept.length / n;
    ok(
      Math.abs(frac - (1 - p)) < 5 * sd,
      `p = ${p}: kept fraction ${frac}, want ${1 - p} ± ${5 * sd}`,
    );
  }
});

Deno.test("nn.dropout: each replay draws a fresh mask; the same seed reproduces them", async () => {
  const gpu = await getGpu();
  const n = 64, p = 0.5;
  const replay = await recordDropoutStep(gpu, SEED, n, p);
  const first = [await replay(), await replay(), await replay()];
  notDeepEqual(first[0], first[1]);
  notDeepEqual(first[1], first[2]);
  // Step k (the sampler's 1-based batch number) draws the dropout stream's mask at counter k.
  const ones = new Float32Array(n).fill(1);
  first.forEach((out, i) =>
    deepEqual(out, dropoutReference(ones, p, streamKey(SEED, "dropout"), i + 1, 0).out)
  );
  // A fresh recording with the same seed draws the same sequence, bit for bit.
  const again = await recordDropoutStep(gpu, SEED, n, p);
  deepEqual([await again(), await again(), await again()], first);
  // Another seed draws other masks.
  const other = await recordDropoutStep(gpu, SEED + 1, n, p);
  notDeepEqual(await other(), first[0]);
});

Deno.test("nn.dropout: identity when not training or p = 0; refuses bad p and reused sites", async () => {
  const gpu = await getGpu();
  const counters = createCounters(gpu);
  const x = (g: Graph) => new Var(createTensor(gpu, [2, 3], "f32", "x"), g.training);
  for (const [training, p] of [[false, 0.5], [true, 0]] as const) {
    const rec = new Recorder(gpu);
    const g = new Graph(rec, training);
    const v = x(g);
    equal(dropout(g, v, p, { seed: SEED, counters, callIndex: 0 }), v);
    equal(rec.dispatches.length, 0, `training ${training}, p = ${p}: dispatched`);
    await rec.finish();
  }
  const rec = new Recorder(gpu);
  const g = new Graph(rec, true);
  for (const p of [-0.1, 1.5, NaN]) {
    throws(() => dropout(g, x(g), p, { seed: SEED, counters, callIndex: 9 }), RangeError);
  }
  dropout(g, x(g), 0.5, { seed: SEED, counters, callIndex: 1 });
  throws(
    () => dropout(g, x(g), 0.5, { seed: SEED, counters, callIndex: 1 }),
    /dropout: callIndex 1 .* already used/,
  );
  // Another call index or another counter slot is another site.
  dropout(g, x(g), 0.5, { seed: SEED, counters, callIndex: 2 });
  dropout(g, x(g), 0.5, { seed: SEED, counters, callIndex: 1, counterIndex: Counter.evalBatch });
  await rec.finish();
});

Deno.test("nn.mul and nn.cumulativeMean: shape errors name the op and the shapes, dispatch nothing", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const g = new Graph(rec, true);
  const f32 = (name: string, shape: number[]) =>
    new Var(createTensor(gpu, shape, "f32", name), true);
  const cases: [string, number[][], () => unknown][] = [
    ["mul", [[2, 3, 4], [3, 5]], () => mul(g, f32("a", [2, 3, 4]), f32("b", [3, 5]))],
    ["mul", [[3, 4], [4, 3]], () => mul(g, f32("a", [3, 4]), f32("b", [4, 3]))],
    ["mul", [[4], [2, 4]], () => mul(g, f32("a", [4]), f32("b", [2, 4]))],
    ["cumulativeMean", [[4, 3]], () => cumulativeMean(g, f32("x", [4, 3]))],
    ["cumulativeMean", [[1, 2, 3, 4]], () => cumulativeMean(g, f32("x", [1, 2, 3, 4]))],
  ];
  const ids = new Var(createTensor(gpu, [2, 3], "u32", "ids"), false);
  for (const [op, shapes, fn] of cases) {
    throws(fn, (e: unknown) => {
      ok(e instanceof ShapeError, `${op}: expected ShapeError, got ${e}`);
      ok(e.message.startsWith(`${op}:`), `message does not name ${op}: ${e.message}`);
      for (const s of shapes) ok(e.message.includes(`[${s.join(", ")}]`), e.message);
      return true;
    });
  }
  throws(
    () => scale(g, ids, 2),
    (e: unknown) => e instanceof ShapeError && /scale/.test(e.message),
  );
  throws(() => scale(g, f32("x", [2]), Infinity), RangeError);
  equal(rec.dispatches.length, 0);
  await rec.finish();
});
