/**
 * Modules in the lecture's shapes. A module registers its parameters in a ParamStore when it
 * is built and records ops when called; PyTorch's default initialisations are kept so losses
 * are comparable with the lecture.
 */
import { createTensor, type Tensor } from "../kernels/tensor.ts";
import { layerNorm, softmax } from "./normalization_ops.ts";
import { matmul } from "./matmul_ops.ts";
import { add, dropout } from "./elementwise_ops.ts";
import type { Graph, Var } from "./graph.ts";
import {
  addLayerNorm,
  type AddLayerNormResult,
  classifierLoss,
  linear,
  type LinearOptions,
} from "./layer_ops.ts";
import { embedding, type LossSink } from "./ops.ts";
import type { Init, ParamHandle, ParamStore } from "./params.ts";

/**
 * How Linear and Embedding initialise: "pytorch" is PyTorch's default (Embedding N(0, 1),
 * Linear U(±1/√in) for weight and bias); "gpt" is the lecture's gpt.py `_init_weights`
 * (weights N(0, 0.02), biases 0).
 */
export type InitScheme = "pytorch" | "gpt";

const GPT_NORMAL: Init = { kind: "normal", mean: 0, std: 0.02 };
const ZERO: Init = { kind: "constant", value: 0 };

/** The weight init of a Linear layer with `inF` inputs under a scheme. */
export function linearInit(inF: number, scheme: InitScheme): { weight: Init; bias: Init } {
  if (scheme === "gpt") return { weight: GPT_NORMAL, bias: ZERO };
  const bound = 1 / Math.sqrt(inF);
  const uniform = { kind: "uniform", low: -bound, high: bound } as const;
  return { weight: uniform, bias: uniform };
}

/** nn.Embedding: a [num, dim] table, N(0, 1) (PyTorch) or N(0, 0.02) (gpt init). */
export class Embedding {
  /** The table (after the store is finalised), for kernels that read it directly. */
  readonly weight: ParamHandle;
  constructor(
    store: ParamStore,
    name: string,
    num: number,
    readonly dim: number,
    init: InitScheme = "pytorch",
  ) {
    const std = init === "gpt" ? 0.02 : 1;
    this.weight = store.register(`${name}.weight`, [num, dim], { kind: "normal", mean: 0, std });
  }
  /** Rows for token ids [B,T] → [B,T,dim]. */
  call(g: Graph, idx: Var): Var {
    return embedding(g, g.param(this.weight()), idx);
  }
}

/** nn.Linear: weight [out, in] and optional bias [out], initialised per `init`. */
export class Linear {
  readonly #weight: ParamHandle;
  readonly #bias?: ParamHandle;
  constructor(
    store: ParamStore,
    name: string,
    inF: number,
    outF: number,
    bias = true,
    init: InitScheme = "pytorch",
  ) {
    const inits = linearInit(inF, init);
    this.#weight = store.register(`${name}.weight`, [outF, inF], inits.weight);
    if (bias) this.#bias = store.register(`${name}.bias`, [outF], inits.bias);
  }
  /** x [..., in] → act(x·Wᵀ + b) [..., out], the activation fused into the matmul. */
  call(g: Graph, x: Var, opts: LinearOptions = {}): Var {
    return linear(g, x, ...this.#vars(g), opts);
  }

  /**
   * The layer as a classifier head: logits = x·Wᵀ + b and their mean cross-entropy against
   * `targets` into `sink`, with the loss gradient, in one pass (nn/layer_ops.ts
   * classifierLoss). Returns the logits.
   */
  loss(g: Graph, x: Var, targets: Var, sink: LossSink): Var {
    return classifierLoss(g, x, ...this.#vars(g), targets, sink);
  }

  #vars(g: Graph): [Var, Var | undefined] {
    return [g.param(this.#weight()), this.#bias ? g.param(this.#bias()) : undefined];
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
  constructor(
    store: ParamStore,
    vocabSize: number,
    blockSize: number,
    nEmbd: number,
    init: InitScheme = "pytorch",
  ) {
    this.tokens = new Embedding(store, "token_embedding_table", vocabSize, nEmbd, init);
    this.positions = new Embedding(store, "position_embedding_table", blockSize, nEmbd, init);
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

/** nn.LayerNorm over the last axis: weight 1, bias 0, eps 1e-5. */
export class LayerNorm {
  readonly #weight: ParamHandle;
  readonly #bias: ParamHandle;
  constructor(store: ParamStore, name: string, dim: number) {
    this.#weight = store.register(`${name}.weight`, [dim], { kind: "constant", value: 1 });
    this.#bias = store.register(`${name}.bias`, [dim], ZERO);
  }
  /** x [..., dim] → [..., dim]. */
  call(g: Graph, x: Var): Var {
    return layerNorm(g, x, g.param(this.#weight()), g.param(this.#bias()));
  }

  /** The residual step of a pre-LN block in one kernel: sum = x + delta, out = ln(sum). */
  addCall(g: Graph, x: Var, delta: Var): AddLayerNormResult {
    return addLayerNorm(g, x, delta, g.param(this.#weight()), g.param(this.#bias()));
  }
}

/**
 * nn.Dropout(p): active only on training graphs. Each call is its own random site
 * (`g.randomSite()`: the run's dropout stream, the step counter, a fresh call index), so a
 * module used twice draws two masks, and every step draws new ones.
 */
export class Dropout {
  constructor(readonly p: number) {
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout: p = ${p} is not in [0, 1)`);
  }
  /** x → x with elements zeroed with probability p and the rest scaled by 1/(1 − p). */
  call(g: Graph, x: Var): Var {
    if (this.p === 0 || !g.training) return x;
    return dropout(g, x, this.p, g.randomSite("Dropout"));
  }
}
