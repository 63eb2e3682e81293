/**
 * The lecture's GPT (gpt.py): token + position embeddings, nLayer pre-LN blocks of multi-head
 * causal self-attention and a feed-forward, a final LayerNorm and lm_head, trained with AdamW.
 * `model.ffnMult`, `model.residual` and `model.layerNorm` switch off the parts the lecture
 * adds one at a time, so each step of its ladder is a config (configs/gpt/).
 */
import { z } from "zod";
import { type InitScheme, LayerNorm, Linear, TokenAndPosition } from "../nn/modules.ts";
import type { ParamStore } from "../nn/params.ts";
import { Block, type ResidualStream } from "../nn/transformer.ts";
import type { Graph, Var } from "../nn/graph.ts";
import type { LanguageModel, LanguageModelExperiment } from "./types.ts";
import { languageModelSchema } from "./types.ts";

const schema = z.object({
  ...languageModelSchema({
    steps: 2000,
    batchSize: 16,
    blockSize: 32,
    lr: 1e-3,
    evalInterval: 500,
    evalIters: 200,
  }),
  model: z.object({
    nEmbd: z.number().int().positive().default(64),
    nHead: z.number().int().positive().default(4),
    nLayer: z.number().int().positive().default(4),
    dropout: z.number().min(0).lt(1).default(0),
    /** Feed-forward hidden width / nEmbd; 0 = no feed-forward. */
    ffnMult: z.number().int().nonnegative().default(4),
    /** Residual connections, with the attention projection (and FFN net.2) gpt.py adds. */
    residual: z.boolean().default(true),
    /** Pre-LN blocks (ln1, ln2) and the final ln_f. */
    layerNorm: z.boolean().default(true),
    /** "gpt": gpt.py's _init_weights (N(0, 0.02), zero biases); "pytorch": PyTorch defaults. */
    init: z.enum(["gpt", "pytorch"]).default("gpt"),
  }).prefault({}).refine((m) => m.nEmbd % m.nHead === 0, {
    message: "model.nEmbd must be a multiple of model.nHead",
  }),
});

/** The resolved gpt config. */
export type GptConfig = z.infer<typeof schema>;

/** gpt.py's GPTLanguageModel: idx [B, T] → logits [B, T, V]. */
export function createGpt(store: ParamStore, config: GptConfig, vocabSize: number): LanguageModel {
  const m = config.model;
  const init: InitScheme = m.init;
  const embed = new TokenAndPosition(store, vocabSize, config.train.blockSize, m.nEmbd, init);
  const blocks = Array.from({ length: m.nLayer }, (_, i) =>
    new Block(store, `blocks.${i}`, {
      nEmbd: m.nEmbd,
      nHead: m.nHead,
      dropout: m.dropout,
      ffnMult: m.ffnMult,
      residual: m.residual,
      layerNorm: m.layerNorm,
      init,
    }));
  const lnF = m.layerNorm ? new LayerNorm(store, "ln_f", m.nEmbd) : undefined;
  const lmHead = new Linear(store, "lm_head", m.nEmbd, vocabSize, true, init);
  // lm_head's input: the blocks on the residual stream, each residual add fused into the
  // norm that reads it (the next block's ln1, ln_f after the last).
  const features = (g: Graph, idx: Var): Var => {
    let stream: ResidualStream = { x: embed.call(g, idx) };
    blocks.forEach((block, i) => {
      stream = block.step(g, stream, i + 1 < blocks.length ? blocks[i + 1].ln1 : lnF);
    });
    return stream.normed ?? stream.x;
  };
  return {
    forward: (g, idx) => lmHead.call(g, features(g, idx)),
    // Logits, cross-entropy and their gradient in one classifier pass.
    forwardLoss: (g, idx, targets, sink) => void lmHead.loss(g, features(g, idx), targets, sink),
  };
}

/** The gpt experiment. */
export const gpt: LanguageModelExperiment<GptConfig> = {
  kind: "language-model",
  name: "gpt",
  summary: "the lecture's GPT: embeddings → nLayer × (multi-head attention + FFN) → ln_f → lm_head",
  schema,
  createModel: createGpt,
};
