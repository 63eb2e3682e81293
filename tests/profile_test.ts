import assert from "node:assert/strict";
import { bigram } from "../experiments/bigram.ts";
import type { LanguageModelConfig } from "../experiments/types.ts";
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/program.ts";
import { fillUniform } from "../kernels/random_fill.ts";
import { createTensor, readF32 } from "../kernels/tensor.ts";
import { scale } from "../kernels/elementwise.ts";
import { createRunProfile, formatHostTime, KernelProfiler } from "../harness/profile.ts";
import {
  dispatchesByKernel,
  dispatchOverheadShare,
  formatStepProfile,
} from "../harness/step_profile.ts";
import { trainLanguageModel } from "../harness/train.ts";
import { createProgress } from "../harness/progress.ts";
import { ParamStore } from "../nn/params.ts";
import { randomIds } from "./support.ts";

const gpu = await getGpu();

Deno.test("formatStepProfile rows add up to the step's wall time, remainders signed", () => {
  const text = formatStepProfile({
    dispatchesPerStep: 3,
    kernels: [
      { kernel: "matmul", dispatchesPerStep: 2, msPerStep: 3, replays: 10 },
      { kernel: "adamw", dispatchesPerStep: 1, msPerStep: 1, replays: 30 },
    ],
    fullReplayMs: 4.5,
    fullReplays: 10,
    emptyDispatchUs: 50,
    readbackFloorMs: 11,
    trials: 3,
  }, 5);
  const lines = text.split("\n");
  assert.match(
    lines[0],
    /^kernel \(replayed alone\)\s+dispatches\/step\s+ms\/step\s+µs\/dispatch\s+share$/,
  );
  assert.match(lines[2], /^matmul\s+2\s+3\.000\s+1500\.0\s+60\.0%$/);
  assert.match(lines[3], /^adamw\s+1\s+1\.000\s+1000\.0\s+20\.0%$/);
  assert.match(lines[4], /^sum of kernels replayed alone\s+3\s+4\.000\s+80\.0%$/);
  assert.match(lines[5], /full-step replay − sum\)\s+\+0\.500\s+10\.0%$/);
  assert.match(lines[6], /\(wall − replay\)\s+\+0\.500\s+10\.0%$/);
  assert.match(lines[7], /^step wall time in the run\s+5\.000\s+100\.0%$/);
  // 3 dispatches × 50 µs = 0.15 ms of a 5 ms step.
  assert.match(text, /dispatches per step: 3; an empty dispatch costs 50\.0 µs/);
  assert.match(text, /takes 0\.150 ms\/step = 3\.0% of the step's wall time/);
  const negative = formatStepProfile({
    dispatchesPerStep: 1,
    kernels: [{ kernel: "k", dispatchesPerStep: 1, msPerStep: 2, replays: 1 }],
    fullReplayMs: 1.5,
    fullReplays: 1,
    emptyDispatchUs: 0,
    readbackFloorMs: 0,
    trials: 1,
    timestampMsPerStep: { k: 0.5 },
  }, 2);
  assert.match(negative, /full-step replay − sum\)\s+−0\.500\s+-25\.0%\s*$/m);
  assert.match(negative, /^k\s+1\s+2\.000\s+2000\.0\s+100\.0%\s+0\.500$/m);
  assert.match(negative, /Timestamp queries .* sum to 0\.500 ms\/step, 25\.0% of the wall/);
});

Deno.test("dispatchesByKernel groups a plan's dispatches by kernel in first-seen order", async () => {
  const a = createTensor(gpu, [64], "f32", "a");
  const b = createTensor(gpu, [64], "f32", "b");
  const rec = new Recorder(gpu);
  fillUniform(rec, a, [1, 2], 0, -1, 1);
  scale(rec, a, 2, b);
  fillUniform(rec, a, [1, 2], 1, -1, 1);
  const plan = await rec.finish();
  const groups = dispatchesByKernel(plan.dispatches);
  assert.deepEqual([...groups].map(([k, ds]) => [k, ds.length]), [
    [plan.dispatches[0].kernel, 2],
    [plan.dispatches[1].kernel, 1],
  ]);
  assert.equal(dispatchOverheadShare(400, 50, 40), 0.5);
});

Deno.test("formatHostTime gives each part's share of the run's wall time", () => {
  const text = formatHostTime({
    totalMs: 200,
    setupMs: 20,
    encodeSubmitMs: 10,
    readbackWaitMs: 130,
    evalMs: 30,
    finishMs: 10,
  });
  assert.match(text, /encode \+ submit \(host\)\s+10\.0\s+5\.0%/);
  assert.match(text, /awaiting loss readbacks\s+130\.0\s+65\.0%/);
  assert.match(text, /training run wall time\s+200\.0\s+100\.0%/);
});

Deno.test({
  name: "KernelProfiler times every dispatch of every replay under its kernel name",
  ignore: !gpu.hasTimestamps,
  fn: async () => {
    const a = createTensor(gpu, [4096], "f32", "a");
    const b = createTensor(gpu, [64], "f32", "b");
    const rec = new Recorder(gpu);
    fillUniform(rec, a, [1, 2], 0, -1, 1);
    fillUniform(rec, b, [1, 2], 1, 3, 4);
    const plan = await rec.finish();
    const profiler = new KernelProfiler(gpu);
    // 3 replays of 2 dispatches, then 2 more in a second submission with a trailing copy.
    profiler.submit([{ plan, times: 3 }]);
    const copy = createTensor(gpu, [64], "f32", "copy");
    profiler.submit([{ plan, times: 2 }], (encoder) => {
      encoder.copyBufferToBuffer(b.buffer, 0, copy.buffer, 0, 256);
    });
    const rows = await profiler.results();
    const kernels = new Set(plan.dispatches.map((d) => d.kernel));
    assert.equal(rows.length, kernels.size);
    assert.equal(rows.reduce((s, r) => s + r.calls, 0), 10);
    for (const r of rows) {
      assert.ok(kernels.has(r.kernel), r.kernel);
      assert.ok(r.totalMs > 0 && r.totalMs < 1000, `${r.kernel}: ${r.totalMs} ms`);
    }
    // Profiling only changes how dispatches are encoded, not what they compute.
    const copied = await readF32(copy);
    assert.ok(copied.every((x) => x >= 3 && x < 4));
  },
});

Deno.test("a profiled bigram run trains exactly like an unprofiled one", async () => {
  const config: LanguageModelConfig = {
    train: { steps: 30, batchSize: 4, blockSize: 4, lr: 1e-2, weightDecay: 0.01 },
    eval: { interval: 15, iters: 2 },
    sample: { tokens: 4 },
    data: "test",
  };
  const run = async (profiled: boolean) => {
    const store = new ParamStore(gpu);
    const model = bigram.createModel(store, config as never, 11);
    store.finalize();
    const profile = profiled ? createRunProfile(gpu, { trialSeconds: 0.02 }) : undefined;
    const outcome = await trainLanguageModel({
      gpu,
      config,
      seed: 3,
      model,
      store,
      trainTokens: randomIds(500, 11, 41),
      valTokens: randomIds(100, 11, 42),
      progress: createProgress(true),
      interrupted: () => false,
      chunkSteps: 10,
      submitter: profile?.submitter,
    });
    return { outcome, report: await profile?.report(outcome), measured: profile?.measured };
  };
  const plain = await run(false);
  const profiled = await run(true);
  assert.equal(profiled.outcome.paramsSha256, plain.outcome.paramsSha256);
  assert.deepEqual(profiled.outcome.curve.map((p) => [p.train, p.val]), [
    ...plain.outcome.curve.map((p) => [p.train, p.val]),
  ]);
  const report = profiled.report ?? "";
  assert.match(report, /training run wall time/);
  // The step is two dispatches, one of each kernel; both were replayed and timed.
  assert.match(report, /^fused_bigram_loss_grad\s+1\s/m);
  assert.match(report, /^fused_bigram_update\s+1\s/m);
  assert.match(report, /^sum of kernels replayed alone\s+2\s/m);
  assert.match(report, /dispatches per step: 2;/);
  const measured = profiled.measured!;
  assert.equal(measured.dispatchesPerStep, 2);
  assert.deepEqual(measured.kernels.map((k) => k.kernel).sort(), [
    "fused_bigram_loss_grad",
    "fused_bigram_update",
  ]);
  // Times themselves are not asserted (the machine is shared): only that each was measured.
  const measuredTimes = [
    ...measured.kernels.map((k) => k.msPerStep),
    measured.fullReplayMs,
    measured.emptyDispatchUs,
  ];
  assert.ok(measuredTimes.every((t) => Number.isFinite(t) && t >= 0), String(measuredTimes));
  assert.ok(measured.kernels.every((k) => k.replays >= 1) && measured.fullReplays >= 1);
  // The printed rows sum to the step's wall time: kernels + both remainders = wall.
  const ms = (name: RegExp) => Number(report.match(name)![1].replace("−", "-"));
  const sum = ms(/^sum of kernels replayed alone\s+2\s+([\d.]+)/m);
  const together = ms(/full-step replay − sum\)\s+([+−][\d.]+)/);
  const host = ms(/\(wall − replay\)\s+([+−][\d.]+)/);
  const wall = ms(/^step wall time in the run\s+([\d.]+)/m);
  assert.ok(Math.abs(sum + together + host - wall) < 0.002, `${sum} ${together} ${host} ${wall}`);
  if (gpu.hasTimestamps) assert.match(report, /timestamps ms\/step/);
});
