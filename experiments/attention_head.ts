/**
 * The lecture's single-head language model: token and position embeddings, one causal
 * self-attention head, and a linear map to the vocabulary.
 */
import { z } from "zod";
import { Head, Linear, TokenAndPosition } from "../nn/modules.ts";
import type { LanguageModelExperiment } from "./types.ts";
import { languageModelSchema } from "./types.ts";

const schema = z.object({
  ...languageModelSchema({
    steps: 5000,
    batchSize: 32,
    blockSize: 8,
    lr: 1e-3,
    evalInterval: 500,
    evalIters: 200,
  }),
  model: z.object({
    nEmbd: z.number().int().positive().default(32),
    headSize: z.number().int().positive().default(32),
  }).prefault({}),
});

/** The attention_head experiment. */
export const attentionHead: LanguageModelExperiment<z.infer<typeof schema>> = {
  kind: "language-model",
  name: "attention_head",
  summary: "token+position embeddings → one causal self-attention head → lm_head",
  schema,
  createModel(store, config, vocabSize) {
    const { nEmbd, headSize } = config.model;
    const embed = new TokenAndPosition(store, vocabSize, config.train.blockSize, nEmbd);
    const head = new Head(store, "sa_head", nEmbd, headSize);
    const lmHead = new Linear(store, "lm_head", headSize, vocabSize);
    return {
      forward: (g, idx) => lmHead.call(g, head.call(g, embed.call(g, idx))),
    };
  },
};
