/**
 * `deno task exp` arguments: parsed and checked before anything loads, so every problem is a
 * UsageError (exit 2) that costs nothing. Paths are resolved where the user typed them.
 */
import { experiments } from "../experiments/mod.ts";
import { parseCommandArgs } from "./cli.ts";
import { quoteSetValue } from "./config.ts";
import { CORPUS_NAMES } from "./data.ts";
import { UsageError } from "./errors.ts";
import { isExperimentFile } from "./experiment_file.ts";
import { userPath } from "./paths.ts";
import { applyShard, parseSeeds } from "./seeds.ts";
import { expandSweep, splitSetValues } from "./sweep.ts";

const USAGE = `usage: deno task exp NAME [--seed N | --seeds A..B|a,b,c] [--shard i/n]
       [--set key=value[,value2...]]... [--config FILE] [--data mobydick|tinyshakespeare|FILE]
       [--out DIR] [--quiet] [--verify RESULT.json] [--resume CKPT]
       [--init-from CKPT|STATE_DICT] [--save-every N] [--profile] [--graph] [--help]
  --set key=v1,v2 sweeps (several keys: every combination); --shard slices the config × seed runs
  --init-from also takes a plain PyTorch safetensors state dict (see deno task export)`;

const DEFAULT_SEED = 1337;

export interface ExpArgs {
  name: string;
  seeds: number[];
  /** --shard i/n: a slice of the (config × seed) runs. */
  shard?: string;
  sets: string[];
  configFile?: string;
  out: string;
  quiet: boolean;
  verify?: string;
  resume?: string;
  initFrom?: string;
  saveEvery?: number;
  /** --profile: per-kernel device times and the host-time breakdown after each run. */
  profile: boolean;
  /** --graph: train through the autograd graph even where the model has a fused step. */
  graph: boolean;
}

/** A `--data` value: a FILE resolved where the user typed it; corpus names stay names. */
function dataFromUser(value: string): string {
  return (CORPUS_NAMES as readonly string[]).includes(value) || value === ""
    ? value
    : userPath(value);
}

/** `--set data=FILE[,FILE2…]` with each FILE resolved where the user typed it. */
function dataPathFromUser(set: string): string {
  const m = /^\s*data\s*=(.*)$/s.exec(set);
  if (!m) return set;
  const items = splitSetValues(m[1], set).map((item) => {
    let value = item;
    if (item.trim().startsWith('"')) {
      try {
        value = JSON.parse(item.trim());
      } catch {
        return item; // resolveConfig reports the bad quoting
      }
    }
    const typed = dataFromUser(value);
    return typed === value ? item : quoteSetValue(typed);
  });
  return `data=${items.join(",")}`;
}

function knownExperiments(): string {
  return [...experiments.keys()].join(", ");
}

/** Parses `exp` arguments; every problem is a UsageError (exit 2). */
export function parseExpArgs(args: string[]): ExpArgs {
  const parsed = parseCommandArgs(args, {
    seed: { type: "string" },
    seeds: { type: "string" },
    shard: { type: "string" },
    set: { type: "string", multiple: true },
    config: { type: "string" },
    data: { type: "string", multiple: true },
    out: { type: "string" },
    quiet: { type: "boolean" },
    verify: { type: "string" },
    resume: { type: "string" },
    "init-from": { type: "string" },
    "save-every": { type: "string" },
    profile: { type: "boolean" },
    graph: { type: "boolean" },
  }, USAGE);
  const { values, positionals } = parsed;
  const name = positionals[0];
  if (!name) throw new UsageError(`no experiment given; known: ${knownExperiments()}\n${USAGE}`);
  if (positionals.length > 1) {
    throw new UsageError(`unexpected arguments: ${positionals.slice(1).join(" ")}\n${USAGE}`);
  }
  if (!experiments.has(name) && !isExperimentFile(name)) {
    throw new UsageError(
      `unknown experiment '${name}'; known experiments: ${knownExperiments()} ` +
        "(or give the path of a .ts file that exports one)",
    );
  }
  if (values.seed !== undefined && values.seeds !== undefined) {
    throw new UsageError("give --seed or --seeds, not both");
  }
  const seedOption = values.seed !== undefined ? "--seed" : "--seeds";
  const seeds = parseSeeds(values.seeds ?? values.seed ?? String(DEFAULT_SEED), seedOption);
  // Checked here so a bad shard is a usage error before anything loads.
  if (values.shard !== undefined) applyShard([], values.shard);
  // --data is `--set data=…`; kept in command-line order so the last one wins either way.
  const sets: string[] = [];
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== "option" || token.value === undefined) continue;
    if (token.name === "set") sets.push(dataPathFromUser(token.value));
    if (token.name === "data") sets.push(`data=${quoteSetValue(dataFromUser(token.value))}`);
  }
  if (expandSweep(sets).length > 1 && values.resume !== undefined) {
    throw new UsageError("--resume continues one run; give --set one value per key");
  }
  let saveEvery: number | undefined;
  if (values["save-every"] !== undefined) {
    saveEvery = Number(values["save-every"]);
    if (!Number.isInteger(saveEvery) || saveEvery <= 0) {
      throw new UsageError(
        `--save-every expects a positive integer, got '${values["save-every"]}'`,
      );
    }
  }
  if (values.resume !== undefined && values["init-from"] !== undefined) {
    throw new UsageError("give --resume or --init-from, not both");
  }
  if (
    values.verify !== undefined &&
    (values.resume !== undefined || values["init-from"] !== undefined)
  ) {
    throw new UsageError(
      "--verify re-runs a result from scratch; it takes no --resume or --init-from",
    );
  }
  const chosen = (names: string[]) =>
    names.filter((n) => values[n as keyof typeof values] !== undefined).map((n) => `--${n}`);
  const verifyConflicts = chosen(["seed", "seeds", "shard", "set", "config", "data"]);
  if (values.verify !== undefined && verifyConflicts.length > 0) {
    throw new UsageError(
      `--verify takes the config and seed from the result; drop ${verifyConflicts.join(", ")}`,
    );
  }
  const resumeConflicts = chosen(["seed", "seeds", "shard"]);
  if (values.resume !== undefined && resumeConflicts.length > 0) {
    throw new UsageError(
      `--resume continues the checkpoint's seed; drop ${resumeConflicts.join(", ")}`,
    );
  }
  const typed = (path: string | undefined) => path === undefined ? undefined : userPath(path);
  return {
    name: isExperimentFile(name) ? userPath(name) : name,
    seeds,
    shard: values.shard,
    sets,
    configFile: typed(values.config),
    out: typed(values.out) ?? "results",
    quiet: values.quiet ?? false,
    verify: typed(values.verify),
    resume: typed(values.resume),
    initFrom: typed(values["init-from"]),
    saveEvery,
    profile: values.profile ?? false,
    graph: values.graph ?? false,
  };
}
