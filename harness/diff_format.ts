/** `diff` output: aligned text or markdown tables (JSON is the report itself). */
import type { PointStat } from "./curves.ts";
import type { DiffFormat, DiffReport, GroupReport } from "./diff_types.ts";
import { powerSentence } from "./power.ts";
import { formatRanking } from "./ranking.ts";
import { escapeMarkdown, formatInterval as interval, formatNumber, renderTable } from "./table.ts";

function pm(s: PointStat | null): string {
  if (!s) return "—";
  return s.std === null ? formatNumber(s.mean) : `${formatNumber(s.mean)} ± ${formatNumber(s.std)}`;
}

const STANDARD_COLUMNS = new Set(["final.train", "final.val", "throughput.stepsPerSec"]);

function groupTitle(g: GroupReport): string {
  const data = g.dataSha256.map((d) => d === null ? "no data" : `data ${d.slice(0, 12)}`);
  return `${g.label}: ${g.spec} — ${g.experiments.join(", ")}, ${
    data.join(", ")
  }, ${g.runs.length} run(s)`;
}

/** Renders a report as aligned text, markdown tables or JSON. */
export function formatDiff(report: DiffReport, format: DiffFormat): string {
  if (format === "json") return JSON.stringify(report, null, 2);
  const md = format === "md";
  // Headings, verdicts and notes carry file names and config values: escaped like table cells.
  const heading = (s: string) => md ? `### ${escapeMarkdown(s)}` : s;
  const out: string[] = [];
  const extra = !STANDARD_COLUMNS.has(report.metric);

  for (const g of report.groups) {
    out.push(heading(groupTitle(g)), "");
    const header = ["seed", "run", "status", "steps", "final train", "final val", "steps/s"];
    if (extra) header.push(report.metric);
    const rows = g.runs.map((r) => {
      const row = [
        String(r.seed),
        r.runId,
        r.included ? r.status : `${r.status} (excluded)`,
        String(r.steps),
        formatNumber(r.finalTrain),
        formatNumber(r.finalVal),
        r.stepsPerSec.toFixed(1),
      ];
      if (extra) row.push(formatNumber(r.metric));
      return row;
    });
    const right = header.map((_, i) => i !== 1 && i !== 2);
    out.push(renderTable(header, rows, format === "md" ? "md" : "text", right), "");
    if (g.curve) {
      out.push(heading(`${g.label}: loss curve (mean ± std across runs)`), "");
      const curveRows = g.curve.map((c) => [
        String(c.step),
        String(Math.max(c.train?.n ?? 0, c.val?.n ?? 0)),
        pm(c.train),
        pm(c.val),
      ]);
      out.push(
        renderTable(["step", "n", "train", "val"], curveRows, md ? "md" : "text", [
          true,
          true,
          true,
          true,
        ]),
        "",
      );
    }
  }

  const r = report.ranking;
  if (r) {
    out.push(
      heading(
        `${report.metric} by ${r.by.length > 0 ? r.by.join(", ") : "config"} ` +
          `(${r.better} is better; each group against the best by Welch's test, * p < ${r.alpha})`,
      ),
      "",
      formatRanking(r.groups, { power: r.power, format: md ? "md" : "text" }),
      "",
    );
  } else {
    out.push(...summaryTable(report, md), "");
  }
  if (report.power) {
    const line = powerSentence(report.power, formatNumber);
    out.push(md ? escapeMarkdown(line) : line, "");
  }
  for (const note of report.notes) {
    out.push(md ? `- note: ${escapeMarkdown(note)}` : `note: ${note}`);
  }
  return out.join("\n").trimEnd();
}

function summaryTable(report: DiffReport, md: boolean): string[] {
  const out = [
    `${md ? "### " : ""}${md ? escapeMarkdown(report.metric) : report.metric} across seeds`,
    "",
  ];
  const summaryRows = report.groups.map((g) => {
    const s = g.summary;
    return [
      g.label,
      String(s?.n ?? 0),
      formatNumber(s?.mean),
      s && s.n > 1 ? formatNumber(s.std) : "—",
      interval(s?.ci95 ?? null),
      formatNumber(s?.min),
      formatNumber(s?.max),
    ];
  });
  out.push(
    renderTable(
      ["group", "n", "mean", "std", "95% CI", "min", "max"],
      summaryRows,
      md ? "md" : "text",
    ),
    "",
  );

  const c = report.comparison;
  if (c) {
    const rows = [
      ["B − A", formatNumber(c.diff)],
      ["95% CI (Welch)", interval(c.ci95)],
      ["Welch t", c.t.toFixed(3)],
      ["df", c.df.toFixed(2)],
      ["p (two-sided)", c.p < 0.001 ? c.p.toExponential(2) : c.p.toFixed(4)],
      ["Cohen's d", Number.isFinite(c.cohenD) ? c.cohenD.toFixed(2) : formatNumber(c.cohenD)],
    ];
    out.push(
      `${md ? "### " : ""}B vs A on ${md ? escapeMarkdown(report.metric) : report.metric}`,
      "",
    );
    out.push(renderTable(["statistic", "value"], rows, md ? "md" : "text", [false, true]), "");
    out.push(md ? `**${escapeMarkdown(c.verdict)}**` : c.verdict);
  }
  return out;
}
