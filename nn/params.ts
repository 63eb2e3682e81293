/**
 * Parameter storage. Every parameter of a model is a view into one arena buffer, and its
 * gradient and AdamW moments are views at the same offsets in three sibling arenas. One flat
 * layout means AdamW is a single dispatch, a checkpoint is four reads, and the determinism
 * fingerprint is one hash.
 */
import type { Gpu } from "../kernels/device.ts";
import { streamKey } from "../kernels/philox.ts";
import type { Recorder } from "../kernels/program.ts";
import { fillNormal, fillUniform } from "../kernels/random_fill.ts";
import {
  createTensor,
  LimitError,
  readF32,
  Tensor,
  tensorView,
  writeTensor,
} from "../kernels/tensor.ts";

/** How a parameter is initialised (PyTorch's defaults for the lecture's modules). */
export type Init =
  | { kind: "normal"; mean: number; std: number }
  | { kind: "uniform"; low: number; high: number }
  | { kind: "constant"; value: number };

/** A registered parameter: its value, gradient and AdamW moments, all arena views. */
export interface Param {
  name: string;
  shape: number[];
  init: Init;
  /** Position in registration order: the init stream's counter word, so inits are independent. */
  index: number;
  value: Tensor;
  grad: Tensor;
  m: Tensor;
  v: Tensor;
}

/** The four arenas of a finalised store. */
export interface Arenas {
  params: Tensor;
  grads: Tensor;
  m: Tensor;
  v: Tensor;
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

// 256 bytes satisfies minStorageBufferOffsetAlignment on every WebGPU device.
const ALIGN_FLOATS = 64;

/**
 * What `register` returns: a parameter declared now whose tensors exist only after the store's
 * `finalize()`, so a module calls it (`this.weight()`) when it records, not when it is built.
 */
export type ParamHandle = () => Param;

/** A group of equally shaped parameters stored back to back (see `registerGroup`). */
export interface ParamGroup {
  /** Each member, registered (and checkpointed) under its own name. */
  parts: ParamHandle[];
  /**
   * All members as one parameter [n·shape[0], ...shape[1..]] (member k's rows come k-th):
   * value, gradient and moments are views over the same arena ranges as the parts'. It is not
   * listed in `params` (init, checkpoints and the fingerprint see the parts).
   */
  whole: ParamHandle;
}

const aligned = (floats: number) => Math.ceil(floats / ALIGN_FLOATS) * ALIGN_FLOATS;

/** Registers parameters, then lays them out in arenas on `finalize()`. */
export class ParamStore {
  readonly #pending: { name: string; shape: number[]; init: Init; offset: number }[] = [];
  readonly #groups: { name: string; shape: number[]; init: Init; first: number; n: number }[] = [];
  #floats = 0;
  #params: Param[] | undefined;
  #wholes: Param[] | undefined;
  #arenas: Arenas | undefined;

  constructor(readonly gpu: Gpu) {}

  /** Declares a parameter; returns a handle whose tensors exist after `finalize()`. */
  register(name: string, shape: number[], init: Init): ParamHandle {
    const handle = this.#add(name, shape, init, this.#floats);
    this.#floats += aligned(size(shape));
    return handle;
  }

  /**
   * Declares parameters of one shape stored contiguously, with no alignment padding between
   * them, so one kernel can read them as a single matrix (e.g. every attention head's key
   * weights as [nHead·headSize, nEmbd] for one batched matmul) while each keeps its own name.
   * Each member is initialised exactly as if registered alone.
   */
  registerGroup(name: string, names: readonly string[], shape: number[], init: Init): ParamGroup {
    if (names.length === 0) throw new Error(`ParamStore: group ${name} has no members`);
    const first = this.#pending.length;
    const parts = names.map((n, k) => this.#add(n, shape, init, this.#floats + k * size(shape)));
    this.#floats += aligned(names.length * size(shape));
    const g = this.#groups.push({ name, shape, init, first, n: names.length }) - 1;
    return {
      parts,
      whole: () => {
        if (!this.#wholes) throw new Error(`parameter group ${name} used before finalize()`);
        return this.#wholes[g];
      },
    };
  }

  #add(name: string, shape: number[], init: Init, offset: number): ParamHandle {
    if (this.#params) throw new Error(`ParamStore: register(${name}) after finalize()`);
    if (this.#pending.some((p) => p.name === name)) {
      throw new Error(`ParamStore: duplicate parameter name ${name}`);
    }
    const index = this.#pending.length;
    this.#pending.push({ name, shape, init, offset });
    return () => {
      if (!this.#params) throw new Error(`parameter ${name} used before finalize()`);
      return this.#params[index];
    };
  }

  /** Allocates the arenas and the per-parameter views. */
  finalize(): Param[] {
    if (this.#params) return this.#params;
    const total = Math.max(ALIGN_FLOATS, this.#floats);
    // Every parameter lives in one arena, bound whole by AdamW: the arena must fit one binding.
    const limit = this.gpu.limits.maxStorageBufferBindingSize;
    if (total * 4 > limit) {
      const largest = [...this.#pending]
        .sort((a, b) => size(b.shape) - size(a.shape))
        .slice(0, 3)
        .map((p) => `${p.name} [${p.shape.join(", ")}]`);
      throw new LimitError(
        `ParamStore: ${this.#pending.length} parameters need ${total * 4} bytes in one arena, ` +
          `above the device's maxStorageBufferBindingSize of ${limit} (largest: ` +
          `${largest.join(", ")})`,
      );
    }
    const arena = (label: string) => createTensor(this.gpu, [total], "f32", label);
    const arenas = {
      params: arena("params"),
      grads: arena("grads"),
      m: arena("adam.m"),
      v: arena("adam.v"),
    };
    this.#arenas = arenas;
    const param = (name: string, shape: number[], init: Init, index: number, offset: number) => {
      // A group member may start off the binding alignment: its view is then for host reads
      // and writes only, and kernels bind the group's whole (which starts aligned).
      const view = (base: Tensor, prefix: string) =>
        offset % ALIGN_FLOATS === 0
          ? tensorView(base, offset * 4, shape, prefix + name)
          : new Tensor(
            base.gpu,
            base.buffer,
            shape,
            "f32",
            prefix + name,
            base.byteOffset + offset * 4,
          );
      return {
        name,
        shape,
        init,
        index,
        value: view(arenas.params, ""),
        grad: view(arenas.grads, "grad."),
        m: view(arenas.m, "adam.m."),
        v: view(arenas.v, "adam.v."),
      };
    };
    this.#params = this.#pending.map((p, index) => param(p.name, p.shape, p.init, index, p.offset));
    this.#wholes = this.#groups.map((g) =>
      param(
        g.name,
        [g.n * g.shape[0], ...g.shape.slice(1)],
        g.init,
        -1,
        this.#pending[g.first].offset,
      )
    );
    return this.#params;
  }

  /** The parameters in registration order (after finalize). */
  get params(): Param[] {
    if (!this.#params) throw new Error("ParamStore not finalised");
    return this.#params;
  }

  /** The arenas (after finalize). */
  get arenas(): Arenas {
    if (!this.#arenas) throw new Error("ParamStore not finalised");
    return this.#arenas;
  }

  /** Total elements over all parameters (without padding). */
  get count(): number {
    return this.params.reduce((n, p) => n + p.value.size, 0);
  }

  /** Records the initialisation fills from the seed's init stream. */
  recordInit(rec: Recorder, seed: number): void {
    const key = streamKey(seed, "init");
    for (const p of this.params) {
      // A group member may start between alignment boundaries: fill it through the aligned
      // view that ends with it, skipping the elements before it.
      const start = (p.value.byteOffset - this.arenas.params.byteOffset) / 4;
      const skip = start % ALIGN_FLOATS;
      const out = skip === 0 ? p.value : tensorView(
        this.arenas.params,
        p.value.byteOffset - skip * 4,
        [skip + p.value.size],
        `init.${p.name}`,
      );
      if (p.init.kind === "normal") {
        fillNormal(rec, out, key, p.index, p.init.mean, p.init.std, skip);
      } else if (p.init.kind === "uniform") {
        fillUniform(rec, out, key, p.index, p.init.low, p.init.high, skip);
      } else fillUniform(rec, out, key, p.index, p.init.value, p.init.value, skip);
    }
  }

  /** Reads every parameter (no padding), in registration order. */
  async read(which: keyof Arenas = "params"): Promise<Map<string, Float32Array>> {
    const all = await readF32(this.arenas[which]);
    const out = new Map<string, Float32Array>();
    for (const p of this.params) {
      const start = (p.value.byteOffset - this.arenas.params.byteOffset) / 4;
      out.set(p.name, all.slice(start, start + p.value.size));
    }
    return out;
  }

  /** Overwrites parameters (or moments) from host arrays keyed by name. */
  write(values: Map<string, Float32Array>, which: keyof Arenas = "params"): void {
    for (const p of this.params) {
      const data = values.get(p.name);
      if (!data) throw new Error(`missing values for parameter ${p.name}`);
      const target = which === "params" ? p.value : which === "grads" ? p.grad : p[which];
      writeTensor(target, data);
    }
  }

  /** sha256 over the parameters' bytes in registration order: the determinism fingerprint. */
  async sha256(): Promise<string> {
    return await paramsSha256([...(await this.read()).values()]);
  }
}

/**
 * sha256 over parameter arrays' bytes, in the order given: the fingerprint of a store
 * (registration order) and of a checkpoint (file order, the same) alike.
 */
export async function paramsSha256(parts: readonly Float32Array[]): Promise<string> {
  const bytes = new Uint8Array(parts.reduce((n, a) => n + a.byteLength, 0));
  let offset = 0;
  for (const a of parts) {
    bytes.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), offset);
    offset += a.byteLength;
  }
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
