/**
 * Grid sweeps: `--set key=v1,v2,v3` runs every value, several such keys run the cartesian
 * product, and every combination runs for every seed. `--shard i/n` then slices the combined
 * (config × seed) list, so one array job spreads a whole grid.
 *
 * A value that contains a comma is written in double quotes (`--set 'data="a,b.txt"'`); inside
 * brackets or braces commas belong to the JSON value (`--set 'model.sizes=[64,128]'`).
 */
import type { z } from "zod";
import { resolveConfig, type ResolvedConfig } from "./config.ts";
import { UsageError } from "./errors.ts";
import { differingKeys, flattenConfig, labelOf } from "./grouping.ts";
import { applyShard } from "./seeds.ts";

/** More combinations than this is almost certainly a typo, not a grid. */
export const MAX_COMBINATIONS = 10_000;

/**
 * Splits a `--set` value at the commas that separate sweep values: not inside a double-quoted
 * value (one that starts with `"`, JSON escapes allowed) and not inside [...] or {...}.
 */
export function splitSetValues(value: string, set = value): string[] {
  const items: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === "\\") i++;
      else if (ch === '"') quoted = false;
      continue;
    }
    // A quote opens a string at the start of a value or inside JSON; elsewhere it is a character.
    if (ch === '"' && (depth > 0 || value.slice(start, i).trim() === "")) quoted = true;
    else if (ch === "[" || ch === "{") depth++;
    else if ((ch === "]" || ch === "}") && depth > 0) depth--;
    else if (ch === "," && depth === 0) {
      items.push(value.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) throw new UsageError(`--set ${set}: a double quote is not closed`);
  items.push(value.slice(start));
  return items;
}

/**
 * Expands `--set` strings into the list of combinations to run, each a list of single-valued
 * `--set` strings in the order given (so "last one wins" still holds). The first swept key
 * varies slowest. Without a list value it returns `[sets]` unchanged.
 */
export function expandSweep(sets: readonly string[]): string[][] {
  let combos: string[][] = [[]];
  for (const set of sets) {
    const eq = set.indexOf("=");
    const values = eq < 0 ? [set] : splitSetValues(set.slice(eq + 1), set);
    if (values.length === 1) {
      combos = combos.map((c) => [...c, set]);
      continue;
    }
    const key = set.slice(0, eq);
    const seen = new Set<string>();
    for (const v of values) {
      const text = v.trim();
      if (text === "") {
        throw new UsageError(
          `--set ${set}: an empty value in the list; quote a value that contains a comma ` +
            `(${key}="a,b")`,
        );
      }
      if (seen.has(text)) throw new UsageError(`--set ${set}: value ${text} is listed twice`);
      seen.add(text);
    }
    if (combos.length * values.length > MAX_COMBINATIONS) {
      throw new UsageError(`--set ${set}: the grid has more than ${MAX_COMBINATIONS} combinations`);
    }
    combos = combos.flatMap((c) => values.map((v) => [...c, `${key}=${v}`]));
  }
  return combos;
}

/** One run of a sweep: which configuration (index into the resolved list) and which seed. */
export interface SweepRun {
  config: number;
  seed: number;
}

/**
 * Every (config, seed) pair, configs outermost, sliced by `--shard i/n` (strided over the
 * combined list, so each shard gets a share of every config when there are enough seeds).
 */
export function sweepRuns(configs: number, seeds: readonly number[], shard?: string): SweepRun[] {
  const all: SweepRun[] = [];
  for (let config = 0; config < configs; config++) {
    for (const seed of seeds) all.push({ config, seed });
  }
  return shard === undefined ? all : applyShard(all, shard);
}

/**
 * Resolves every combination (defaults ← file ← its `--set` values); combinations that resolve
 * to the same config (`--set a=1,2 --set a=3`: the last one wins) run once.
 */
export async function resolveSweep<S extends z.ZodObject>(
  schema: S,
  combos: readonly string[][],
  file?: string,
): Promise<ResolvedConfig<z.output<S>>[]> {
  const configs: ResolvedConfig<z.output<S>>[] = [];
  for (const sets of combos) {
    const resolved = await resolveConfig(schema, { file, sets });
    if (!configs.some((c) => c.sha256 === resolved.sha256)) configs.push(resolved);
  }
  return configs;
}

/** Each config's label in a sweep: the keys whose values differ between the configs. */
export function sweepLabels(configs: readonly { config: unknown }[]): string[] {
  const keys = differingKeys(configs.map((c) => c.config));
  return configs.map((c) => labelOf(flattenConfig(c.config), keys));
}
