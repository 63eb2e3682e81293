/**
 * The lecture's single-head language model: token and position embeddings, one causal
 * self-attention head, and a linear map to the vocabulary.
 */
import { z } from "zod";
import {
  type AttentionHeadWeights,
  planFusedAttentionHead,
} from "../kernels/fused_attention_head_plan.ts";
import {
  type FusedAttentionHeadBatch,
  fusedAttentionHeadEval,
  fusedAttentionHeadStep,
} from "../kernels/fused_attention_head.ts";
import { Head, Linear, TokenAndPosition } from "../nn/modules.ts";
import type { ParamStore } from "../nn/params.ts";
import type { BatchStep, LanguageModel, LanguageModelExperiment } from "./types.ts";
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

/** The parameters by the names the modules register (checkpoints depend on them). */
function weightsOf(store: ParamStore): AttentionHeadWeights {
  const byName = new Map(store.params.map((p) => [p.name, p.value]));
  const get = (name: string) => {
    const t = byName.get(name);
    if (!t) throw new Error(`attention_head: no parameter ${name}`);
    return t;
  };
  return {
    tokens: get("token_embedding_table.weight"),
    positions: get("position_embedding_table.weight"),
    keyWeight: get("sa_head.key.weight"),
    queryWeight: get("sa_head.query.weight"),
    valueWeight: get("sa_head.value.weight"),
    lmWeight: get("lm_head.weight"),
    lmBias: get("lm_head.bias"),
  };
}

/** The attention_head experiment. */
export const attentionHead: LanguageModelExperiment<z.infer<typeof schema>> = {
  kind: "language-model",
  name: "attention_head",
  summary: "token+position embeddings → one causal self-attention head → lm_head",
  schema,
  createModel(store, config, vocabSize): LanguageModel {
    const { nEmbd, headSize } = config.model;
    const embed = new TokenAndPosition(store, vocabSize, config.train.blockSize, nEmbd);
    const head = new Head(store, "sa_head", nEmbd, headSize);
    const lmHead = new Linear(store, "lm_head", headSize, vocabSize);
    const model: LanguageModel = {
      forward: (g, idx) => lmHead.call(g, head.call(g, embed.call(g, idx))),
      // The graph path's lm_head: logits, cross-entropy and its gradient in one pass.
      forwardLoss: (g, idx, targets, sink) =>
        void lmHead.loss(g, head.call(g, embed.call(g, idx)), targets, sink),
    };
    // The fused kernels (two dispatches per step instead of ~27) whenever the shape fits the
    // device. A shape that does not (an invocation past llvmpipe's loop limit, a scratch past
    // the binding limit; planFusedAttentionHead says which) trains through the autograd graph,
    // which gives the same results up to float rounding.
    const shape = {
      B: config.train.batchSize,
      T: config.train.blockSize,
      C: nEmbd,
      H: headSize,
      V: vocabSize,
    };
    if (!planFusedAttentionHead(store.gpu, shape).ok) return model;
    const batch = (step: BatchStep): FusedAttentionHeadBatch => ({
      ...step,
      params: store.arenas.params,
      weights: weightsOf(store),
    });
    model.recordTrainStep = (step) =>
      fusedAttentionHeadStep(step.rec, {
        ...batch(step),
        m: step.arenas.m,
        v: step.arenas.v,
        lr: step.lr,
        weightDecay: step.weightDecay,
      });
    model.recordEvalStep = (step) => fusedAttentionHeadEval(step.rec, batch(step));
    return model;
  },
};
