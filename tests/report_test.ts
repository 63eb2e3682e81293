import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { groupResults, renderReport, runReport } from "../harness/report.ts";
import { type CurvePoint, RunResult, type RunStatus } from "../harness/result_schema.ts";
import { type LoadedResult, loadResults } from "../harness/results_io.ts";
import { SYNTHETIC_ENV } from "./fixtures.ts";

/** Headless Chromium: $CHROMIUM, else the first of the usual names found on PATH. */
function findChromium(): string | undefined {
  const explicit = Deno.env.get("CHROMIUM");
  if (explicit) return existsSync(explicit) ? explicit : undefined;
  const dirs = (Deno.env.get("PATH") ?? "/usr/bin").split(":").filter((d) => d !== "");
  for (const name of ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]) {
    for (const dir of dirs) {
      if (existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return undefined;
}
const CHROMIUM = findChromium() ?? "chromium";
const hasChromium = findChromium() !== undefined;
if (!hasChromium) {
  console.warn(
    "report_test: no chromium found (tried $CHROMIUM, chromium, chromium-browser, google-chrome " +
      "on PATH): SKIPPING the screenshot test; install it with: apt-get install chromium",
  );
}

// Must match the colours in harness/report.ts: the screenshot test looks for them.
const TRAIN_RGB: [number, number, number] = [0x25, 0x63, 0xeb];
const VAL_RGB: [number, number, number] = [0xea, 0x58, 0x0c];
// The first three group colours (harness/report.ts GROUP_COLORS; the sweep chart uses the first).
const GROUP_RGB: [number, number, number][] = [
  [0x0f, 0x76, 0x6e],
  [0x7c, 0x3a, 0xed],
  [0xbe, 0x12, 0x3c],
];

const STEPS = [0, 100, 200, 300, 400];
const PLOT_W = 560 - 62 - 20;
const PLOT_H = 340 - 52 - 46;

/** A decaying loss curve, shifted per seed so the min–max band has width. */
function curveFor(seed: number, floor: number): CurvePoint[] {
  return STEPS.map((step) => {
    const train = floor + 1.8 * Math.exp(-step / 120) + 0.05 * (seed - 1);
    return { step, train, val: train + 0.04, elapsedMs: step * 5 };
  });
}

/** `{"train.lr": 1}` → `{train: {lr: 1}}`. */
function nest(flat: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split(".");
    let at = out;
    for (const p of parts.slice(0, -1)) at = (at[p] ??= {}) as Record<string, unknown>;
    at[parts.at(-1)!] = value;
  }
  return out;
}

function fakeResult(opts: {
  seed: number;
  configSha256: string;
  overrides?: Record<string, unknown>;
  floor?: number;
  status?: RunStatus;
  experiment?: string;
  curve?: CurvePoint[];
  /** The stored config; default: the overrides, nested (as `--set` would store them). */
  config?: Record<string, unknown>;
}): RunResult {
  const curve = opts.curve ?? curveFor(opts.seed, opts.floor ?? 2.4);
  const last = curve.at(-1);
  return RunResult.parse({
    schemaVersion: 1,
    experiment: opts.experiment ?? "bigram",
    runId: `${opts.configSha256.slice(0, 8)}-s${opts.seed}`,
    status: opts.status ?? "ok",
    seed: opts.seed,
    config: opts.config ?? nest(opts.overrides ?? {}),
    configSha256: opts.configSha256,
    overrides: opts.overrides ?? {},
    data: null,
    env: SYNTHETIC_ENV,
    startedAt: "2025-01-01T00:00:00.000Z",
    finishedAt: "2025-01-01T00:00:02.000Z",
    steps: 400,
    curve,
    final: { train: last?.train ?? 2.4, val: last?.val ?? 2.44 },
    throughput: { stepsPerSec: 200 + opts.seed, tokensPerSec: 6400 },
    wallMs: 2000,
    sample: "",
    paramsSha256: "",
  });
}

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);

/** Two groups of three seeds (defaults and a lower-loss lr), plus one diverged run. */
function sampleResults(withCurves = true): LoadedResult[] {
  const out: LoadedResult[] = [];
  for (const seed of [0, 1, 2]) {
    const a = fakeResult({ seed, configSha256: SHA_A, ...(withCurves ? {} : { curve: [] }) });
    const b = fakeResult({
      seed,
      configSha256: SHA_B,
      overrides: { "train.lr": 0.003, "model.note": "<b>&" },
      floor: 2.0,
      ...(withCurves ? {} : { curve: [] }),
    });
    out.push({ path: `a/${a.runId}.json`, result: a }, { path: `b/${b.runId}.json`, result: b });
  }
  const bad = fakeResult({ seed: 7, configSha256: SHA_A, status: "diverged" });
  out.push({ path: `a/${bad.runId}.json`, result: bad });
  return out;
}

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

/** Three groups of three seeds sweeping one key; lower loss for larger values. */
function sweepResults(key: string, values: unknown[]): LoadedResult[] {
  return values.flatMap((value, i) =>
    [0, 1, 2].map((seed) => {
      const r = fakeResult({
        seed,
        configSha256: String(i + 1).repeat(64),
        overrides: { [key]: value },
        floor: 2.6 - 0.2 * i,
      });
      return { path: `${i}/${r.runId}.json`, result: r };
    })
  );
}

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

// --- screenshot --------------------------------------------------------------------------

/** Decodes an 8-bit, non-interlaced RGB or RGBA PNG into RGBA pixels. */
function decodePng(bytes: Uint8Array): { width: number; height: number; rgba: Uint8Array } {
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  assert.deepEqual([...bytes.subarray(0, 8)], signature, "PNG signature");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0, height = 0, colorType = -1;
  const idat: Uint8Array[] = [];
  for (let at = 8; at < bytes.length;) {
    const length = view.getUint32(at);
    const type = new TextDecoder().decode(bytes.subarray(at + 4, at + 8));
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      assert.equal(data[8], 8, "bit depth 8");
      colorType = data[9];
      assert.equal(data[12], 0, "not interlaced");
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    at += 12 + length;
  }
  assert.ok(colorType === 2 || colorType === 6, `colour type ${colorType}`);
  const bpp = colorType === 6 ? 4 : 3;
  const joined = new Uint8Array(idat.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of idat) joined.set(c, (offset += c.length) - c.length);
  const raw = new Uint8Array(inflateSync(joined));
  const stride = width * bpp;
  assert.equal(raw.length, height * (stride + 1), "inflated size");
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = pixels.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? row[i - bpp] : 0;
      const b = prev[i];
      const c = i >= bpp ? prev[i - bpp] : 0;
      let predictor = 0;
      if (filter === 1) predictor = a;
      else if (filter === 2) predictor = b;
      else if (filter === 3) predictor = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else assert.equal(filter, 0, `filter type ${filter}`);
      row[i] = (src[i] + predictor) & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    rgba.set(pixels.subarray(p * bpp, p * bpp + 3), p * 4);
    rgba[p * 4 + 3] = bpp === 4 ? pixels[p * bpp + 3] : 255;
  }
  return { width, height, rgba };
}

function countNear(rgba: Uint8Array, [r, g, b]: [number, number, number], tol: number): number {
  let n = 0;
  for (let i = 0; i < rgba.length; i += 4) {
    const d = Math.hypot(rgba[i] - r, rgba[i + 1] - g, rgba[i + 2] - b);
    if (d <= tol) n++;
  }
  return n;
}

async function screenshot(
  html: string,
  dir: string,
  name: string,
  height = 900,
): Promise<Uint8Array> {
  const page = join(dir, `${name}.html`);
  const shot = join(dir, `${name}.png`);
  await Deno.writeTextFile(page, html);
  const profile = await Deno.makeTempDir({ dir, prefix: "chromium-profile-" });
  const { code, stderr } = await new Deno.Command(CHROMIUM, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      `--screenshot=${shot}`,
      `--window-size=1200,${height}`,
      `file://${page}`,
    ],
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  assert.equal(code, 0, `chromium failed: ${new TextDecoder().decode(stderr).slice(-2000)}`);
  return await Deno.readFile(shot);
}

Deno.test({
  name: "report: headless Chromium renders the curves and the legend",
  ignore: !hasChromium,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "seedlab-shot-" });
    try {
      const withCurves = decodePng(await screenshot(renderReport(sampleResults()), dir, "curves"));
      const without = decodePng(
        await screenshot(renderReport(sampleResults(false)), dir, "empty"),
      );
      assert.equal(withCurves.width, 1200);
      assert.equal(withCurves.height, 900);

      // Mean lines are 2 px wide across a ~480 px plot, twice (two group charts) per colour,
      // plus legend swatches; anti-aliasing blurs edges, so count pixels near each colour.
      const train = countNear(withCurves.rgba, TRAIN_RGB, 40);
      const val = countNear(withCurves.rgba, VAL_RGB, 40);
      assert.ok(train > 1000, `train-coloured pixels: ${train}`);
      assert.ok(val > 1000, `val-coloured pixels: ${val}`);
      // The page without curves has neither colour: the counts above come from the charts.
      assert.ok(countNear(without.rgba, TRAIN_RGB, 40) < 20);
      assert.ok(countNear(without.rgba, VAL_RGB, 40) < 20);

      const ink = (rgba: Uint8Array) => {
        let n = 0;
        for (let i = 0; i < rgba.length; i += 4) {
          if (rgba[i] + rgba[i + 1] + rgba[i + 2] < 3 * 235) n++;
        }
        return n;
      };
      // The charts add grid, ticks, text and bands too: tens of thousands of non-background
      // pixels more than the same page without them.
      assert.ok(ink(withCurves.rgba) > ink(without.rgba) + 20_000);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "report: headless Chromium renders a sweep's three bands and its loss-versus-value chart",
  ignore: !hasChromium,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "seedlab-shot-" });
    try {
      const sweep = decodePng(
        await screenshot(
          renderReport(sweepResults("train.lr", [1e-4, 1e-3, 1e-2])),
          dir,
          "sweep",
          1400,
        ),
      );
      // The same three groups swept over a string key: no loss-versus-value chart.
      const noChart = decodePng(
        await screenshot(renderReport(sweepResults("data", ["a", "b", "c"])), dir, "strings", 1400),
      );
      // The comparison chart's three group colours (bands and mean lines).
      for (const rgb of GROUP_RGB) {
        const n = countNear(sweep.rgba, rgb, 40);
        assert.ok(n > 300, `group colour ${rgb}: ${n} pixels`);
      }
      // The sweep chart draws in the first group colour: line, whiskers, dots and mean points.
      const extra = countNear(sweep.rgba, GROUP_RGB[0], 40) -
        countNear(noChart.rgba, GROUP_RGB[0], 40);
      assert.ok(extra > 500, `sweep chart pixels: ${extra}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
