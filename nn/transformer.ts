/**
 * The lecture's transformer modules (gpt.py): MultiHeadAttention, FeedForward and Block, with
 * gpt.py's parameter names so a checkpoint maps onto the PyTorch state dict. Heads keep their
 * per-head names (`heads.H.key.weight` [headSize, nEmbd]) but are stored back to back
 * (ParamStore.registerGroup), so every head's query, key and value weights are one
 * [3·nEmbd, nEmbd] matrix and a head costs no dispatch of its own.
 */
import { add } from "./elementwise_ops.ts";
import type { Graph, Var } from "./graph.ts";
import { linear } from "./layer_ops.ts";
import { causalSelfAttentionQkv } from "./attention.ts";
import { Dropout, type InitScheme, LayerNorm, Linear, linearInit } from "./modules.ts";
import type { ParamGroup, ParamStore } from "./params.ts";

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
  /**
   * Every head's query, key and value weights, in that order (all queries, then all keys,
   * then all values), stored back to back: one [3·nEmbd, nEmbd] matrix for one matmul whose
   * output holds q, k and v as column blocks.
   */
  readonly qkv: ParamGroup;
  readonly proj?: Linear;
  readonly #dropout: Dropout;
  readonly headSize: number;

  constructor(
    store: ParamStore,
    readonly name: string,
    readonly nEmbd: number,
    readonly nHead: number,
    opts: { proj: boolean; dropout: number; init: InitScheme },
  ) {
    if (!Number.isInteger(nEmbd / nHead)) {
      throw new RangeError(`${name}: nEmbd ${nEmbd} is not divisible by nHead ${nHead}`);
    }
    this.headSize = nEmbd / nHead;
    const { weight } = linearInit(nEmbd, opts.init);
    const names = ["query", "key", "value"].flatMap((kind) =>
      Array.from({ length: nHead }, (_, h) => `${name}.heads.${h}.${kind}.weight`)
    );
    this.qkv = store.registerGroup(`${name}.heads.qkv`, names, [this.headSize, nEmbd], weight);
    if (opts.proj) this.proj = new Linear(store, `${name}.proj`, nEmbd, nEmbd, true, opts.init);
    this.#dropout = new Dropout(opts.dropout);
  }

  /** x [B, T, nEmbd] → [B, T, nEmbd]. */
  call(g: Graph, x: Var): Var {
    // One matmul for every head's q, k and v; attention reads the column blocks in place.
    const qkv = linear(g, x, g.param(this.qkv.whole()));
    const p = this.#dropout.p;
    const out = causalSelfAttentionQkv(g, qkv, {
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
    // The ReLU runs in net.0's matmul epilogue.
    const h = this.fc.call(g, x, { activation: "relu" });
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
    return this.step(g, { x }).x;
  }

  /**
   * The block on the residual stream, with each residual add fused into the layer norm that
   * reads its sum (nn/layer_ops.ts addLayerNorm): ln2 here, and `next` (the next block's ln1,
   * or ln_f) after the feed-forward, whose output comes back as `normed`. Numerically the
   * same sums as `add` then `LayerNorm.call`.
   */
  step(g: Graph, stream: ResidualStream, next?: LayerNorm): ResidualStream {
    const x = stream.x;
    const h = stream.normed ?? (this.ln1 ? this.ln1.call(g, x) : x);
    const a = this.sa.call(g, h);
    if (!this.ffwd) return this.#join(g, x, a, next);
    const mid = this.#join(g, x, a, this.ln2);
    return this.#join(g, mid.x, this.ffwd.call(g, mid.normed ?? mid.x), next);
  }

  /** x + y (or y alone without residuals), normed by `ln` when given. */
  #join(g: Graph, x: Var, y: Var, ln?: LayerNorm): ResidualStream {
    if (!this.opts.residual) return { x: y, normed: ln?.call(g, y) };
    if (!ln) return { x: add(g, x, y) };
    const { sum, out } = ln.addCall(g, x, y);
    return { x: sum, normed: out };
  }
}

/**
 * The residual stream between blocks: x, and ln(x) when the norm that reads it next has
 * already been applied (fused with the add that produced x).
 */
export interface ResidualStream {
  x: Var;
  normed?: Var;
}
