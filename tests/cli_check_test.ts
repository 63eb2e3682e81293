/**
 * `deno task check` end to end with a temporary baselines directory and tiny configs:
 * `--update` records the runs, a re-check reuses them and passes, a stricter baseline fails
 * with exit 1, a looser one passes and suggests --update, and bad input exits 2.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Baseline } from "../harness/check.ts";
import { assertExit, listDir, readResults, seedlab, withTempDir } from "./cli_helpers.ts";

const TINY_BASELINE = {
  experiment: "bigram",
  description: "tiny: test only",
  overrides: {
    "train.steps": 50,
    "eval.interval": 25,
    "eval.iters": 5,
    "sample.tokens": 10,
  },
  seeds: [0, 1],
  metric: "final.val",
  better: "lower",
  expected: { mean: 0, std: 0 },
  tolerance: { sigmas: 3, absolute: 0.01 },
};

async function writeJson(path: string, value: unknown): Promise<void> {
  await Deno.writeTextFile(path, JSON.stringify(value, null, 2));
}

Deno.test("check: --update records the runs, a re-check reuses them, stricter fails, looser passes", async () => {
  await withTempDir(async (dir) => {
    const baselines = join(dir, "baselines");
    const results = join(dir, "results");
    await Deno.mkdir(baselines);
    const file = join(baselines, "tiny.json");
    await writeJson(file, TINY_BASELINE);
    const check = (...extra: string[]) =>
      seedlab("check", "--baselines", baselines, "--results", results, "--quiet", ...extra);

    // Expected 0: the runs are far worse, so --update refuses unless the regression is accepted.
    const refused = await check("--update");
    assertExit(refused, 1);
    assert.match(refused.stdout, /tiny: 0 run\(s\) reused from .*, 2 trained/);
    assert.match(refused.stderr, /refusing to update: tiny regressed; the baselines are unchanged/);
    assert.equal((JSON.parse(await Deno.readTextFile(file)) as Baseline).expected.mean, 0);
    const update = await check("--update", "--accept-regression");
    assertExit(update, 0);
    assert.match(update.stdout, /tiny: 2 run\(s\) reused from .*, 0 trained/);
    assert.match(update.stdout, /updated 1 baseline\(s\) in .* from 2 reused run\(s\)/);
    assert.match(update.stdout, /regression accepted: tiny/);
    const runs = await readResults(results, "bigram");
    assert.deepEqual(runs.map((r) => r.seed), [0, 1]);
    assert.ok(runs.every((r) => r.steps === 50 && /^[0-9a-f]{64}$/.test(r.env.codeSha256 ?? "")));
    const vals = runs.map((r) => r.final.val!);
    const mean = (vals[0] + vals[1]) / 2;
    const std = Math.abs(vals[0] - vals[1]) / Math.SQRT2;
    const updated: Baseline = JSON.parse(await Deno.readTextFile(file));
    assert.equal(updated.expected.mean, mean);
    assert.ok(Math.abs(updated.expected.std - std) < 1e-12);
    assert.equal(updated.description, "tiny: test only", "the rest of the baseline is kept");

    // Same config, seeds and code: the stored runs are reused, nothing is trained.
    const again = await check();
    assertExit(again, 0);
    assert.match(again.stdout, /tiny: 2 run\(s\) reused from .*, 0 trained/);
    assert.match(again.stdout, /^tiny\s+final\.val\s+2\s.*\bpass$/m);
    assert.match(again.stdout, /check passed: 1 baseline/);

    // A baseline the runs cannot meet: a regression, exit 1.
    await writeJson(file, {
      ...updated,
      expected: { mean: mean - 0.5, std: 0.001 },
      tolerance: { sigmas: 3, absolute: 0.01 },
    });
    const stricter = await check();
    assertExit(stricter, 1);
    assert.match(stricter.stdout, /^tiny\s.*\+0\.5000\s+±0\.0100\s+REGRESSION$/m);
    assert.match(stricter.stdout, /regression: tiny/);

    // Clearly better than the baseline: passes and suggests recording it.
    await writeJson(file, { ...updated, expected: { mean: mean + 0.5, std: 0.001 } });
    const better = await check();
    assertExit(better, 0);
    assert.match(better.stdout, /^tiny\s.*-0\.5000\s.*\bbetter$/m);
    assert.match(better.stdout, /clearly better than the baseline; run `deno task check --update`/);

    // For a higher-is-better metric the same numbers are a regression.
    await writeJson(file, {
      ...updated,
      better: "higher",
      expected: { mean: mean + 0.5, std: 0.001 },
    });
    assertExit(await check(), 1);
  });
});

Deno.test("check: runs from other code are not reused and not overwritten", async () => {
  await withTempDir(async (dir) => {
    const baselines = join(dir, "baselines");
    const results = join(dir, "results");
    await Deno.mkdir(baselines);
    await writeJson(join(baselines, "tiny.json"), { ...TINY_BASELINE, seeds: [5] });
    const check = (...extra: string[]) =>
      seedlab("check", "--baselines", baselines, "--results", results, "--quiet", ...extra);
    assertExit(await check("--update", "--accept-regression"), 0);
    const [run] = await readResults(results, "bigram");
    const path = join(results, "bigram", `${run.runId}.json`);
    const stale = { ...run, env: { ...run.env, codeSha256: "0".repeat(64) } };
    const text = JSON.stringify(stale, null, 2);
    await Deno.writeTextFile(path, text);

    const r = await check();
    assertExit(r, 0);
    assert.match(r.stdout, /come from other code .*training afresh in a scratch directory/);
    assert.match(r.stdout, /tiny: 0 run\(s\) reused from .*, 1 trained/);
    assert.equal(await Deno.readTextFile(path), text, "the stored result is kept as it was");
  });
});

Deno.test("check: usage errors exit 2 and name the problem", async () => {
  await withTempDir(async (dir) => {
    const missing = await seedlab("check", "--baselines", join(dir, "nowhere"));
    assertExit(missing, 2);
    assert.match(missing.stderr, /no baselines directory at .*nowhere/);

    const empty = join(dir, "empty");
    await Deno.mkdir(empty);
    const none = await seedlab("check", "--baselines", empty);
    assertExit(none, 2);
    assert.match(none.stderr, /no baseline files \(\*\.json\) in/);

    const bad = join(dir, "bad");
    await Deno.mkdir(bad);
    await Deno.writeTextFile(join(bad, "broken.json"), "{ not json");
    const corrupt = await seedlab("check", "--baselines", bad);
    assertExit(corrupt, 2);
    assert.match(corrupt.stderr, /broken\.json: not valid JSON/);

    await Deno.remove(join(bad, "broken.json"));
    await writeJson(join(bad, "foreign.json"), { ...TINY_BASELINE, experiment: "gpt5" });
    const foreign = await seedlab("check", "--baselines", bad);
    assertExit(foreign, 2);
    assert.match(foreign.stderr, /foreign\.json: unknown experiment 'gpt5'/);

    await writeJson(join(bad, "foreign.json"), { ...TINY_BASELINE, seeds: [] });
    const noSeeds = await seedlab("check", "--baselines", bad);
    assertExit(noSeeds, 2);
    assert.match(noSeeds.stderr, /foreign\.json: not a baseline \(seeds: /);

    const flag = await seedlab("check", "--frobnicate");
    assertExit(flag, 2);
    assert.match(flag.stderr, /unknown option '--frobnicate'/);
    assert.match(flag.stderr, /usage: deno task check/);

    // A bad metric path (or override) in any baseline is rejected before anything trains,
    // even when a good baseline comes first.
    const two = join(dir, "two");
    const results = join(dir, "results");
    await Deno.mkdir(two);
    await writeJson(join(two, "a.json"), TINY_BASELINE);
    await writeJson(join(two, "b.json"), { ...TINY_BASELINE, metric: "final.vall" });
    const badMetric = await seedlab("check", "--baselines", two, "--results", results);
    assertExit(badMetric, 2);
    assert.match(badMetric.stderr, /b\.json: metric 'final\.vall' is not a numeric field/);
    assert.match(badMetric.stderr, /final\.val/);
    await writeJson(join(two, "b.json"), { ...TINY_BASELINE, overrides: { "train.stepz": 5 } });
    const badKey = await seedlab("check", "--baselines", two, "--results", results);
    assertExit(badKey, 2);
    assert.match(badKey.stderr, /b\.json: overrides: unknown config key 'train\.stepz'/);
    assert.deepEqual(await listDir(results), [], "nothing trained or written");

    const help = await seedlab("check", "--help");
    assertExit(help, 0);
    assert.match(help.stdout, /usage: deno task check .*--accept-regression/);
    const lone = await seedlab("check", "--accept-regression");
    assertExit(lone, 2);
    assert.match(lone.stderr, /--accept-regression only applies with --update/);
  });
});
