/**
 * The report's groups: runs of one experiment sharing one resolved config (configSha256), i.e.
 * differing only by seed. Each is labelled by the config keys that tell the experiment's groups
 * apart, read from the stored configs, so a `--config FILE` run is labelled by what it changed
 * just like a `--set` one; a lone group is labelled by what differs from the experiment's
 * defaults ("defaults" when nothing does).
 */
import { experiments } from "../experiments/mod.ts";
import { canonicalJson, listConfigKeys } from "./config.ts";
import { differingKeys, flattenConfig, labelOf } from "./grouping.ts";
import type { LoadedResult } from "./results_io.ts";

/** Runs of one experiment sharing one resolved config, i.e. differing only by seed. */
export interface ReportGroup {
  experiment: string;
  configSha256: string;
  /** The --set overrides of the group's runs. */
  overrides: Record<string, unknown>;
  /** Every config key with its value (the stored config, and the overrides where it lacks one). */
  config: Map<string, unknown>;
  /** The config keys that tell this group apart from the experiment's others, or "defaults". */
  label: string;
  /** Non-default settings every group of the experiment shares; empty when there are none. */
  shared: string;
  /** The keys `label` is made of (those whose values differ between the groups). */
  keys: string[];
  /** Runs with status "ok": the ones drawn and summarized. */
  runs: LoadedResult[];
  /** Runs with any other status: listed only. */
  excluded: LoadedResult[];
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A registered experiment's default config, flattened; null for an experiment file. */
function defaultsOf(experiment: string): Map<string, unknown> | null {
  const e = experiments.get(experiment);
  if (!e) return null;
  return new Map(listConfigKeys(e.schema as never).map((k) => [k.key, k.default]));
}

function configOf(loaded: LoadedResult): Map<string, unknown> {
  const flat = flattenConfig(loaded.result.config);
  for (const [k, v] of Object.entries(loaded.result.overrides)) if (!flat.has(k)) flat.set(k, v);
  return flat;
}

/** Keys whose value is not the experiment's default (for an experiment file: the overrides). */
function nonDefaultKeys(g: ReportGroup, defaults: Map<string, unknown> | null): string[] {
  return [...g.config.keys()].filter((k) =>
    defaults
      ? !defaults.has(k) || canonicalJson(defaults.get(k)) !== canonicalJson(g.config.get(k))
      : Object.hasOwn(g.overrides, k)
  ).sort(byCodeUnits);
}

/** Labels one experiment's groups (see the module comment). */
function labelGroups(groups: ReportGroup[]): void {
  const defaults = defaultsOf(groups[0].experiment);
  const distinct = groups.length < 2
    ? []
    : differingKeys(groups.map((g) => Object.fromEntries(g.config))).sort(byCodeUnits);
  const changed = groups.map((g) => nonDefaultKeys(g, defaults));
  // Settings every group changes the same way: shown once, as a subtitle.
  const shared = groups.length < 2
    ? []
    : changed[0].filter((k) => !distinct.includes(k) && changed.every((keys) => keys.includes(k)));
  groups.forEach((g, i) => {
    g.keys = distinct;
    g.label = labelOf(g.config, distinct) ||
      labelOf(g.config, changed[i].filter((k) => !shared.includes(k))) || "defaults";
    g.shared = labelOf(g.config, shared);
  });
  // Same config values yet different hashes (another seedlab version): the hash decides.
  const counts = new Map<string, number>();
  for (const g of groups) counts.set(g.label, (counts.get(g.label) ?? 0) + 1);
  for (const g of groups) {
    if ((counts.get(g.label) ?? 0) > 1) g.label += ` (${g.configSha256.slice(0, 8)})`;
  }
}

/** Orders groups by their values of the distinguishing keys: numbers numerically. */
function byValues(a: ReportGroup, b: ReportGroup): number {
  for (const k of a.keys) {
    const x = a.config.get(k), y = b.config.get(k);
    if (typeof x === "number" && typeof y === "number" && x !== y) return x - y;
    const c = byCodeUnits(canonicalJson(x) ?? "", canonicalJson(y) ?? "");
    if (c !== 0) return c;
  }
  return 0;
}

/** Splits results into groups by experiment + configSha256, sorted by experiment then values. */
export function groupResults(results: readonly LoadedResult[]): ReportGroup[] {
  const groups = new Map<string, ReportGroup>();
  for (const loaded of results) {
    const r = loaded.result;
    const key = `${r.experiment}\0${r.configSha256}`;
    let g = groups.get(key);
    if (!g) {
      g = {
        experiment: r.experiment,
        configSha256: r.configSha256,
        overrides: r.overrides,
        config: configOf(loaded),
        label: "",
        shared: "",
        keys: [],
        runs: [],
        excluded: [],
      };
      groups.set(key, g);
    }
    (r.status === "ok" ? g.runs : g.excluded).push(loaded);
  }
  const all = [...groups.values()];
  for (const g of all) g.runs.sort((a, b) => a.result.seed - b.result.seed);
  for (const experiment of new Set(all.map((g) => g.experiment))) {
    labelGroups(all.filter((g) => g.experiment === experiment));
  }
  return all.sort((a, b) =>
    byCodeUnits(a.experiment, b.experiment) || byValues(a, b) || byCodeUnits(a.label, b.label) ||
    byCodeUnits(a.configSha256, b.configSha256)
  );
}
