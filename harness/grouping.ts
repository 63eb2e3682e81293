/**
 * Groups of runs by config: by configSha256 (the default: runs that differ only by seed), or by
 * the values of chosen config keys (`diff --by train.lr`). Groups are labelled by the config
 * keys whose values tell them apart (`train.lr=0.003`), read from each result's stored config,
 * so runs configured by `--config FILE` are labelled as well as `--set` ones.
 */
import { canonicalJson } from "./config.ts";
import { UsageError } from "./errors.ts";
import type { RunResult } from "./result_schema.ts";
import type { LoadedResult } from "./results_io.ts";

/** Runs that share one value of the grouping key. */
export interface ConfigGroup {
  /** What identifies the group: the configSha256, or the canonical JSON of the --by values. */
  key: string;
  /** `train.lr=0.003 train.steps=50`: the keys that tell the groups apart, with this group's values. */
  label: string;
  /** This group's value of every labelling key (absent keys are left out). */
  values: Record<string, unknown>;
  runs: LoadedResult[];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Every leaf of a config as dotted key → value (arrays are leaves). */
export function flattenConfig(config: unknown, prefix = ""): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!isPlainObject(config)) return out;
  for (const [k, v] of Object.entries(config)) {
    const key = prefix === "" ? k : `${prefix}.${k}`;
    if (isPlainObject(v)) { for (const [kk, vv] of flattenConfig(v, key)) out.set(kk, vv); }
    else out.set(key, v);
  }
  return out;
}

/** The value of dotted `key` in a result's config, or undefined. */
export function configValue(result: RunResult, key: string): unknown {
  return flattenConfig(result.config).get(key);
}

/** How a config value is shown in a label: strings as written, the rest as JSON. */
export function showValue(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** The config keys whose values are not the same in every one of `configs`, sorted. */
export function differingKeys(configs: readonly unknown[]): string[] {
  const flat = configs.map((c) => flattenConfig(c));
  const keys = new Set(flat.flatMap((f) => [...f.keys()]));
  return [...keys].filter((k) => new Set(flat.map((f) => canonicalJson(f.get(k)))).size > 1)
    .sort();
}

/** `a=1 b=x` for the given keys of a flattened config (keys it lacks are left out). */
export function labelOf(values: ReadonlyMap<string, unknown>, keys: readonly string[]): string {
  return keys.filter((k) => values.has(k)).map((k) => `${k}=${showValue(values.get(k))}`).join(
    " ",
  );
}

/**
 * Splits runs into groups: by configSha256 when `by` is empty, else by the values of the `by`
 * keys (a key no run has is a UsageError listing the keys there are). Groups keep the order of
 * their first run; labels name the keys that differ between groups.
 */
export function groupByConfig(
  runs: readonly LoadedResult[],
  by: readonly string[] = [],
): ConfigGroup[] {
  for (const key of by) {
    if (!runs.some((r) => flattenConfig(r.result.config).has(key))) {
      const known = [...new Set(runs.flatMap((r) => [...flattenConfig(r.result.config).keys()]))];
      throw new UsageError(
        `--by ${key}: no run has that config key; keys: ${known.sort().join(", ")}`,
      );
    }
  }
  const groups = new Map<string, ConfigGroup>();
  for (const run of runs) {
    const flat = flattenConfig(run.result.config);
    const key = by.length === 0
      ? run.result.configSha256
      : canonicalJson(by.map((k) => flat.has(k) ? flat.get(k) : null));
    let g = groups.get(key);
    if (!g) groups.set(key, g = { key, label: "", values: {}, runs: [] });
    g.runs.push(run);
  }
  const all = [...groups.values()];
  const keys = by.length > 0 ? [...by] : differingKeys(all.map((g) => g.runs[0].result.config));
  for (const g of all) {
    const flat = flattenConfig(g.runs[0].result.config);
    g.values = Object.fromEntries(keys.filter((k) => flat.has(k)).map((k) => [k, flat.get(k)]));
    // Identical configs under different hashes (results of another seedlab version) still
    // need distinct names: the hash prefix is one.
    g.label = labelOf(flat, keys) || `config ${g.runs[0].result.configSha256.slice(0, 8)}`;
  }
  return all;
}

/**
 * Within each `--by` group, the config keys on which its runs still differ (another setting
 * pooled into one mean); empty when every group is one config.
 */
export function mixedWithin(groups: readonly ConfigGroup[]): { label: string; keys: string[] }[] {
  return groups
    .map((g) => ({ label: g.label, keys: differingKeys(g.runs.map((r) => r.result.config)) }))
    .filter((m) => m.keys.length > 0);
}
