/** The report page as a browser draws it: headless Chromium screenshots, decoded and counted. */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { renderReport } from "../harness/report.ts";
import { sampleResults, sweepResults } from "./fixtures.ts";

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
