/** The experiment registry: the names `deno task exp NAME` accepts. */
import { attentionHead } from "./attention_head.ts";
import { bigram } from "./bigram.ts";
import { gpt } from "./gpt.ts";
import type { Experiment } from "./types.ts";
import { xbow } from "./xbow.ts";

/** Every known experiment, by name. */
export const experiments: ReadonlyMap<string, Experiment> = new Map<string, Experiment>(
  [bigram, xbow, attentionHead, gpt].map((e) => [e.name, e as Experiment]),
);

export type * from "./types.ts";
