import assert from "node:assert/strict";
import { join } from "node:path";
import { diffGroups, type DiffReport, formatDiff, runDiff } from "../harness/diff.ts";
import { ExitCode, UsageError } from "../harness/errors.ts";
import type { CurvePoint } from "../harness/result_schema.ts";
import { loadResults } from "../harness/results_io.ts";
import {
  captureStdout,
  DATA_2,
  fakeResult,
  SHA_B,
  withTempDir,
  writeGroup,
} from "./diff_fixtures.ts";

const lowerA = [2.50, 2.51, 2.49];
const lowerB = [2.45, 2.46, 2.44];

Deno.test("diff: one group lists each run and summarizes the metric", async () => {
  await withTempDir(async (root) => {
    const dir = await writeGroup(
      root,
      "a",
      lowerA.map((val, seed) => fakeResult({ seed, val })),
    );
    const report = diffGroups([{ spec: dir, runs: await loadResults([dir]) }]);
    assert.equal(report.metric, "final.val");
    assert.equal(report.comparison, null);
    const g = report.groups[0];
    assert.deepEqual(g.runs.map((r) => r.seed), [0, 1, 2]);
    assert.deepEqual(g.runs.map((r) => r.finalVal), lowerA);
    assert.ok(g.summary);
    assert.equal(g.summary.n, 3);
    assert.ok(Math.abs(g.summary.mean - 2.5) < 1e-12);
    assert.ok(Math.abs(g.summary.std - 0.01) < 1e-12);
    assert.equal(g.summary.min, 2.49);
    assert.equal(g.summary.max, 2.51);
    // 2.5 ± t(0.975, 2) · 0.01/√3
    const half = 4.302652729749462 * 0.01 / Math.sqrt(3);
    assert.ok(g.summary.ci95);
    assert.ok(Math.abs(g.summary.ci95[0] - (2.5 - half)) < 1e-9);
    assert.ok(Math.abs(g.summary.ci95[1] - (2.5 + half)) < 1e-9);

    const { code, out } = await captureStdout(() => runDiff([dir]));
    assert.equal(code, ExitCode.ok);
    assert.match(out, /seed\s+run\s+status\s+steps\s+final train\s+final val\s+steps\/s/);
    assert.match(out, /aaaaaaaa-s1\s+ok\s+200\s+2\.4900\s+2\.5100\s+20\.0/);
    assert.match(out, /A\s+3\s+2\.5000\s+0\.0100\s+\[2\.4752, 2\.5248\]\s+2\.4900\s+2\.5100/);
  });
});

Deno.test("diff: two groups with a clear difference say B is lower, p < 0.05", async () => {
  await withTempDir(async (root) => {
    const a = await writeGroup(root, "a", lowerA.map((val, seed) => fakeResult({ seed, val })));
    const b = await writeGroup(
      root,
      "b",
      lowerB.map((val, seed) => fakeResult({ seed, val, configSha256: SHA_B })),
    );
    const report = diffGroups([
      { spec: a, runs: await loadResults([a]) },
      { spec: b, runs: await loadResults([b]) },
    ]);
    const c = report.comparison;
    assert.ok(c);
    assert.ok(Math.abs(c.diff - -0.05) < 1e-12);
    assert.ok(c.p < 0.05, `p = ${c.p}`);
    assert.ok(c.ci95[1] < 0);
    assert.equal(c.direction, "lower");
    assert.equal(c.significant, true);
    // Both variances are 1e-4 with n = 3: df = 4 and half-width t(0.975, 4)·√(2e-4/3) = 0.0227.
    assert.ok(Math.abs(c.df - 4) < 1e-9);
    assert.match(c.verdict, /^B is lower by 0\.050 ± 0\.023 \(95% CI\), p = 0\.00\d\d$/);
    assert.ok(Math.abs(c.cohenD - -5) < 1e-9, `d = ${c.cohenD}`);

    // The same comparison the other way round reads "higher".
    const reversed = diffGroups([
      { spec: b, runs: await loadResults([b]) },
      { spec: a, runs: await loadResults([a]) },
    ]);
    assert.match(reversed.comparison?.verdict ?? "", /^B is higher by 0\.050 ± 0\.023/);

    const { out } = await captureStdout(() => runDiff([a, b]));
    assert.match(out, /B is lower by 0\.050 ± 0\.023 \(95% CI\), p = 0\.00\d\d/);
    assert.match(out, /Welch t\s+-6\.124/);
  });
});

Deno.test("diff: identical groups show no detectable difference", async () => {
  await withTempDir(async (root) => {
    const a = await writeGroup(root, "a", lowerA.map((val, seed) => fakeResult({ seed, val })));
    const b = await writeGroup(
      root,
      "b",
      lowerA.map((val, seed) => fakeResult({ seed, val, configSha256: SHA_B })),
    );
    const { out } = await captureStdout(() => runDiff([a, b, "--format", "json"]));
    const report = JSON.parse(out) as DiffReport;
    assert.ok(report.comparison);
    assert.equal(report.comparison.significant, false);
    assert.equal(report.comparison.p, 1);
    assert.equal(report.comparison.verdict, "no detectable difference at n = 3 vs 3 (p = 1.0)");
  });
});

Deno.test("diff: groups mixing experiments or data are refused unless --force", async () => {
  await withTempDir(async (root) => {
    const mixed = await writeGroup(root, "mixed", [
      fakeResult({ seed: 0, val: 2.5 }),
      fakeResult({ seed: 1, val: 2.6, experiment: "gpt", configSha256: SHA_B }),
    ]);
    await assert.rejects(
      () => runDiff([mixed]),
      (e: unknown) => {
        assert.ok(e instanceof UsageError);
        assert.match(e.message, /different experiments/);
        assert.match(e.message, /bigram \(.*aaaaaaaa-s0\.json\)/);
        assert.match(e.message, /gpt \(.*bbbbbbbb-s1\.json\)/);
        assert.match(e.message, /--force/);
        return true;
      },
    );
    const { code, out } = await captureStdout(() => runDiff([mixed, "--force"]));
    assert.equal(code, ExitCode.ok);
    assert.match(out, /note: --force: group A pools runs of different experiments/);

    // Same experiment, different corpus across groups.
    const a = await writeGroup(root, "a", lowerA.map((val, seed) => fakeResult({ seed, val })));
    const b = await writeGroup(
      root,
      "b",
      lowerB.map((val, seed) => fakeResult({ seed, val, data: DATA_2 })),
    );
    await assert.rejects(() => runDiff([a, b]), /different data: A is data 111111111111/);
    const forced = await captureStdout(() => runDiff([a, b, "--force"]));
    assert.match(forced.out, /B is lower by/);
  });
});

Deno.test("diff: a missing or non-numeric metric path exits 2 naming file and path", async () => {
  await withTempDir(async (root) => {
    const dir = await writeGroup(root, "a", [fakeResult({ seed: 0, val: 2.5 })]);
    await assert.rejects(
      () => runDiff([dir, "--metric", "final.nope"]),
      (e: unknown) => {
        assert.ok(e instanceof UsageError);
        assert.ok(e.message.includes(join(dir, "aaaaaaaa-s0.json")), e.message);
        assert.match(e.message, /metric final\.nope: 'final' has no field 'nope'/);
        return true;
      },
    );
    await assert.rejects(
      () => runDiff([dir, "--metric", "config.train"]),
      /aaaaaaaa-s0\.json: metric config\.train is not a number/,
    );
    // Through the CLI entry point the UsageError becomes exit code 2. A subprocess keeps this
    // test independent of the type-checking of every other command main.ts can load.
    const cli = new URL("../harness/main.ts", import.meta.url).pathname;
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", cli, "diff", dir, "--metric", "final.nope"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(run.code, ExitCode.usage);
    assert.match(new TextDecoder().decode(run.stderr), /aaaaaaaa-s0\.json: metric final\.nope/);
  });
});

Deno.test("diff: any numeric path works as the metric", async () => {
  await withTempDir(async (root) => {
    const dir = await writeGroup(root, "a", [
      fakeResult({ seed: 0, val: 2.5, stepsPerSec: 10 }),
      fakeResult({ seed: 1, val: 2.5, stepsPerSec: 14 }),
    ]);
    const { out } = await captureStdout(() =>
      runDiff([dir, "--metric", "throughput.stepsPerSec", "--format", "json"])
    );
    const report = JSON.parse(out) as DiffReport;
    assert.equal(report.metric, "throughput.stepsPerSec");
    assert.equal(report.groups[0].summary?.mean, 12);
    assert.deepEqual(report.groups[0].runs.map((r) => r.metric), [10, 14]);
  });
});

Deno.test("diff: runs that are not ok are listed but excluded from statistics", async () => {
  await withTempDir(async (root) => {
    const dir = await writeGroup(root, "a", [
      ...lowerA.map((val, seed) => fakeResult({ seed, val })),
      fakeResult({ seed: 3, val: 9.9, status: "diverged" }),
    ]);
    const report = diffGroups([{ spec: dir, runs: await loadResults([dir]) }]);
    const g = report.groups[0];
    assert.equal(g.runs.length, 4);
    assert.deepEqual(g.runs.map((r) => r.included), [true, true, true, false]);
    assert.equal(g.summary?.n, 3);
    assert.equal(g.summary?.max, 2.51);
    assert.ok(
      report.notes.some((n) => /excluded from statistics: aaaaaaaa-s3\.json \(diverged\)/.test(n)),
    );
    const text = formatDiff(report, "text");
    assert.match(text, /diverged \(excluded\)/);
  });
});

Deno.test("diff: --curve aligns curves by step with mean ± std", async () => {
  await withTempDir(async (root) => {
    const curve = (train: number[], val: number[]): CurvePoint[] =>
      train.map((t, i) => ({ step: i * 100, train: t, val: val[i], elapsedMs: i * 10 }));
    const dir = await writeGroup(root, "a", [
      fakeResult({ seed: 0, val: 2.5, curve: curve([4.0, 3.0, 2.4], [4.1, 3.1, 2.5]) }),
      fakeResult({ seed: 1, val: 2.7, curve: curve([4.2, 3.2, 2.6], [4.3, 3.3, 2.7]) }),
    ]);
    const { out } = await captureStdout(() => runDiff([dir, "--curve", "--format", "json"]));
    const report = JSON.parse(out) as DiffReport;
    const rows = report.groups[0].curve;
    assert.ok(rows);
    assert.deepEqual(rows.map((r) => r.step), [0, 100, 200]);
    assert.ok(Math.abs((rows[1].train?.mean ?? 0) - 3.1) < 1e-12);
    assert.ok(Math.abs((rows[1].train?.std ?? 0) - Math.SQRT2 * 0.1) < 1e-12);
    assert.ok(Math.abs((rows[2].val?.mean ?? 0) - 2.6) < 1e-12);
    assert.equal(rows[2].val?.n, 2);

    const text = await captureStdout(() => runDiff([dir, "--curve"]));
    assert.match(text.out, /100\s+2\s+3\.1000 ± 0\.1414\s+3\.2000 ± 0\.1414/);
  });
});

Deno.test("diff: markdown output is made of tables", async () => {
  await withTempDir(async (root) => {
    const a = await writeGroup(root, "a", lowerA.map((val, seed) => fakeResult({ seed, val })));
    const { out } = await captureStdout(() => runDiff([a, "--format", "md"]));
    assert.match(out, /^### A: /m);
    assert.match(
      out,
      /^\| seed \| run \| status \| steps \| final train \| final val \| steps\/s \|$/m,
    );
    assert.match(out, /^\| --: \| :-- \| :-- \| --: /m);
    assert.match(out, /^\| A \| 3 \| 2\.5000 \| 0\.0100 \|/m);
  });
});

Deno.test("diff: bad arguments are usage errors", async () => {
  await assert.rejects(() => runDiff([]), UsageError);
  await assert.rejects(() => runDiff(["a", "b", "c"]), UsageError);
  await assert.rejects(() => runDiff(["a", "--format", "xml"]), /--format must be/);
  await assert.rejects(() => runDiff(["a", "--bogus"]), UsageError);
  await assert.rejects(() => runDiff(["/nonexistent/seedlab"]), UsageError);
});
