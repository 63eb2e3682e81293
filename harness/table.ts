/**
 * Tables and numbers as `diff` prints them: aligned text or markdown. Markdown goes to places
 * that render HTML (a GitHub step summary), so every cell is escaped there.
 */

/** Formats a number for a table: 4 decimals for losses, 1 for big, an exponent below 0.001. */
export function formatNumber(x: number | null | undefined): string {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  if (!Number.isFinite(x)) return x > 0 ? "∞" : "−∞";
  const abs = Math.abs(x);
  if (abs >= 1000) return x.toFixed(1);
  if (abs >= 0.001 || abs === 0) return x.toFixed(4);
  return x.toExponential(2);
}

/** `[lo, hi]` of an interval, or — when there is none. */
export function formatInterval(ci: readonly [number, number] | null | undefined): string {
  return ci ? `[${formatNumber(ci[0])}, ${formatNumber(ci[1])}]` : "—";
}

/** Formats `p` for a sentence: two significant digits, "< 0.001" below that. */
export function formatP(p: number): string {
  return p < 0.001 ? "p < 0.001" : `p = ${p.toPrecision(2)}`;
}

/**
 * Text made safe for markdown that is rendered to HTML: `|` would end a table cell, `<` and `>`
 * could open a tag, `&` an entity, and a newline would end the row.
 */
export function escapeMarkdown(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll("|", "\\|").replaceAll(/\r?\n/g, " ");
}

/** Renders rows as aligned text columns or a markdown table; numeric columns align right. */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  format: "text" | "md",
  rightAligned: readonly boolean[] = header.map((_, i) => i > 0),
): string {
  if (format === "md") {
    const line = (cells: readonly string[]) => `| ${cells.map(escapeMarkdown).join(" | ")} |`;
    const rule = `|${header.map((_, i) => rightAligned[i] ? " --: " : " :-- ").join("|")}|`;
    return [line(header), rule, ...rows.map(line)].join("\n");
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => rightAligned[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])).join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
