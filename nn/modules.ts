/**
 * Modules in the lecture's shapes. A module registers its parameters in a ParamStore when it
 * is built and records ops when called; PyTorch's default initialisations are kept so losses
 * are comparable with the lecture.
 */
import { createTensor, type Tensor } from "../kernels/tensor.ts";
import { add, linear, matmul, softmax } from "./attention_ops.ts";
import type { Graph, Var } from "./graph.ts";
import { embedding } from "./ops.ts";
import type { Param, ParamStore } from "./params.ts";

/** nn.Embedding: a [num, dim] table initialised N(0, 1). */
export class Embedding {
  readonly #weight: () => Param;
  constructor(store: ParamStore, name: string, num: number, readonly dim: number) {
    this.#weight = store.register(`${name}.weight`, [num, dim], {
      kind: "normal",
      mean: 0,
      std: 1,
    });
  }
  /** Rows for token ids [B,T] → [B,T,dim]. */
  call(g: Graph, idx: Var): Var {
    return embedding(g, g.param(this.#weight()), idx);
  }
}

/** nn.Linear: weight [out, in] and optional bias [out], both U(±1/√in). */
export class Linear {
  readonly #weight: () => Param;
  readonly #bias?: () => Param;
  constructor(store: ParamStore, name: string, inF: number, outF: number, bias = true) {
    const bound = 1 / Math.sqrt(inF);
    const init = { kind: "uniform", low: -bound, high: bound } as const;
    this.#weight = store.register(`${name}.weight`, [outF, inF], init);
    if (bias) this.#bias = store.register(`${name}.bias`, [outF], init);
  }
  /** x [..., in] → [..., out]. */
  call(g: Graph, x: Var): Var {
    return linear(g, x, g.param(this.#weight()), this.#bias ? g.param(this.#bias()) : undefined);
  }
}

/** One head of causal self-attention: softmax(mask(q·kᵀ/√headSize))·v. */
export class Head {
  readonly key: Linear;
  readonly query: Linear;
  readonly value: Linear;
  constructor(store: ParamStore, name: string, nEmbd: number, readonly headSize: number) {
    this.key = new Linear(store, `${name}.key`, nEmbd, headSize, false);
    this.query = new Linear(store, `${name}.query`, nEmbd, headSize, false);
    this.value = new Linear(store, `${name}.value`, nEmbd, headSize, false);
  }
  /** x [B,T,C] → [B,T,headSize]. */
  call(g: Graph, x: Var): Var {
    const k = this.key.call(g, x);
    const q = this.query.call(g, x);
    const scores = matmul(g, q, k, { transB: true });
    const weights = softmax(g, scores, { causal: true, scale: 1 / Math.sqrt(this.headSize) });
    return matmul(g, weights, this.value.call(g, x));
  }
}

/** Token plus position embeddings: [B,T] ids → [B,T,C]. */
export class TokenAndPosition {
  readonly tokens: Embedding;
  readonly positions: Embedding;
  readonly #positionIds = new Map<number, Tensor>();
  constructor(store: ParamStore, vocabSize: number, blockSize: number, nEmbd: number) {
    this.tokens = new Embedding(store, "token_embedding_table", vocabSize, nEmbd);
    this.positions = new Embedding(store, "position_embedding_table", blockSize, nEmbd);
  }
  /** Sum of the two lookups; positions broadcast over the batch. */
  call(g: Graph, idx: Var): Var {
    const T = idx.shape[idx.shape.length - 1];
    let ids = this.#positionIds.get(T);
    if (!ids) {
      ids = createTensor(
        g.gpu,
        [T],
        "u32",
        `positions.${T}`,
        Array.from({ length: T }, (_, i) => i),
      );
      this.#positionIds.set(T, ids);
    }
    return add(g, this.tokens.call(g, idx), this.positions.call(g, g.constant(ids)));
  }
}
