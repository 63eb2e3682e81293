/**
 * `deno task diff` and `deno task report` end to end on real runs: two groups of three seeds
 * (lr 1e-3 and lr 5e-2), then the refusals and usage errors, each from a child process.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { DiffReport } from "../harness/diff.ts";
import type { RunResult } from "../harness/result_schema.ts";
import { sampleStd, summarize } from "../harness/stats.ts";
import { assertExit, readResults, seedlab, TINY, withTempDir } from "./cli_helpers.ts";

/** Trains the two groups once for every test in this file. */
async function withGroups(fn: (g: Groups) => Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    const a = join(dir, "lr-small");
    const b = join(dir, "lr-large");
    assertExit(
      await seedlab("exp", "bigram", ...TINY, "--seeds", "0..2", "--quiet", "--out", a),
      0,
    );
    assertExit(
      await seedlab(
        "exp",
        "bigram",
        ...TINY,
        "--set",
        "train.lr=0.05",
        "--seeds",
        "0..2",
        "--quiet",
        "--out",
        b,
      ),
      0,
    );
    const ra = await readResults(a, "bigram");
    const rb = await readResults(b, "bigram");
    await fn({ dir, a: join(a, "bigram"), b: join(b, "bigram"), ra, rb });
  });
}

const f4 = (x: number) => x.toFixed(4);

Deno.test("diff and report on real runs (two groups of 3 seeds, trained once)", async (t) => {
  await withGroups(async (groups) => {
    await t.step("tables, Welch comparison, curves, formats, HTML", () => summaries(groups));
    await t.step(
      "refuses to pool experiments or data without --force; bad files exit 2",
      () => refusals(groups),
    );
  });
});

type Groups = { dir: string; a: string; b: string; ra: RunResult[]; rb: RunResult[] };

async function summaries({ dir, a, b, ra, rb }: Groups): Promise<void> {
  // One group: a row per seed and the summary of final.val.
  const one = await seedlab("diff", a);
  assertExit(one, 0);
  for (const r of ra) {
    assert.match(
      one.stdout,
      new RegExp(
        `^\\s*${r.seed}\\s+${r.runId}\\s+ok\\s+50\\s+${f4(r.final.train!)}\\s+${
          f4(r.final.val!)
        }\\s`,
        "m",
      ),
    );
  }
  const s = summarize(ra.map((r) => r.final.val!));
  assert.match(
    one.stdout,
    new RegExp(
      `^A\\s+3\\s+${f4(s.mean)}\\s+${f4(s.std)}\\s+\\[${f4(s.ci95![0])}, ${f4(s.ci95![1])}\\]\\s+${
        f4(s.min)
      }\\s+${f4(s.max)}$`,
      "m",
    ),
  );

  // Two groups: the larger learning rate is clearly lower after 50 steps.
  const two = await seedlab("diff", a, b, "--format", "json");
  assertExit(two, 0);
  const report: DiffReport = JSON.parse(two.stdout);
  const c = report.comparison!;
  const va = ra.map((r) => r.final.val!), vb = rb.map((r) => r.final.val!);
  const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / v.length;
  assert.ok(Math.abs(c.diff - (mean(vb) - mean(va))) < 1e-12);
  const pooled = Math.sqrt((sampleStd(va) ** 2 + sampleStd(vb) ** 2) / 2);
  assert.ok(Math.abs(c.cohenD - c.diff / pooled) < 1e-9);
  assert.equal(c.direction, "lower");
  assert.ok(c.p < 0.05 && c.ci95[1] < 0, `p ${c.p}, CI ${c.ci95}`);
  assert.match(c.verdict, /^B is lower by \d\.\d+ ± \d\.\d+ \(95% CI\), p (=|<) 0\.\d+$/);

  const text = await seedlab("diff", a, b);
  assertExit(text, 0);
  assert.match(text.stdout, /^B − A\s+-\d\.\d{4}$/m);
  assert.match(text.stdout, /^Welch t\s+-\d+\.\d{3}$/m);
  assert.match(text.stdout, /^Cohen's d\s+-\d+\.\d\d$/m);
  assert.ok(text.stdout.includes(c.verdict));

  // --metric any numeric path; --curve mean ± std per eval step; markdown tables.
  const metric = await seedlab("diff", a, "--metric", "data.vocabSize", "--format", "md");
  assertExit(metric, 0);
  const vocab = ra[0].data!.vocabSize;
  assert.match(
    metric.stdout,
    new RegExp(`^\\| A \\| 3 \\| ${vocab}\\.0000 \\| 0\\.0000 \\|`, "m"),
  );
  assert.match(metric.stdout, /^\| seed \| run \| status \|/m);

  const curve = await seedlab("diff", a, "--curve");
  assertExit(curve, 0);
  const at25 = ra.map((r) => r.curve.find((p) => p.step === 25)!.train!);
  assert.match(
    curve.stdout,
    new RegExp(`^\\s*25\\s+3\\s+${f4(mean(at25))} ± ${f4(sampleStd(at25))}\\s`, "m"),
  );

  // The report: one self-contained page with both groups.
  const html = join(dir, "report.html");
  const rep = await seedlab("report", a, b, "--out", html);
  assertExit(rep, 0);
  assert.match(rep.stdout, /wrote .*report\.html: 6 runs in 2 group\(s\) of 1 experiment/);
  const page = await Deno.readTextFile(html);
  assert.ok(page.startsWith("<!doctype html>"));
  assert.ok(!/<script|https?:\/\/(?!www\.w3\.org)|<link /.test(page), "nothing external");
  assert.equal(
    [...page.matchAll(/<svg class="chart"/g)].length,
    4,
    "2 groups + comparison + final loss vs train.lr",
  );
  assert.ok(page.includes("final val loss vs train.lr"));
  assert.ok(page.includes("train.lr=0.05"));
}

async function refusals({ dir, a, ra }: Groups): Promise<void> {
  // A copy of one run relabelled as another experiment, pooled into group A.
  const mixed = join(dir, "mixed");
  await Deno.mkdir(mixed);
  const keep = join(mixed, "a.json");
  const other = join(mixed, "b.json");
  await Deno.writeTextFile(keep, JSON.stringify(ra[0]));
  await Deno.writeTextFile(other, JSON.stringify({ ...ra[1], experiment: "attention_head" }));
  const refused = await seedlab("diff", mixed);
  assertExit(refused, 2);
  assert.match(refused.stderr, /group A pools runs of different experiments/);
  assert.ok(refused.stderr.includes(keep) && refused.stderr.includes(other));
  assert.match(refused.stderr, /pass --force/);
  const forced = await seedlab("diff", mixed, "--force");
  assertExit(forced, 0);
  assert.match(forced.stdout, /note: --force: group A pools runs of different experiments/);

  // Group B on another corpus: comparing A with it is refused.
  const data = join(dir, "otherdata");
  await Deno.mkdir(data);
  await Deno.writeTextFile(
    join(data, "x.json"),
    JSON.stringify({ ...ra[0], data: { ...ra[0].data, sha256: "e".repeat(64) } }),
  );
  const across = await seedlab("diff", a, data);
  assertExit(across, 2);
  assert.match(across.stderr, /A and B are runs of different data/);
  assert.ok(across.stderr.includes(join(data, "x.json")));

  // A corrupt and a foreign file name themselves.
  const broken = join(dir, "broken.json");
  await Deno.writeTextFile(broken, '{"schemaVersion": 1, "experi');
  const corrupt = await seedlab("diff", broken);
  assertExit(corrupt, 2);
  assert.match(corrupt.stderr, new RegExp(`${broken}: not valid JSON`));
  const foreign = join(dir, "package.json");
  await Deno.writeTextFile(foreign, JSON.stringify({ name: "x", version: "1.0.0" }));
  const notResult = await seedlab("diff", a, foreign);
  assertExit(notResult, 2);
  assert.match(notResult.stderr, new RegExp(`${foreign}: not a seedlab run result`));

  const nothing = await seedlab("diff", join(dir, "nowhere"));
  assertExit(nothing, 2);
  assert.match(nothing.stderr, /nowhere: no such file or directory/);
  assertExit(await seedlab("diff", a, "--format", "xml"), 2);
  assertExit(await seedlab("diff"), 2);
  assertExit(await seedlab("report", broken, "--out", join(dir, "r.html")), 2);
  assertExit(await seedlab("report", "--out", join(dir, "r.html")), 2);
}
