/**
 * Ranking groups of runs (one per config, or per value of `diff --by` keys): n, mean, std and
 * 95% CI of the metric per group, best first, and each group against the best by Welch's test
 * with the seeds per group that would detect that difference at the chosen power.
 */
import { runsForPower, type RunsNeeded } from "./power.ts";
import { sampleStd, summarize, type Summary, welch } from "./stats.ts";
import { formatInterval, formatNumber, renderTable } from "./table.ts";

/** Which direction of the metric is better. */
export type Better = "lower" | "higher";

/** A group's metric values (its ok runs) to rank. */
export interface RankInput {
  label: string;
  /** The config values that define the group (the --by keys or the differing keys). */
  values: Record<string, unknown>;
  metric: number[];
}

/** A group compared with the best one. */
export interface VsBest {
  /** mean(this) − mean(best). */
  diff: number;
  /** 95% Welch interval of diff. */
  ci95: [number, number];
  p: number;
  /** p < alpha. */
  significant: boolean;
  /** Seeds per group that would detect this difference at the chosen power and alpha. */
  runsNeeded: RunsNeeded | null;
}

/** One row of the ranking. */
export interface RankedGroup {
  /** 1 for the best; null for a group without ok runs (listed last). */
  rank: number | null;
  label: string;
  values: Record<string, unknown>;
  summary: Summary | null;
  /** Null for the best group itself and where Welch's test needs more runs (n < 2). */
  vsBest: VsBest | null;
}

/** Ranks groups by their mean metric, best first, each compared with the best. */
export function rankGroups(
  inputs: readonly RankInput[],
  opts: { better: Better; alpha: number; power: number },
): RankedGroup[] {
  const sign = opts.better === "lower" ? 1 : -1;
  const withStats = inputs.map((g) => ({
    g,
    summary: g.metric.length > 0 ? summarize(g.metric) : null,
  }));
  const ranked = withStats.filter((x) => x.summary !== null)
    .sort((x, y) => sign * (x.summary!.mean - y.summary!.mean) || (x.g.label < y.g.label ? -1 : 1));
  const empty = withStats.filter((x) => x.summary === null);
  const best = ranked[0];
  return [
    ...ranked.map(({ g, summary }, i): RankedGroup => {
      let vsBest: VsBest | null = null;
      if (i > 0 && g.metric.length >= 2 && best.g.metric.length >= 2) {
        const w = welch(best.g.metric, g.metric);
        vsBest = {
          diff: w.diff,
          ci95: w.ci95,
          p: w.p,
          significant: w.p < opts.alpha,
          runsNeeded: runsForPower(w.diff, opts.power, {
            sdA: sampleStd(best.g.metric),
            sdB: sampleStd(g.metric),
            alpha: opts.alpha,
          }),
        };
      }
      return { rank: i + 1, label: g.label, values: g.values, summary, vsBest };
    }),
    ...empty.map(({ g }): RankedGroup => ({
      rank: null,
      label: g.label,
      values: g.values,
      summary: null,
      vsBest: null,
    })),
  ];
}

function formatP(p: number): string {
  return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}

/** The ranking as a table: rank, group, n, mean, std, 95% CI, then the comparison with the best. */
export function formatRanking(
  rows: readonly RankedGroup[],
  opts: { power: number; format: "text" | "md" },
): string {
  const header = [
    "rank",
    "group",
    "n",
    "mean",
    "std",
    "95% CI",
    "− best",
    "95% CI (Welch)",
    "p",
    `seeds for ${Math.round(opts.power * 100)}% power`,
  ];
  const body = rows.map((r) => {
    const s = r.summary;
    const v = r.vsBest;
    return [
      r.rank === null ? "—" : String(r.rank),
      r.label,
      String(s?.n ?? 0),
      formatNumber(s?.mean),
      s && s.n > 1 ? formatNumber(s.std) : "—",
      formatInterval(s?.ci95),
      r.rank === 1 ? "best" : v ? (v.diff >= 0 ? "+" : "") + formatNumber(v.diff) : "—",
      v ? formatInterval(v.ci95) : "—",
      v ? formatP(v.p) + (v.significant ? " *" : "") : "—",
      v ? (v.runsNeeded ? String(v.runsNeeded.n) : "> 10⁶") : "—",
    ];
  });
  return renderTable(header, body, opts.format, header.map((_, i) => i !== 1));
}
