/**
 * A new experiment in one file: the bigram model with a hidden layer. Each character is
 * embedded, passed through a small ReLU MLP and mapped to next-character logits. It uses only
 * seedlab's public API (mod.ts); the harness supplies data, seeds, the training loop and results.
 *
 *   deno task exp examples/char_mlp.ts --set model.hidden=128 --seeds 0..2
 */
import { z } from "zod";
import {
  Embedding,
  type LanguageModelExperiment,
  languageModelSchema,
  Linear,
  relu,
} from "../mod.ts";

// The shared sections (train, eval, sample, data) with this model's defaults, plus its own.
const schema = z.object({
  ...languageModelSchema({
    steps: 3000,
    batchSize: 32,
    blockSize: 8,
    lr: 1e-2,
    evalInterval: 500,
    evalIters: 100,
  }),
  model: z.object({
    nEmbd: z.number().int().positive().default(32),
    hidden: z.number().int().positive().default(64),
  }).prefault({}),
});

/** Character → embedding (V→nEmbd) → Linear → ReLU → Linear → logits (V). */
export const charMlp: LanguageModelExperiment<z.infer<typeof schema>> = {
  kind: "language-model",
  name: "char_mlp",
  summary: "bigram with a hidden layer: embedding → linear → relu → linear",
  schema,
  createModel(store, config, vocabSize) {
    const { nEmbd, hidden } = config.model;
    const embed = new Embedding(store, "token_embedding", vocabSize, nEmbd);
    const fc = new Linear(store, "fc", nEmbd, hidden);
    const out = new Linear(store, "lm_head", hidden, vocabSize);
    return {
      // idx [B,T] → [B,T,nEmbd] → [B,T,hidden] → [B,T,V]
      forward: (g, idx) => out.call(g, relu(g, fc.call(g, embed.call(g, idx)))),
    };
  },
};
