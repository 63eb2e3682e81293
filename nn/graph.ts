/**
 * Reverse-mode autograd over recorded dispatches. Ops record their forward kernels into the
 * graph's Recorder and push a closure that records their backward kernels; `backward()` runs
 * the closures in reverse. Everything is recorded once and replayed as a Plan, so the tape
 * exists only while a step is being captured.
 *
 * Gradient accumulation is decided at record time: the first op to contribute to a gradient
 * overwrites it, later ones add. No zero-fill dispatches, and the order of additions is the
 * tape order, so results are deterministic.
 */
import type { Gpu } from "../kernels/device.ts";
import type { Recorder } from "../kernels/program.ts";
import { streamKey } from "../kernels/philox.ts";
import { createTensor, reshape, type Tensor } from "../kernels/tensor.ts";
import type { Param } from "./params.ts";

/**
 * What a forward pass may draw randomness from (dropout): the run seed and the device
 * counters, whose `counterIndex` slot advances once per step so a replayed step draws afresh.
 */
export interface RandomContext {
  seed: number;
  counters: Tensor;
  counterIndex: number;
}

/** One random site of a graph: the dropout stream's key, the counter slot and a unique index. */
export interface RandomSite extends RandomContext {
  /** `streamKey(seed, "dropout")`. */
  key: [number, number];
  /** Unique within the graph, in recording order, so two sites never draw the same mask. */
  callIndex: number;
}

/** A value in the graph: a device tensor, and whether gradients flow to it. */
export class Var {
  constructor(
    readonly data: Tensor,
    readonly requiresGrad: boolean,
    /** Set for parameters: the gradient lives in the grad arena. */
    readonly param?: Param,
    /**
     * Set for views (nn/shape_ops.ts `reshape`): the Var whose storage this one shares. The
     * gradient is then that Var's gradient seen in this shape, so a view needs no backward.
     * Always a root, never itself a view.
     */
    readonly viewOf?: Var,
  ) {}
  /** Shape of the underlying tensor. */
  get shape(): readonly number[] {
    return this.data.shape;
  }
}

/** A gradient destination and whether the op must add to what is already there. */
export interface GradTarget {
  tensor: Tensor;
  accumulate: boolean;
}

/** Records a forward pass (and, when training, its backward) into one Recorder. */
export class Graph {
  readonly #tape: (() => void)[] = [];
  readonly #grads = new Map<Var, Tensor>();
  // Keyed by the parameter for parameter Vars, so two uses of one parameter share a gradient.
  readonly #written = new Set<object>();
  readonly #paramVars = new Map<Param, Var>();
  #names = 0;
  #randomSites = 0;

  constructor(
    readonly rec: Recorder,
    /** When false, ops record no backward (evaluation and generation) and dropout is off. */
    readonly training: boolean,
    /** The run's randomness; the harness passes it to every graph it records. */
    readonly random?: RandomContext,
  ) {}

  /**
   * A new random site (one per dropout call): the harness's seed and counters with the next
   * call index. Sites are numbered in recording order, so the same model code gets the same
   * masks run to run. Throws when the graph was built without a RandomContext.
   */
  randomSite(what = "dropout"): RandomSite {
    if (!this.random) {
      throw new Error(
        `${what}: this graph has no random context (new Graph(rec, training, { seed, counters, ` +
          "counterIndex }))",
      );
    }
    return {
      ...this.random,
      key: streamKey(this.random.seed, "dropout"),
      callIndex: this.#randomSites++,
    };
  }

  /** The device. */
  get gpu(): Gpu {
    return this.rec.gpu;
  }

  /** A graph input that needs no gradient (token ids, targets). */
  constant(tensor: Tensor): Var {
    return new Var(tensor, false);
  }

  /** A parameter as a graph value; its gradient is its grad-arena view. */
  param(p: Param): Var {
    let v = this.#paramVars.get(p);
    if (!v) this.#paramVars.set(p, v = new Var(p.value, this.training, p));
    return v;
  }

  /** Allocates an intermediate f32 tensor (lives as long as the plan). */
  alloc(shape: readonly number[], name: string): Tensor {
    return createTensor(this.gpu, shape, "f32", `${name}#${this.#names++}`);
  }

  /** Wraps an op output; `backward` is recorded later, in reverse order, if any input needs it. */
  output(data: Tensor, inputs: readonly Var[], backward: (out: Var) => void): Var {
    return this.outputs([data], inputs, ([out]) => backward(out))[0];
  }

  /**
   * Wraps the outputs of an op with several (split): one backward, recorded after every
   * consumer of any of them, reads all their gradients at once.
   */
  outputs(data: readonly Tensor[], inputs: readonly Var[], backward: (outs: Var[]) => void): Var[] {
    const requiresGrad = this.training && inputs.some((v) => v.requiresGrad);
    const outs = data.map((d) => new Var(d, requiresGrad));
    if (requiresGrad) this.#tape.push(() => backward(outs));
    // A copy, so a caller reordering the array (split(...).reverse()) leaves the backward's.
    return [...outs];
  }

  /** The gradient of `v` for reading in a backward closure (undefined if nothing flowed). */
  gradOf(v: Var): Tensor | undefined {
    return this.#written.has(this.#key(v)) ? this.#grad(v) : undefined;
  }

  /** Where an op writes its contribution to `v`'s gradient, overwriting on first contribution. */
  gradTarget(v: Var): GradTarget {
    const key = this.#key(v);
    const accumulate = this.#written.has(key);
    this.#written.add(key);
    return { tensor: this.#grad(v), accumulate };
  }

  /** Records the backward of everything on the tape, last op first. */
  backward(): void {
    if (!this.training) throw new Error("backward() on a graph recorded without training");
    for (let i = this.#tape.length - 1; i >= 0; i--) this.#tape[i]();
    this.#tape.length = 0;
  }

  // Whose gradient `v` shares: the parameter's, the viewed Var's, or its own.
  #key(v: Var): object {
    const root = v.viewOf ?? v;
    return root.param ?? root;
  }

  #grad(v: Var): Tensor {
    if (v.viewOf) return reshape(this.#grad(v.viewOf), v.shape, `grad.${v.data.name}`);
    if (v.param) return v.param.grad;
    let g = this.#grads.get(v);
    if (!g) {
      g = this.alloc(v.shape, `grad.${v.data.name}`);
      this.#grads.set(v, g);
    }
    return g;
  }
}
