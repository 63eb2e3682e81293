/**
 * A grid sweep end to end: `exp bigram --set train.lr=1e-3,3e-3,1e-2 --seeds 0..2` writes nine
 * results, `--shard` splits the grid, `diff --by train.lr` ranks the three rates, and `report`
 * draws three bands and the loss-versus-lr chart.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { DiffReport } from "../harness/diff.ts";
import {
  assertExit,
  listDir,
  readResults,
  seedlab,
  TINY,
  withTempDir,
  writtenPath,
} from "./cli_helpers.ts";

const LRS = "train.lr=1e-3,3e-3,1e-2";

Deno.test("sweep: 3 learning rates × 3 seeds, sharded, diffed by lr and reported", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "grid");
    const r = await seedlab(
      "exp",
      "bigram",
      ...TINY,
      "--set",
      LRS,
      "--seeds",
      "0..2",
      "--out",
      out,
    );
    assertExit(r, 0);
    assert.match(r.stdout, /sweep: 3 configs × 3 seeds/);
    const results = await readResults(out, "bigram");
    assert.equal(results.length, 9);
    const lrs = results.map((x) => (x.config as { train: { lr: number } }).train.lr);
    assert.deepEqual([...new Set(lrs)].sort(), [1e-3, 1e-2, 3e-3].sort());
    for (const lr of [1e-3, 3e-3, 1e-2]) {
      const seeds = results.filter((_, i) => lrs[i] === lr).map((x) => x.seed).sort();
      assert.deepEqual(seeds, [0, 1, 2], `lr ${lr}`);
    }
    // Each run records its own value as an override, so --verify and baselines repeat it.
    assert.ok(results.every((x) => typeof x.overrides["train.lr"] === "number"));

    // Two shards of the same grid write the same nine results between them, disjointly.
    const shards = [0, 1].map((i) => join(dir, `shard-${i}`));
    for (const [i, shardOut] of shards.entries()) {
      const s = await seedlab(
        "exp",
        "bigram",
        ...TINY,
        "--set",
        LRS,
        "--seeds",
        "0..2",
        "--shard",
        `${i}/2`,
        "--quiet",
        "--out",
        shardOut,
      );
      assertExit(s, 0);
      assert.equal(
        s.stdout.trim().split("\n").filter((l) => l.startsWith("bigram seed")).length,
        i === 0 ? 5 : 4,
      );
    }
    const sharded = [
      ...await listDir(join(shards[0], "bigram")),
      ...await listDir(join(shards[1], "bigram")),
    ].filter((f) => f.endsWith(".json")).sort();
    assert.deepEqual(
      sharded,
      (await listDir(join(out, "bigram"))).filter((f) => f.endsWith(".json")).sort(),
    );
    const empty = await seedlab(
      "exp",
      "bigram",
      ...TINY,
      "--seeds",
      "0",
      "--shard",
      "3/5",
      "--out",
      out,
    );
    assertExit(empty, 0);
    assert.match(empty.stdout, /^shard 3\/5 of 1 seed is empty; nothing to run$/m);

    // diff --by train.lr: three ranked rows with CIs.
    const diff = await seedlab("diff", join(out, "bigram"), "--by", "train.lr", "--format", "json");
    assertExit(diff, 0);
    const report: DiffReport = JSON.parse(diff.stdout);
    const ranked = report.ranking!.groups;
    assert.deepEqual(ranked.map((g) => g.rank), [1, 2, 3]);
    assert.ok(ranked.every((g) => g.summary?.n === 3 && g.summary.ci95 !== null));
    const means = ranked.map((g) => g.summary!.mean);
    assert.ok(means[0] <= means[1] && means[1] <= means[2]);
    // On 50 steps the largest rate learns fastest.
    assert.equal(ranked[0].label, "train.lr=0.01");

    const html = join(dir, "report.html");
    assertExit(await seedlab("report", out, "--out", html), 0);
    const page = await Deno.readTextFile(html);
    assert.ok(page.includes("val loss by group"));
    assert.equal([...page.matchAll(/class="band" data-series="train\.lr=/g)].length, 3);
    assert.ok(page.includes("final val loss vs train.lr"));
  });
});

Deno.test("sweep: a list value with --resume, or a bad list, is a usage error", async () => {
  const resume = await seedlab("exp", "bigram", "--set", LRS, "--resume", "x.safetensors");
  assertExit(resume, 2);
  assert.match(resume.stderr, /--resume continues one run/);
  const dup = await seedlab("exp", "bigram", "--set", "train.lr=1e-3,1e-3");
  assertExit(dup, 2);
  assert.match(dup.stderr, /value 1e-3 is listed twice/);
  const bad = await seedlab("exp", "bigram", "--set", "train.lr=1e-3,fast");
  assertExit(bad, 2);
  assert.match(bad.stderr, /train\.lr expects a number, got 'fast'/);
});

Deno.test("sweep: every run's target is decided before training; a refused run writes nothing", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "out");
    const data = join(dir, "corpus.txt");
    await Deno.writeTextFile(data, "to be or not to be, that is the question. ".repeat(40));
    const lrs = (values: string) =>
      seedlab(
        "exp",
        "bigram",
        ...TINY,
        "--set",
        `train.lr=${values}`,
        "--data",
        data,
        "--seed",
        "0",
        "--out",
        out,
      );
    const first = await lrs("1e-3");
    assertExit(first, 0);
    const kept = writtenPath(first.stdout);
    const keptCkpt = kept.replace(/\.json$/, ".safetensors");
    const [json, ckpt] = [await Deno.readFile(kept), await Deno.readFile(keptCkpt)];

    // The same path now holds other data: lr=1e-3 would replace an ok run of other data under
    // its run id, so it is refused up front; lr=3e-3 trains and writes its own pair.
    await Deno.writeTextFile(
      data,
      "all the world's a stage, and all the men and women. ".repeat(40),
    );
    const sweep = await lrs("1e-3,3e-3");
    assertExit(sweep, 1);
    assert.match(sweep.stderr, /refusing to run seed 0: .* other data .*nothing was trained/);
    // Only the run that goes ahead is announced and trained.
    assert.equal([...sweep.stdout.matchAll(/^sweep run /gm)].length, 1);
    assert.match(sweep.stdout, /sweep run 2\/2: train\.lr=0\.003, seed 0/);
    assert.deepEqual(await Deno.readFile(kept), json);
    assert.deepEqual(await Deno.readFile(keptCkpt), ckpt);
    const results = await readResults(out, "bigram");
    assert.deepEqual(
      results.map((r) => r.config.train).map((t) => (t as { lr: number }).lr).sort(),
      [
        0.001,
        0.003,
      ],
    );
    assert.equal(
      (await listDir(join(out, "bigram"))).filter((f) => f.endsWith(".safetensors")).length,
      2,
    );
  });
});
