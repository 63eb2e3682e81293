/**
 * Same seed, same adapter ⇒ bit-identical training: attention_head trained twice in-process
 * through the harness's loop (trainLanguageModel, as `deno task exp` runs it, on whichever
 * path the harness picks for the model) gives identical per-step losses, eval curve, sample
 * and parameter fingerprint; another seed gives a different run.
 */
import { deepEqual, equal, notDeepEqual, notEqual, ok } from "node:assert/strict";
import { attentionHead } from "../experiments/attention_head.ts";
import { tokenize } from "../harness/data.ts";
import { trainEveryStep } from "./training_support.ts";

const STEPS = 30;
const TEXT = "the quick brown fox jumps over the lazy dog. a lazy dog sleeps; the fox runs.\n"
  .repeat(40);

const config = attentionHead.schema.parse({
  train: { steps: STEPS, batchSize: 4, blockSize: 8, lr: 1e-2 },
  eval: { interval: 10, iters: 2 },
  sample: { tokens: 24 },
  model: { nEmbd: 16, headSize: 16 },
});

const corpus = tokenize(
  { name: "fox", source: "test", text: TEXT, sha256: "" },
  config.train.blockSize + 1,
);

/** Trains with one readback per step; `fused` undefined is the harness's default path. */
async function train(seed: number, fused?: boolean) {
  const { outcome, losses } = await trainEveryStep({
    experiment: attentionHead,
    config,
    vocabSize: corpus.vocab.length,
    seed,
    trainTokens: corpus.train,
    valTokens: corpus.val,
    fused,
  });
  return {
    status: outcome.status,
    losses,
    // Wall-clock times differ run to run; everything else must not.
    curve: outcome.curve.map(({ step, train, val }) => ({ step, train, val })),
    sample: [...outcome.sample],
    paramsSha256: outcome.paramsSha256,
  };
}

for (const fused of [undefined, false]) {
  const path = fused === undefined ? "the harness's default path" : "the autograd graph";
  Deno.test(`attention_head on ${path}: the same seed trains bit-identically, another seed differs`, async () => {
    const first = await train(1337, fused);
    const again = await train(1337, fused);
    const other = await train(1338, fused);

    equal(first.status, "ok");
    equal(first.losses.length, STEPS);
    ok(first.losses.every(Number.isFinite), `losses ${first.losses}`);
    // It trained: the loss fell (a fixed pattern is easy to learn).
    const evalTrain = first.curve.map((p) => p.train ?? NaN);
    deepEqual(first.curve.map((p) => p.step), [0, 10, 20, 30]);
    ok(evalTrain[3] < evalTrain[0] - 0.3, `eval train losses ${evalTrain}`);
    ok(/^[0-9a-f]{64}$/.test(first.paramsSha256));

    // deepEqual compares numbers with Object.is: bit-identical f32 values, not approximately.
    deepEqual(again.losses, first.losses);
    deepEqual(again.curve, first.curve);
    deepEqual(again.sample, first.sample);
    equal(again.paramsSha256, first.paramsSha256);

    notEqual(other.paramsSha256, first.paramsSha256);
    notDeepEqual(other.losses, first.losses);
  });
}
