import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { adamw, adamwReference } from "../kernels/adamw.ts";
import { Counter, createCounters } from "../kernels/counters.ts";
import { getGpu } from "../kernels/device.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import { createTensor, readF32, ShapeError, tensorView, writeTensor } from "../kernels/tensor.ts";
import { randomF32, relError } from "./support.ts";

const cases = [
  { n: 1003, firstStep: 1, opts: { lr: 1e-2 } },
  {
    n: 1024,
    firstStep: 1,
    opts: { lr: 3e-3, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1 },
  },
  { n: 64, firstStep: 5000, opts: { lr: 1e-3, weightDecay: 0 } },
];

for (const { n, firstStep, opts } of cases) {
  Deno.test(`adamw follows the float64 reference for 5 steps (n = ${n}, t from ${firstStep})`, async () => {
    const gpu = await getGpu();
    const p0 = randomF32(n, 1);
    const params = createTensor(gpu, [n], "f32", "params", p0);
    const grads = createTensor(gpu, [n], "f32", "grads");
    const m = createTensor(gpu, [n], "f32", "m");
    const v = createTensor(gpu, [n], "f32", "v");
    const counters = createCounters(gpu);
    const rec = new Recorder(gpu);
    adamw(rec, { params, grads, m, v, counters, ...opts });
    const plan = await rec.finish();
    const want = { p: Float64Array.from(p0), m: new Float64Array(n), v: new Float64Array(n) };
    for (let step = 0; step < 5; step++) {
      const t = firstStep + step;
      // Gradients of very different magnitudes exercise the sqrt(v) + eps denominator.
      const g = randomF32(n, 100 + step, step === 2 ? 1e-3 : 2);
      writeTensor(grads, g);
      writeTensor(counters, [t, 0, 0, 0, 0, 0, 0, 0]);
      await plan.run();
      adamwReference(want.p, g, want.m, want.v, t, opts);
    }
    const [p, mm, vv] = [await readF32(params), await readF32(m), await readF32(v)];
    ok(relError(p, want.p) <= 1e-5, `params error ${relError(p, want.p)}`);
    ok(relError(mm, want.m) <= 1e-5, `m error ${relError(mm, want.m)}`);
    ok(relError(vv, want.v) <= 1e-5, `v error ${relError(vv, want.v)}`);
    // The updates themselves, not just the parameters they are small next to.
    const moved = p.map((x, i) => x - p0[i]);
    const wantMoved = want.p.map((x, i) => x - p0[i]);
    ok(relError(moved, wantMoved) <= 1e-4, `update error ${relError(moved, wantMoved)}`);
    // The step moved every parameter (no lane left untouched by the vec4/scalar split).
    for (let i = 0; i < n; i++) ok(p[i] !== p0[i], `params[${i}] did not move`);
  });
}

Deno.test("adamw's first step moves each parameter by lr against its gradient's sign", async () => {
  // At t = 1 the bias corrections make m̂ = g and v̂ = g², so the step is lr·g/(|g| + eps).
  const gpu = await getGpu();
  const p0 = [0.5, -0.25, 2, 0];
  const g = [3, -0.5, 1e-3, -20];
  const lr = 0.1, weightDecay = 0.5;
  const arena = createTensor(gpu, [4, 128], "f32", "arena");
  const views = ["params", "grads", "m", "v"].map((name, k) =>
    tensorView(arena, k * 512, [4], name)
  );
  const [params, grads, m, v] = views;
  writeTensor(params, p0);
  writeTensor(grads, g);
  const counters = createCounters(gpu, [1]);
  // Views of one arena cannot be bound read-only and writable together, so grads move out.
  throws(
    () => adamw(new Recorder(gpu), { params, grads, m, v, counters, lr, weightDecay }),
    ShapeError,
  );
  const separateGrads = createTensor(gpu, [4], "f32", "grads", g);
  await runOnce(
    gpu,
    (rec) => adamw(rec, { params, grads: separateGrads, m, v, counters, lr, weightDecay }),
  );
  const got = await readF32(params);
  for (let i = 0; i < 4; i++) {
    const expected = p0[i] * (1 - lr * weightDecay) - lr * g[i] / (Math.abs(g[i]) + 1e-8);
    ok(Math.abs(got[i] - expected) <= 1e-6, `params[${i}] = ${got[i]}, expected ${expected}`);
  }
  deepStrictEqual((await readF32(m))[3], Math.fround(0.1 * -20));
});

Deno.test("adamw reads t from counters[trainBatch] and treats t = 0 as step 1", async () => {
  const gpu = await getGpu();
  const n = 8;
  const p0 = randomF32(n, 9);
  const g = randomF32(n, 10);
  const results: Float32Array[] = [];
  for (const slots of [[0, 7], [1, 7]]) {
    const params = createTensor(gpu, [n], "f32", "params", p0);
    const grads = createTensor(gpu, [n], "f32", "grads", g);
    const m = createTensor(gpu, [n], "f32", "m");
    const v = createTensor(gpu, [n], "f32", "v");
    const counters = createCounters(gpu, slots);
    await runOnce(gpu, (rec) => adamw(rec, { params, grads, m, v, counters, lr: 0.01 }));
    results.push(await readF32(params));
  }
  deepStrictEqual(results[0], results[1]);
  const want = adamwReference(
    Float64Array.from(p0),
    g,
    new Float64Array(n),
    new Float64Array(n),
    1,
    {
      lr: 0.01,
    },
  );
  ok(relError(results[1], want.p) <= 1e-5);
  deepStrictEqual(Counter.trainBatch, 0);
});

Deno.test("adamw rejects tensors of different sizes and bad hyperparameters", async () => {
  const gpu = await getGpu();
  const a = createTensor(gpu, [4], "f32", "a");
  const b = createTensor(gpu, [4], "f32", "b");
  const c = createTensor(gpu, [4], "f32", "c");
  const short = createTensor(gpu, [3], "f32", "short");
  const counters = createCounters(gpu);
  await runOnce(gpu, (rec) => {
    throws(
      () => adamw(rec, { params: a, grads: b, m: c, v: short, counters, lr: 1e-3 }),
      ShapeError,
    );
    throws(
      () => adamw(rec, { params: a, grads: b, m: c, v: short, counters, lr: NaN }),
      RangeError,
    );
    throws(
      () => adamw(rec, { params: a, grads: b, m: c, v: short, counters, lr: 1e-3, beta2: 1 }),
      RangeError,
    );
  });
});
