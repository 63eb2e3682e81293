/**
 * What runs must share before `diff` pools them into a group or compares two groups: the same
 * experiment and data (and, within a group, the same config). A mismatch is a UsageError unless
 * --force, which turns it into a note in the report.
 */
import { UsageError } from "./errors.ts";
import type { RunResult } from "./result_schema.ts";
import type { LoadedResult } from "./results_io.ts";
import { differingKeys } from "./grouping.ts";

function dataKey(r: RunResult): string {
  return r.data ? r.data.sha256 : "none";
}

function shortData(key: string): string {
  return key === "none" ? "no data" : `data ${key.slice(0, 12)}`;
}

/** Groups file names by a key, for messages such as "bigram (a.json, b.json)". */
function partition(runs: readonly LoadedResult[], key: (r: RunResult) => string) {
  const parts = new Map<string, string[]>();
  for (const { path, result } of runs) {
    const k = key(result);
    parts.set(k, [...(parts.get(k) ?? []), path]);
  }
  return parts;
}

function describe(parts: Map<string, string[]>, show: (k: string) => string): string {
  return [...parts.entries()].map(([k, files]) => `${show(k)} (${files.join(", ")})`).join(
    " vs ",
  );
}

/** What runs must share to be pooled or compared: [what, key of a run, how to show a key]. */
const POOLING_CHECKS: [string, (r: RunResult) => string, (k: string) => string][] = [
  ["experiments", (r) => r.experiment, (k) => k],
  ["data", dataKey, shortData],
];

/**
 * Refuses (or, with --force, notes) a group that pools runs of different experiments, data or
 * configs.
 */
export function checkGroup(
  label: string,
  runs: readonly LoadedResult[],
  force: boolean,
  notes: string[],
  checkConfigs = true,
): void {
  for (const [what, key, show] of POOLING_CHECKS) {
    const parts = partition(runs, key);
    if (parts.size <= 1) continue;
    const message = `group ${label} pools runs of different ${what}: ${describe(parts, show)}`;
    if (!force) throw new UsageError(`${message}; pass --force to pool them anyway`);
    notes.push(`--force: ${message}`);
  }
  const configs = partition(runs, (r) => r.configSha256);
  if (checkConfigs && configs.size > 1) {
    const keys = differingKeys(runs.map((r) => r.result.config));
    const message = `group ${label} mixes ${configs.size} different configs` +
      (keys.length > 0 ? ` (differing in ${keys.join(", ")})` : " (configSha256)");
    if (!force) {
      throw new UsageError(
        `${message}; give its directory alone to compare them config by config, group them ` +
          "with --by KEY, or pass --force to pool them",
      );
    }
    notes.push(`--force: ${message}`);
  }
}

/** Refuses (or, with --force, notes) comparing A and B across experiments or data. */
export function checkAcross(
  a: readonly LoadedResult[],
  b: readonly LoadedResult[],
  force: boolean,
  notes: string[],
): void {
  for (const [what, key, show] of POOLING_CHECKS) {
    const ka = new Set(a.map((x) => key(x.result)));
    const kb = new Set(b.map((x) => key(x.result)));
    const same = ka.size === kb.size && [...ka].every((k) => kb.has(k));
    if (same) continue;
    const message = `A and B are runs of different ${what}: A is ${
      describe(partition(a, key), show)
    }, B is ${describe(partition(b, key), show)}`;
    if (!force) throw new UsageError(`${message}; pass --force to compare them anyway`);
    notes.push(`--force: ${message}`);
  }
}
