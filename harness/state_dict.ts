/**
 * PyTorch / Hugging Face state dicts: plain safetensors files (no seedlab metadata, no `param.`
 * prefixes) holding the parameters under the names the lecture's PyTorch module gives them.
 * `--init-from` reads them (F32, or F16/BF16 widened to F32); `deno task export` writes them.
 *
 * A PyTorch module also keeps buffers in its state dict that seedlab computes instead: the
 * causal mask `tril` of every attention head. Tensors whose name matches COMPUTED_BUFFER are
 * ignored on load (unless the model has a parameter of that name) and written on export, so
 * `model.load_state_dict(...)` accepts the file with its default `strict=True`.
 */
import { resolve } from "node:path";
import type { LanguageModelExperiment, TorchTensor } from "../experiments/types.ts";
import {
  checkInitCompatible,
  checkpointFromFile,
  checkpointParamsSha256,
  type CheckpointTensor,
  isSeedlabCheckpoint,
} from "./checkpoint.ts";
import { UsageError } from "./errors.ts";
import type { InitFrom } from "./result_schema.ts";
import { loadSafetensors, type SafeTensor, toFloat32 } from "./safetensors.ts";

/** Names of the buffers PyTorch stores and seedlab computes: the causal mask (`sa_head.tril`). */
export const COMPUTED_BUFFER = /(^|\.)tril$/;

/** Parameters read for `--init-from`, from a seedlab checkpoint or a plain state dict. */
export interface InitWeights {
  path: string;
  /** A seedlab checkpoint uses seedlab's names; a state dict uses PyTorch's. */
  kind: "checkpoint" | "state dict";
  /** How messages name the file: "checkpoint of 'bigram' (step 100)". */
  description: string;
  params: Record<string, CheckpointTensor>;
  /** Integer tensors of a state dict: never parameters, allowed only as computed buffers. */
  integers: string[];
}

/** What matchInitWeights found: the parameters by seedlab name, and what it ignored. */
export interface MatchedWeights {
  params: Map<string, Float32Array>;
  /** State-dict buffers skipped by COMPUTED_BUFFER. */
  ignored: string[];
}

// defineProperty keeps a tensor called "__proto__" an ordinary key.
function defineOwn<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/** Reads a seedlab checkpoint or a plain safetensors state dict; a bad file is a UsageError. */
export async function loadInitWeights(path: string): Promise<InitWeights> {
  const file = await loadSafetensors(path);
  if (isSeedlabCheckpoint(file)) {
    const ckpt = checkpointFromFile(path, file);
    return {
      path,
      kind: "checkpoint",
      description: `checkpoint of '${ckpt.experiment}' (step ${ckpt.step})`,
      params: ckpt.params,
      integers: [],
    };
  }
  const params: Record<string, CheckpointTensor> = {};
  const integers: string[] = [];
  for (const [name, t] of Object.entries(file.tensors)) {
    if (t.dtype === "U32") integers.push(name);
    else defineOwn(params, name, { shape: t.shape, data: toFloat32(t) });
  }
  return { path, kind: "state dict", description: `state dict ${path}`, params, integers };
}

/**
 * Loads the `--init-from` weights (seedlab checkpoint or plain state dict) and what the result
 * records of them: the absolute path and the sha256 of the parameters in file order (for a
 * seedlab checkpoint the same hash as the run that wrote it; for a state dict every float
 * tensor, so a changed file is noticed).
 */
export async function loadInitFrom(
  path: string,
): Promise<{ weights: InitWeights; record: InitFrom }> {
  const weights = await loadInitWeights(path);
  return {
    weights,
    record: { path: resolve(path), paramsSha256: await checkpointParamsSha256(weights) },
  };
}

/** Seedlab name → PyTorch name of every parameter; two parameters on one name is a bug. */
export function torchNames(
  experiment: Pick<LanguageModelExperiment, "name" | "torchName">,
  names: readonly string[],
): Map<string, string> {
  const out = new Map<string, string>();
  const taken = new Map<string, string>();
  for (const name of names) {
    const torch = experiment.torchName?.(name) ?? name;
    const other = taken.get(torch);
    if (other !== undefined) {
      throw new Error(
        `${experiment.name}.torchName maps both ${other} and ${name} to ${torch}`,
      );
    }
    taken.set(torch, name);
    out.set(name, torch);
  }
  return out;
}

/**
 * Matches `init` to the model's parameters (PyTorch names for a state dict), skipping computed
 * buffers; throws one UsageError listing every missing, unexpected and mismatched parameter.
 */
export function matchInitWeights(
  experiment: Pick<LanguageModelExperiment, "name" | "torchName">,
  model: readonly { name: string; shape: number[] }[],
  init: InitWeights,
): MatchedWeights {
  const rename = init.kind === "state dict"
    ? torchNames(experiment, model.map((p) => p.name))
    : new Map(model.map((p) => [p.name, p.name]));
  const expected: Record<string, { shape: number[] }> = {};
  for (const p of model) defineOwn(expected, rename.get(p.name)!, { shape: p.shape });
  const isBuffer = (name: string) => !Object.hasOwn(expected, name) && COMPUTED_BUFFER.test(name);
  const given: Record<string, CheckpointTensor> = {};
  const ignored: string[] = [];
  for (const [name, t] of Object.entries(init.params)) {
    if (isBuffer(name)) ignored.push(name);
    else defineOwn(given, name, t);
  }
  const integers = init.integers.filter((n) => !isBuffer(n));
  if (integers.length > 0) {
    throw new UsageError(
      `${init.description}: ${integers.join(", ")} hold integers; parameters must be F32, F16 ` +
        "or BF16",
    );
  }
  ignored.push(...init.integers.filter(isBuffer));
  checkInitCompatible(expected, { params: given, description: init.description });
  return {
    params: new Map(model.map((p) => [p.name, given[rename.get(p.name)!].data])),
    ignored,
  };
}

/** The progress line of an `--init-from` run: where the weights came from, what was skipped. */
export function describeInit(init: InitWeights, matched: MatchedWeights): string {
  const skipped = matched.ignored.length > 0
    ? ` (ignored buffers seedlab computes: ${matched.ignored.join(", ")})`
    : "";
  return `init: ${matched.params.size} parameter(s) from ${init.description}${skipped}`;
}

/** Lower-triangular ones [T, T]: `torch.tril(torch.ones(T, T))`, the lecture's causal mask. */
export function trilOnes(T: number): Float32Array {
  const out = new Float32Array(T * T);
  for (let i = 0; i < T; i++) out.fill(1, i * T, i * T + i + 1);
  return out;
}

/**
 * The default computed buffers: `P.tril` [T, T] for every attention head P (a prefix with
 * `P.key.weight`, `P.query.weight` and `P.value.weight`), T the rows of
 * `position_embedding_table.weight` (the block size). `params` are by PyTorch name.
 */
export function defaultTorchBuffers(
  params: Record<string, { shape: number[] }>,
): Record<string, TorchTensor> {
  const heads = Object.keys(params)
    .filter((n) => n.endsWith(".key.weight"))
    .map((n) => n.slice(0, -".key.weight".length))
    .filter((p) =>
      Object.hasOwn(params, `${p}.query.weight`) &&
      Object.hasOwn(params, `${p}.value.weight`)
    );
  if (heads.length === 0) return {};
  const positions = Object.hasOwn(params, "position_embedding_table.weight")
    ? params["position_embedding_table.weight"]
    : undefined;
  if (!positions) {
    throw new UsageError(
      `cannot size the causal mask of ${heads[0]}.tril: there is no ` +
        "position_embedding_table.weight to give the block size (an experiment can declare " +
        "torchBuffers)",
    );
  }
  const T = positions.shape[0];
  const buffers: Record<string, TorchTensor> = {};
  for (const p of heads) defineOwn(buffers, `${p}.tril`, { shape: [T, T], data: trilOnes(T) });
  return buffers;
}

/**
 * A model's parameters (by seedlab name) as the PyTorch module's state dict: renamed by the
 * experiment's torchName, plus its computed buffers, all F32. Without an experiment (a file
 * that is not registered) names stay as they are.
 */
export function toStateDict(
  experiment: Pick<LanguageModelExperiment, "name" | "torchName" | "torchBuffers"> | undefined,
  params: Record<string, CheckpointTensor>,
): Record<string, SafeTensor> {
  const names = Object.keys(params);
  const rename = experiment ? torchNames(experiment, names) : new Map(names.map((n) => [n, n]));
  const out: Record<string, SafeTensor> = {};
  for (const name of names) {
    defineOwn(out, rename.get(name)!, {
      dtype: "F32",
      shape: params[name].shape,
      data: params[name].data,
    });
  }
  const buffers = experiment?.torchBuffers?.(out) ?? defaultTorchBuffers(out);
  for (const [name, t] of Object.entries(buffers)) {
    if (Object.hasOwn(out, name)) throw new Error(`buffer ${name} clashes with a parameter`);
    defineOwn(out, name, { dtype: "F32", shape: t.shape, data: t.data });
  }
  return out;
}
