import assert from "node:assert/strict";
import { bigram } from "../experiments/bigram.ts";
import type { LanguageModelConfig } from "../experiments/types.ts";
import { getGpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/program.ts";
import { fillUniform } from "../kernels/random_fill.ts";
import { createTensor, readF32 } from "../kernels/tensor.ts";
import {
  createRunProfile,
  formatHostTime,
  formatKernelTable,
  KernelProfiler,
} from "../harness/profile.ts";
import { trainLanguageModel } from "../harness/train.ts";
import { createProgress } from "../harness/progress.ts";
import { ParamStore } from "../nn/params.ts";
import { randomIds } from "./support.ts";

const gpu = await getGpu();

Deno.test("formatKernelTable lists calls, totals and shares that add up to 100%", () => {
  const text = formatKernelTable([
    { kernel: "fused_bigram_update", calls: 10, totalMs: 3 },
    { kernel: "fused_bigram_loss_grad", calls: 10, totalMs: 1 },
  ]);
  const lines = text.split("\n");
  assert.match(lines[0], /^kernel\s+calls\s+total ms\s+µs\/call\s+share$/);
  assert.match(lines[2], /^fused_bigram_update\s+10\s+3\.0\s+300\.0\s+75\.0%$/);
  assert.match(lines[3], /^fused_bigram_loss_grad\s+10\s+1\.0\s+100\.0\s+25\.0%$/);
  assert.match(lines[4], /^total\s+20\s+4\.0\s+100\.0%$/);
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
    const profile = profiled ? createRunProfile(gpu) : undefined;
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
    return { outcome, report: await profile?.report(outcome.timing) };
  };
  const plain = await run(false);
  const profiled = await run(true);
  assert.equal(profiled.outcome.paramsSha256, plain.outcome.paramsSha256);
  assert.deepEqual(profiled.outcome.curve.map((p) => [p.train, p.val]), [
    ...plain.outcome.curve.map((p) => [p.train, p.val]),
  ]);
  const report = profiled.report ?? "";
  assert.match(report, /training run wall time/);
  if (gpu.hasTimestamps) {
    // 30 steps of two dispatches; 3 estimates of 2 + 2 eval batches; 4 sampled tokens.
    assert.match(report, /fused_bigram_update\s+30\s/);
    assert.match(report, /fused_bigram_loss_grad\s+30\s/);
    assert.match(report, /fused_bigram_loss\s+12\s/);
  } else {
    assert.match(report, /per-kernel times unavailable/);
  }
});
