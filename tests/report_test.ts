import assert from "node:assert/strict";
import { join } from "node:path";
import { groupResults, renderReport, runReport } from "../harness/report.ts";
import { loadResults } from "../harness/results_io.ts";
import { fakeResult, sampleResults, SHA_A, SHA_B, STEPS, sweepResults } from "./fixtures.ts";

const PLOT_W = 560 - 62 - 20;
const PLOT_H = 340 - 52 - 46;

/** The numbers of an SVG path's d attribute as [x, y] pairs, with its command letters. */
function pathPoints(d: string): { commands: string[]; points: [number, number][] } {
  const commands = d.match(/[MLZ]/g) ?? [];
  const numbers = (d.match(/-?\d+(?:\.\d+)?(?:e-?\d+)?/g) ?? []).map(Number);
  const points: [number, number][] = [];
  for (let i = 0; i + 1 < numbers.length; i += 2) points.push([numbers[i], numbers[i + 1]]);
  return { commands, points };
}

function svgs(html: string): string[] {
  return [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((m) => m[0]);
}

function attr(tag: string, name: string): string | undefined {
  return tag.match(new RegExp(`${name}="([^"]*)"`))?.[1];
}

Deno.test("report: groups by experiment + configSha256, ok runs drawn, others listed", () => {
  const groups = groupResults(sampleResults());
  assert.equal(groups.length, 2);
  assert.deepEqual(groups.map((g) => g.runs.length), [3, 3]);
  assert.equal(groups[0].label, "defaults");
  assert.equal(groups[1].label, "model.note=<b>& train.lr=0.003");
  assert.deepEqual(groups[0].excluded.map((r) => r.result.status), ["diverged"]);
});

Deno.test("report: groups are labelled by config keys, however they were set", () => {
  // A `--config FILE` run: no overrides, but its stored config differs from the defaults.
  const fromFile = fakeResult({
    seed: 0,
    configSha256: SHA_A,
    config: { train: { steps: 400, lr: 0.05, batchSize: 32 }, data: "mobydick" },
  });
  const [g] = groupResults([{ path: "f.json", result: fromFile }]);
  assert.equal(g.label, "train.lr=0.05 train.steps=400");
  // Default values are no label: a run with the default config is "defaults".
  const plain = fakeResult({
    seed: 0,
    configSha256: SHA_B,
    config: { train: { steps: 10000, lr: 0.001 }, data: "mobydick" },
  });
  assert.equal(groupResults([{ path: "p.json", result: plain }])[0].label, "defaults");
  // Two groups: labelled by what tells them apart; what both change is the subtitle.
  const both = groupResults([
    { path: "f.json", result: fromFile },
    {
      path: "g.json",
      result: fakeResult({
        seed: 0,
        configSha256: SHA_B,
        config: { train: { steps: 400, lr: 0.01, batchSize: 32 }, data: "mobydick" },
      }),
    },
  ]);
  assert.deepEqual(both.map((x) => x.label), ["train.lr=0.01", "train.lr=0.05"]);
  assert.deepEqual(both.map((x) => x.shared), ["train.steps=400", "train.steps=400"]);
});

Deno.test("report: a one-key numeric sweep gets a final-loss-versus-value chart", () => {
  const chartOf = (html: string) =>
    svgs(html).find((s) => s.includes("final val loss vs train.lr"));
  // 1e-4 … 1e-2 spans 100×: a log axis, the three values evenly spaced.
  const log = chartOf(renderReport(sweepResults("train.lr", [1e-4, 1e-3, 1e-2])));
  assert.ok(log, "sweep chart drawn");
  assert.match(log, /train\.lr \(log scale\)/);
  const xs = [...log.matchAll(/class="mean-point" data-value="([^"]+)" cx="([^"]+)"/g)];
  assert.deepEqual(xs.map((m) => Number(m[1])), [1e-4, 1e-3, 1e-2]);
  const cx = xs.map((m) => Number(m[2]));
  assert.ok(Math.abs((cx[1] - cx[0]) - (cx[2] - cx[1])) < 0.2, `log spacing ${cx}`);
  assert.equal([...log.matchAll(/class="seed"/g)].length, 9, "one dot per seed");
  assert.equal([...log.matchAll(/class="whisker"/g)].length, 3);
  // 1e-3 … 1e-2 spans exactly 10×: linear, spaced by value.
  const linear = chartOf(renderReport(sweepResults("train.lr", [1e-3, 3e-3, 1e-2])));
  assert.ok(linear);
  assert.doesNotMatch(linear, /log scale/);
  const lx = [...linear.matchAll(/class="mean-point" data-value="[^"]+" cx="([^"]+)"/g)]
    .map((m) => Number(m[1]));
  assert.ok(Math.abs((lx[1] - lx[0]) / (lx[2] - lx[1]) - 2 / 7) < 0.01, `linear spacing ${lx}`);
  // No sweep chart for a non-numeric key, or when two keys differ.
  const strings = renderReport(sweepResults("data", ["a", "b", "c"]));
  assert.ok(!strings.includes("final val loss vs"));
  const twoKeys = sweepResults("train.lr", [1e-3, 3e-3, 1e-2]).map((r, i) => ({
    ...r,
    result: { ...r.result, config: { ...r.result.config, eval: { iters: i } } },
  }));
  assert.ok(!renderReport(twoKeys).includes("final val loss vs"));
});

Deno.test("report: one SVG per chart with mean line, band, axes, legend and final table", () => {
  const html = renderReport(sampleResults());
  assert.match(html, /^<!doctype html>/);
  // Self-contained: nothing to run and nothing to fetch.
  assert.doesNotMatch(html, /<script|<link|src=|href=|url\(|@import/i);

  const charts = svgs(html);
  // Two group charts and the val comparison of the two groups.
  assert.equal(charts.length, 3);
  for (const svg of charts) {
    assert.match(svg, /<text class="axis-label"[^>]*>step<\/text>/);
    assert.match(svg, /<text class="axis-label"[^>]*>(val )?loss<\/text>/);
    assert.match(svg, /<g class="legend"/);
    assert.match(svg, /min–max across seeds/);
    assert.match(svg, /<text class="title"[^>]*>bigram — /);
    const ticks = [...svg.matchAll(/<text class="tick"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    assert.ok(ticks.includes("0") && ticks.includes("400"), `x ticks: ${ticks}`);
    assert.ok(ticks.length >= 8, `ticks: ${ticks}`);
  }

  const first = charts[0];
  assert.match(first, /bigram — defaults/);
  for (const series of ["train", "val"]) {
    assert.match(first, new RegExp(`<text class="legend-text"[^>]*>${series}</text>`));
    const meanTag = first.match(new RegExp(`<path class="mean" data-series="${series}"[^>]*>`));
    assert.ok(meanTag, `mean path of ${series}`);
    const { commands, points } = pathPoints(attr(meanTag[0], "d") ?? "");
    // One point per eval step: M then L for each following step.
    assert.deepEqual(commands, ["M", ...STEPS.slice(1).map(() => "L")]);
    assert.equal(points.length, STEPS.length);
    // Steps 0..400 span the plot's full width; falling loss moves down the SVG (y grows).
    assert.equal(points[0][0], 0);
    assert.ok(Math.abs(points.at(-1)![0] - PLOT_W) < 0.01, `last x ${points.at(-1)![0]}`);
    for (let i = 1; i < points.length; i++) assert.ok(points[i][1] > points[i - 1][1]);
    for (const [, y] of points) assert.ok(y >= 0 && y <= PLOT_H, `y ${y} inside the plot`);

    const bandTag = first.match(new RegExp(`<path class="band" data-series="${series}"[^>]*>`));
    assert.ok(bandTag, `band path of ${series}`);
    const band = pathPoints(attr(bandTag[0], "d") ?? "");
    // The upper edge forward and the lower edge back, closed.
    assert.equal(band.points.length, 2 * STEPS.length);
    assert.equal(band.commands.at(-1), "Z");
  }

  // Final table: mean ± std of the three seeds, computed here from the curve formula.
  const finals = (floor: number, offset: number) => {
    const v = [0, 1, 2].map((s) => floor + 1.8 * Math.exp(-400 / 120) + 0.05 * (s - 1) + offset);
    return `${(v.reduce((a, b) => a + b) / 3).toFixed(4)} ± 0.0500`;
  };
  const table = html.match(/<table class="final">[\s\S]*?<\/table>/)?.[0] ?? "";
  assert.match(table, /final train \(mean ± std\)/);
  assert.match(table, /final val \(mean ± std\)/);
  assert.ok(table.includes(`<td>${finals(2.4, 0)}</td>`), table);
  assert.ok(table.includes(`<td>${finals(2.4, 0.04)}</td>`), table);
  assert.ok(table.includes(`<td>${finals(2.0, 0)}</td>`), table);
  assert.ok(table.includes(`<td>${finals(2.0, 0.04)}</td>`), table);
  assert.ok(table.includes("<td>201.0 ± 1.0</td>"), "steps/s mean ± std");
  // Labels are escaped, never interpreted as markup.
  assert.ok(html.includes("model.note=&lt;b&gt;&amp; train.lr=0.003"));
  assert.doesNotMatch(html, /<b>&/);
  assert.match(html, /1 run\(s\) not ok, excluded from curves and table: a\/aaaaaaaa-s7\.json/);
});

Deno.test("report: runReport writes the page atomically to --out", async () => {
  const dir = await Deno.makeTempDir({ prefix: "seedlab-report-" });
  try {
    for (const { result } of sampleResults()) {
      const sub = join(dir, "results", result.experiment);
      await Deno.mkdir(sub, { recursive: true });
      await Deno.writeTextFile(join(sub, `${result.runId}.json`), JSON.stringify(result));
    }
    const out = join(dir, "out", "report.html");
    const log = console.log;
    console.log = () => {};
    try {
      assert.equal(await runReport([join(dir, "results"), "--out", out]), 0);
    } finally {
      console.log = log;
    }
    const html = await Deno.readTextFile(out);
    assert.equal(html, renderReport(await loadResults([join(dir, "results")])));
    assert.equal(svgs(html).length, 3);
    // No temporary files left beside the report.
    assert.deepEqual([...Deno.readDirSync(join(dir, "out"))].map((e) => e.name), ["report.html"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report: a group without curves gets a note instead of a chart", () => {
  const html = renderReport(sampleResults(false));
  assert.equal(svgs(html).length, 0);
  assert.match(html, /no loss curve recorded/);
});
