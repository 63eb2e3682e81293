/**
 * The bigram language model of the lecture: the logits for the next character are a row of a
 * V×V table looked up by the current character.
 */
import { z } from "zod";
import { fusedBigramEval, fusedBigramStep } from "../kernels/fused_bigram.ts";
import { Embedding } from "../nn/modules.ts";
import type { LanguageModel, LanguageModelExperiment } from "./types.ts";
import { languageModelSchema } from "./types.ts";

const schema = z.object(languageModelSchema({
  steps: 10000,
  batchSize: 32,
  blockSize: 8,
  lr: 1e-3,
  evalInterval: 1000,
  evalIters: 200,
}));

/** The bigram experiment. */
export const bigram: LanguageModelExperiment<z.infer<typeof schema>> = {
  kind: "language-model",
  name: "bigram",
  summary: "bigram language model: logits = table[token] (V×V), AdamW",
  schema,
  createModel(store, _config, vocabSize): LanguageModel {
    const table = new Embedding(store, "token_embedding_table", vocabSize, vocabSize);
    return {
      forward: (g, idx) => table.call(g, idx),
      // The whole step in two dispatches instead of five, bit-identical to `forward` + autograd.
      recordTrainStep: (step) =>
        fusedBigramStep(step.rec, {
          ...step,
          table: table.weight().value,
          params: step.arenas.params,
          m: step.arenas.m,
          v: step.arenas.v,
        }),
      recordEvalStep: (step) => fusedBigramEval(step.rec, { ...step, table: table.weight().value }),
    };
  },
};
