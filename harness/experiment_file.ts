/**
 * Experiments given as a module path (`deno task exp examples/char_mlp.ts`): loaded, checked to
 * export exactly one experiment, and its name kept to one plain path segment.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { experiments } from "../experiments/mod.ts";
import type { Experiment } from "../experiments/types.ts";
import { UsageError } from "./errors.ts";

/** Whether an `exp` name is a module path (`examples/char_mlp.ts`) rather than a registered name. */
export function isExperimentFile(name: string): boolean {
  return /\.(ts|mts|js|mjs)$/.test(name);
}

function looksLikeExperiment(value: unknown): value is Experiment {
  if (value === null || typeof value !== "object") return false;
  const e = value as Record<string, unknown>;
  return (e.kind === "language-model" || e.kind === "check") && typeof e.name === "string" &&
    typeof e.schema === "object";
}

/** Loads the one experiment a module file exports, so a new model can be tried before it is registered. */
export async function importExperiment(path: string): Promise<Experiment> {
  const url = pathToFileURL(resolve(path)).href;
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
  } catch (e) {
    throw new UsageError(`cannot load experiment file ${path}: ${(e as Error).message}`);
  }
  const found = Object.values(mod).filter(looksLikeExperiment);
  if (found.length !== 1) {
    throw new UsageError(
      `${path} must export exactly one experiment (an object with kind, name and schema); ` +
        `it exports ${found.length}`,
    );
  }
  const experiment = found[0];
  // The name becomes a directory under --out: it must stay one plain path segment.
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(experiment.name) || experiment.name.includes("..")) {
    throw new UsageError(
      `${path} exports an experiment named ${JSON.stringify(experiment.name)}; a name must be ` +
        "letters, digits, '_', '-' or '.', without '..' or a path separator (results go to " +
        "--out/<name>/)",
    );
  }
  if (experiments.has(experiment.name)) {
    throw new UsageError(
      `${path} exports an experiment named '${experiment.name}', which is already registered`,
    );
  }
  return experiment;
}
