/** The structure of a `diff` report (what `--format json` prints). */
import type { CurveRow } from "./curves.ts";
import type { PowerReport } from "./power.ts";
import type { Better, RankedGroup } from "./ranking.ts";
import type { RunStatus } from "./result_schema.ts";
import type { Summary, WelchResult } from "./stats.ts";

/** Output formats of `diff`. */
export type DiffFormat = "text" | "md" | "json";

/** One run as listed in a group's table. */
export interface RunRow {
  path: string;
  runId: string;
  seed: number;
  status: RunStatus;
  steps: number;
  finalTrain: number | null;
  finalVal: number | null;
  stepsPerSec: number;
  /** The chosen metric; null for runs excluded from the statistics. */
  metric: number | null;
  /** Whether the run counts in the statistics (status "ok"). */
  included: boolean;
}

/** One group of runs with its statistics. */
export interface GroupReport {
  /** "A" or "B", or the config values of a group (`train.lr=0.003`). */
  label: string;
  /** The file, directory or glob the group came from. */
  spec: string;
  experiments: string[];
  /** Data sha256 of the runs (null for runs without a corpus). */
  dataSha256: (string | null)[];
  runs: RunRow[];
  /** Statistics of the metric over the included runs; null when none is included. */
  summary: Summary | null;
  /** Mean ± std per eval step, present with --curve. */
  curve?: CurveRow[];
}

/** The comparison of group B with group A. */
export interface Comparison extends WelchResult {
  nA: number;
  nB: number;
  /** p < 0.05 and the 95% CI excludes 0. */
  significant: boolean;
  /** Direction of B relative to A when significant. */
  direction: "lower" | "higher" | null;
  verdict: string;
}

/** The groups of a `--by` (or by-config) diff, ranked. */
export interface RankingReport {
  /** The config keys that define the groups (the --by keys, or those that differ). */
  by: string[];
  better: Better;
  /** The significance level and power the comparisons and seed counts use. */
  alpha: number;
  power: number;
  groups: RankedGroup[];
}

/** Everything `diff` reports, as printed by `--format json`. */
export interface DiffReport {
  metric: string;
  groups: GroupReport[];
  /** Present with two groups once each has at least two included runs. */
  comparison: Comparison | null;
  /** Present when the runs were grouped by config (`--by`, or one directory of several). */
  ranking?: RankingReport;
  /** Seeds needed (two groups) or the smallest detectable difference (one group). */
  power: PowerReport | null;
  notes: string[];
}

/** Options of {@link diffGroups}. */
export interface DiffOptions {
  /** Dotted path of a numeric field in the result; default `final.val`. */
  metric?: string;
  /** Also align the loss curves by step. */
  curve?: boolean;
  /** Pool or compare runs of different experiments, data or configs anyway. */
  force?: boolean;
  /** Group by these config keys (dotted) instead of one group per spec. */
  by?: string[];
  /** Which direction of the metric ranks first; default lower. */
  better?: Better;
  /** Two-sided significance level for power (default 0.05). */
  alpha?: number;
  /** Power to aim for (default 0.8). */
  power?: number;
}
