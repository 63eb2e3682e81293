/**
 * `diff` by config: a directory mixing configs is grouped (not pooled) unless --force, `--by`
 * groups by chosen keys, groups are ranked and compared to the best, power figures are printed,
 * and markdown cells are escaped.
 */
import assert from "node:assert/strict";
import { buildDiff, type DiffReport, runDiff } from "../harness/diff.ts";
import { UsageError } from "../harness/errors.ts";
import { groupByConfig } from "../harness/grouping.ts";
import { runsForPower } from "../harness/power.ts";
import type { RunResult } from "../harness/result_schema.ts";
import { loadResults } from "../harness/results_io.ts";
import { sampleStd } from "../harness/stats.ts";
import { captureStdout, fakeResult, withTempDir, writeGroup } from "./diff_fixtures.ts";

/** A hex sha from a small number, so each config has its own hash and run ids. */
const sha = (i: number) => i.toString(16).padStart(8, "0").repeat(8);

// Three learning rates, three seeds each: 0.01 is best, 0.001 worst.
const SWEEP: [number, number[]][] = [
  [0.001, [2.61, 2.63, 2.62]],
  [0.003, [2.55, 2.53, 2.56]],
  [0.01, [2.41, 2.43, 2.42]],
];

function sweepResults(steps = (_lr: number) => 200): RunResult[] {
  return SWEEP.flatMap(([lr, vals], i) =>
    vals.map((val, seed) =>
      fakeResult({
        seed,
        val,
        configSha256: sha(i + 1 + 16 * steps(lr)),
        config: { train: { steps: steps(lr), lr } },
      })
    )
  );
}

Deno.test("diff: a directory of several configs is grouped by config and ranked", async () => {
  await withTempDir(async (root) => {
    const dir = await writeGroup(root, "sweep", sweepResults());
    const { out } = await captureStdout(() => runDiff([dir]));
    // Ranked best first, labelled by the key that differs, compared with the best.
    const rows = out.split("\n").filter((l) => /^\s+\d\s+train\.lr=/.test(l));
    assert.equal(rows.length, 3, out);
    assert.match(rows[0], /^\s+1\s+train\.lr=0\.01\s+3\s+2\.4200\s+0\.0100\s+\[.*\]\s+best/);
    assert.match(rows[1], /^\s+2\s+train\.lr=0\.003\s+3\s+2\.5467/);
    assert.match(rows[2], /^\s+3\s+train\.lr=0\.001\s+3\s+2\.6200/);
    assert.match(rows[2], /\+0\.2000\s+\[[\d.]+, [\d.]+\]\s+[\d.e-]+ \*\s+2$/);
    assert.match(out, /final\.val by train\.lr \(lower is better/);

    const report: DiffReport = JSON.parse(
      (await captureStdout(() => runDiff([dir, "--format", "json"]))).out,
    );
    const ranking = report.ranking!;
    assert.deepEqual(ranking.by, ["train.lr"]);
    assert.deepEqual(ranking.groups.map((g) => g.label), [
      "train.lr=0.01",
      "train.lr=0.003",
      "train.lr=0.001",
    ]);
    assert.deepEqual(ranking.groups.map((g) => g.values), [
      { "train.lr": 0.01 },
      { "train.lr": 0.003 },
      { "train.lr": 0.001 },
    ]);
    const worst = ranking.groups[2].vsBest!;
    assert.ok(Math.abs(worst.diff - 0.2) < 1e-12);
    assert.ok(worst.significant && worst.p < 0.001);
    // Seeds for 80% power at the observed difference and spreads, as power.ts computes them.
    const expected = runsForPower(0.2, 0.8, {
      sdA: sampleStd([2.41, 2.43, 2.42]),
      sdB: sampleStd([2.61, 2.63, 2.62]),
      alpha: 0.05,
    });
    assert.deepEqual(worst.runsNeeded, expected);
    assert.equal(report.groups[0].label, "train.lr=0.01", "run tables in rank order");

    // --force pools the configs into one group, as before, and says so.
    const pooled = await captureStdout(() => runDiff([dir, "--force"]));
    assert.match(pooled.out, /A\s+9\s+2\.5289/);
    assert.match(
      pooled.out,
      /note: --force: group A mixes 3 different configs \(differing in train\.lr\)/,
    );
    const strict = await captureStdout(() => runDiff([dir, "--power", "0.9", "--alpha", "0.01"]));
    assert.match(strict.out, /seeds for 90% power/);
    assert.match(strict.out, /\* p < 0\.01\)/);
    // --better higher ranks the other way.
    const higher = await captureStdout(() => runDiff([dir, "--better", "higher"]));
    assert.match(higher.out, /^\s+1\s+train\.lr=0\.001/m);
  });
});

Deno.test("diff --by: groups by the keys given; other differences are refused unless --force", async () => {
  await withTempDir(async (root) => {
    // lr 0.01 ran 400 steps, the others 200: --by train.lr alone would pool unlike runs…
    const mixed = sweepResults((lr) => lr === 0.01 ? 400 : 200);
    mixed.push(fakeResult({
      seed: 9,
      val: 2.4,
      configSha256: sha(99),
      config: { train: { steps: 200, lr: 0.01 } },
    }));
    const dir = await writeGroup(root, "mixed", mixed);
    await assert.rejects(() => runDiff([dir, "--by", "train.lr"]), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /group train\.lr=0\.01 pools runs whose train\.steps differ/);
      assert.match(e.message, /add those keys to --by, or pass --force/);
      return true;
    });
    // …grouping by both keys separates them.
    const both = buildDiff([{ spec: dir, runs: await loadResults([dir]) }], {
      by: ["train.lr", "train.steps"],
    });
    assert.equal(both.ranking!.groups.length, 4);
    assert.ok(both.ranking!.groups.some((g) => g.label === "train.lr=0.01 train.steps=400"));
    const forced = await captureStdout(() => runDiff([dir, "--by", "train.lr", "--force"]));
    assert.match(forced.out, /note: --force: group train\.lr=0\.01 pools runs whose train\.steps/);
    await assert.rejects(() => runDiff([dir, "--by", "train.lrr"]), /--by train\.lrr: no run has/);

    // Two specs where A mixes configs: refused, naming the key, unless --force.
    const b = await writeGroup(root, "b", sweepResults().slice(0, 3));
    await assert.rejects(
      () => runDiff([dir, b]),
      /group A mixes 4 different configs \(differing in train\.lr, train\.steps\)/,
    );
  });
});

Deno.test("diff: power — seeds per group for two groups, detectable difference for one", async () => {
  await withTempDir(async (root) => {
    const a = await writeGroup(
      root,
      "a",
      [2.50, 2.53, 2.49].map((val, seed) => fakeResult({ seed, val })),
    );
    const b = await writeGroup(
      root,
      "b",
      [2.49, 2.50, 2.47].map((val, seed) => fakeResult({ seed, val, configSha256: sha(2) })),
    );
    const two: DiffReport = JSON.parse(
      (await captureStdout(() => runDiff([a, b, "--format", "json"]))).out,
    );
    const needed = runsForPower(2.4866666666666664 - 2.5066666666666664, 0.8, {
      sdA: sampleStd([2.50, 2.53, 2.49]),
      sdB: sampleStd([2.49, 2.50, 2.47]),
      alpha: 0.05,
    })!;
    assert.equal(two.power!.runsNeeded!.n, needed.n);
    assert.ok(needed.n > 3, "not detectable at n = 3, so more seeds are needed");
    const text = await captureStdout(() => runDiff([a, b]));
    assert.match(
      text.out,
      new RegExp(`takes ${needed.n} seeds per group \\(now 3 vs 3; two-sided Welch test`),
    );
    // A stricter alpha and a higher power ask for more seeds.
    const strict: DiffReport = JSON.parse(
      (await captureStdout(() =>
        runDiff([a, b, "--format", "json", "--alpha", "0.01", "--power", "0.9"])
      )).out,
    );
    assert.ok(strict.power!.runsNeeded!.n > needed.n);
    assert.equal(strict.power!.alpha, 0.01);

    const one = await captureStdout(() => runDiff([a]));
    assert.match(
      one.out,
      /power: with 3 seeds per group and std 0\.0208, the smallest difference detectable at 80% power, α = 0\.05 is 0\.\d{4}/,
    );
    await assert.rejects(
      () => runDiff([a, "--alpha", "2"]),
      /--alpha must be a number between 0 and 1/,
    );
    await assert.rejects(
      () => runDiff([a, "--power", "0.01", "--alpha", "0.05"]),
      /must exceed --alpha/,
    );
  });
});

Deno.test("diff --format md escapes |, < and > in every cell, heading and note", async () => {
  await withTempDir(async (root) => {
    const evil = "a|b<script>x</script>";
    const runs = [0, 1].flatMap((i) =>
      [2.5, 2.6].map((val, seed) =>
        fakeResult({
          seed,
          val: val + i,
          configSha256: sha(i + 1),
          config: { train: { steps: 200, lr: 0.01 }, data: i === 0 ? evil : "plain" },
        })
      )
    );
    const dir = await writeGroup(root, "evil", runs);
    const { out } = await captureStdout(() => runDiff([dir, "--format", "md"]));
    assert.ok(!out.includes("<script>"), out);
    assert.ok(!out.includes("</script>"), out);
    assert.match(out, /\| data=a\\\|b&lt;script&gt;x&lt;\/script&gt; \|/);
    // Every table row still has as many cells as its header.
    for (const table of out.split("\n\n").filter((b) => b.startsWith("|"))) {
      const counts = table.split("\n").map((l) => l.split(/(?<!\\)\|/).length);
      assert.ok(counts.every((c) => c === counts[0]), table);
    }
  });
});

Deno.test("grouping: labels name the keys that differ; identical configs keep distinct labels", () => {
  const runs = sweepResults().map((result) => ({ path: `${result.runId}.json`, result }));
  const groups = groupByConfig(runs);
  assert.deepEqual(groups.map((g) => g.label), [
    "train.lr=0.001",
    "train.lr=0.003",
    "train.lr=0.01",
  ]);
  const same = [1, 2].map((i) => {
    const result = fakeResult({ seed: 0, val: 2.5, configSha256: sha(i) });
    return { path: `${i}.json`, result };
  });
  assert.deepEqual(groupByConfig(same).map((g) => g.label), [
    "config 00000001",
    "config 00000002",
  ]);
});
