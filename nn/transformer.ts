/**
 * The lecture's transformer modules (gpt.py): MultiHeadAttention, FeedForward and Block, with
 * gpt.py's parameter names so a checkpoint maps onto the PyTorch state dict. Heads keep their
 * per-head names (`heads.H.key.weight` [headSize, nEmbd]) but are stored back to back
 * (ParamStore.registerGroup), so all heads' keys are one [nEmbd, nEmbd] matrix and a head
 * costs no dispatch of its own.
 */
import { add, linear, relu } from "./attention_ops.ts";
import type { Graph, Var } from "./graph.ts";
import { causalSelfAttentionStandIn as causalSelfAttention } from "./heads_standin.ts";
import { Dropout, type InitScheme, LayerNorm, Linear, linearInit } from "./modules.ts";
import type { Param, ParamGroup, ParamStore } from "./params.ts";

/** Shape and options of a transformer block (gpt.py's globals, plus the lecture's ladder). */
export interface BlockOptions {
  nEmbd: number;
  nHead: number;
  /** Dropout probability at gpt.py's three sites (attention weights, proj, FFN output). */
  dropout: number;
  /** Hidden width of the feed-forward as a multiple of nEmbd; 0 = no feed-forward. */
  ffnMult: number;
  /** Residual connections (x + f(x)), with the projections gpt.py adds alongside them. */
  residual: boolean;
  /** Pre-LN: ln1 before attention and ln2 before the feed-forward. */
  layerNorm: boolean;
  init: InitScheme;
}

/**
 * nn.ModuleList of heads plus `proj`: heads.H.{key,query,value}.weight [headSize, nEmbd] (no
 * bias) and proj.{weight,bias} [nEmbd, nEmbd] when `proj`. Heads are concatenated in order
 * (torch.cat(heads, -1)); dropout on the attention weights and after proj, as in gpt.py.
 */
export class MultiHeadAttention {
  readonly key: ParamGroup;
  readonly query: ParamGroup;
  readonly value: ParamGroup;
  readonly proj?: Linear;
  readonly #dropout: Dropout;
  readonly headSize: number;

  constructor(
    store: ParamStore,
    name: string,
    nEmbd: number,
    readonly nHead: number,
    opts: { proj: boolean; dropout: number; init: InitScheme },
  ) {
    if (!Number.isInteger(nEmbd / nHead)) {
      throw new RangeError(`${name}: nEmbd ${nEmbd} is not divisible by nHead ${nHead}`);
    }
    this.headSize = nEmbd / nHead;
    const { weight } = linearInit(nEmbd, opts.init);
    const group = (kind: string) =>
      store.registerGroup(
        `${name}.heads.${kind}`,
        Array.from({ length: nHead }, (_, h) => `${name}.heads.${h}.${kind}.weight`),
        [this.headSize, nEmbd],
        weight,
      );
    this.key = group("key");
    this.query = group("query");
    this.value = group("value");
    if (opts.proj) this.proj = new Linear(store, `${name}.proj`, nEmbd, nEmbd, true, opts.init);
    this.#dropout = new Dropout(opts.dropout);
  }

  /** x [B, T, nEmbd] → [B, T, nEmbd]. */
  call(g: Graph, x: Var): Var {
    const project = (w: () => Param) => linear(g, x, g.param(w()));
    const k = project(this.key.whole);
    const q = project(this.query.whole);
    const v = project(this.value.whole);
    const p = this.#dropout.p;
    const out = causalSelfAttention(g, q, k, v, {
      nHead: this.nHead,
      scale: 1 / Math.sqrt(this.headSize),
      dropout: p > 0 && g.training ? { p, ...g.randomSite("MultiHeadAttention") } : undefined,
    });
    return this.#dropout.call(g, this.proj ? this.proj.call(g, out) : out);
  }
}

/**
 * gpt.py's FeedFoward: net.0 Linear(n, m·n), ReLU, net.2 Linear(m·n, n), Dropout. The lecture
 * introduces it as Linear(n, n) + ReLU alone and adds the projection net.2 with the residual
 * connections; without `residual` net.2 exists only when m ≠ 1 (the width must come back).
 */
export class FeedForward {
  readonly fc: Linear;
  readonly proj?: Linear;
  readonly #dropout: Dropout;
  constructor(
    store: ParamStore,
    name: string,
    nEmbd: number,
    opts: { mult: number; residual: boolean; dropout: number; init: InitScheme },
  ) {
    const hidden = opts.mult * nEmbd;
    this.fc = new Linear(store, `${name}.net.0`, nEmbd, hidden, true, opts.init);
    if (opts.residual || opts.mult !== 1) {
      this.proj = new Linear(store, `${name}.net.2`, hidden, nEmbd, true, opts.init);
    }
    this.#dropout = new Dropout(opts.dropout);
  }

  /** x [..., nEmbd] → [..., nEmbd]. */
  call(g: Graph, x: Var): Var {
    const h = relu(g, this.fc.call(g, x));
    return this.#dropout.call(g, this.proj ? this.proj.call(g, h) : h);
  }
}

/**
 * gpt.py's Block: x = x + sa(ln1(x)); x = x + ffwd(ln2(x)). `residual` false drops the
 * additions (x = sa(x); x = ffwd(x)), `layerNorm` false the norms, `ffnMult` 0 the
 * feed-forward: the steps of the lecture's ladder. Registered in gpt.py's order (sa, ffwd,
 * ln1, ln2).
 */
export class Block {
  readonly sa: MultiHeadAttention;
  readonly ffwd?: FeedForward;
  readonly ln1?: LayerNorm;
  readonly ln2?: LayerNorm;
  constructor(store: ParamStore, name: string, readonly opts: BlockOptions) {
    const { nEmbd, nHead, dropout, init, residual } = opts;
    this.sa = new MultiHeadAttention(store, `${name}.sa`, nEmbd, nHead, {
      proj: residual,
      dropout,
      init,
    });
    if (opts.ffnMult > 0) {
      this.ffwd = new FeedForward(store, `${name}.ffwd`, nEmbd, {
        mult: opts.ffnMult,
        residual,
        dropout,
        init,
      });
    }
    if (opts.layerNorm) {
      this.ln1 = new LayerNorm(store, `${name}.ln1`, nEmbd);
      this.ln2 = new LayerNorm(store, `${name}.ln2`, nEmbd);
    }
  }

  /** x [B, T, nEmbd] → [B, T, nEmbd]. */
  call(g: Graph, x: Var): Var {
    const sublayer = (x: Var, f: (x: Var) => Var, ln?: LayerNorm) => {
      const y = f(ln ? ln.call(g, x) : x);
      return this.opts.residual ? add(g, x, y) : y;
    };
    x = sublayer(x, (x) => this.sa.call(g, x), this.ln1);
    if (this.ffwd) x = sublayer(x, (x) => this.ffwd!.call(g, x), this.ln2);
    return x;
  }
}
