/**
 * Checkpoints from the command line: one beside every result, `--save-every N` (surviving a
 * SIGKILL), `--resume` ending bit-identical to an uninterrupted run, and `--init-from`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCheckpoint } from "../harness/checkpoint.ts";
import { readResult } from "../harness/results_io.ts";
import {
  assertExit,
  listDir,
  ROOT,
  seedlab,
  spawnSeedlab,
  TINY,
  withTempDir,
  writtenPath,
} from "./cli_helpers.ts";

const ckptOf = (resultPath: string) => resultPath.replace(/\.json$/, ".safetensors");

Deno.test("exp writes a checkpoint beside the result holding the end-of-run state", async () => {
  await withTempDir(async (out) => {
    const r = await seedlab("exp", "bigram", ...TINY, "--seed", "3", "--out", out);
    assertExit(r, 0);
    const path = writtenPath(r.stdout);
    const result = await readResult(path);
    assert.match(r.stdout, new RegExp(`checkpoint: step 50 → ${ckptOf(path)}`));
    const ckpt = await loadCheckpoint(ckptOf(path));
    assert.equal(ckpt.experiment, "bigram");
    assert.equal(ckpt.seed, 3);
    assert.equal(ckpt.step, 50);
    assert.equal(ckpt.configSha256, result.configSha256);
    assert.deepEqual(ckpt.overrides, result.overrides);
    assert.deepEqual(ckpt.curve, result.curve);
    const vocab = result.data!.vocabSize;
    assert.deepEqual(Object.keys(ckpt.params), ["token_embedding_table.weight"]);
    assert.deepEqual(ckpt.params["token_embedding_table.weight"].shape, [vocab, vocab]);
    assert.deepEqual(ckpt.adamM["token_embedding_table.weight"].shape, [vocab, vocab]);
    // Counter slot 0 counts the training batches drawn: one per step.
    assert.equal(ckpt.counters[0], 50);
    const v = ckpt.adamV["token_embedding_table.weight"].data;
    assert.ok(v.some((x) => x > 0), "AdamW second moments were stored");

    // The README's checkpoint section names every tensor of both language models.
    const head = await seedlab("exp", "attention_head", ...TINY, "--out", out);
    assertExit(head, 0);
    const headCkpt = await loadCheckpoint(ckptOf(writtenPath(head.stdout)));
    const readme = await Deno.readTextFile(join(ROOT, "README.md"));
    const section = readme.split(/^## Checkpoints$/m)[1].split(/^## /m)[0];
    const names = [...Object.keys(ckpt.params), ...Object.keys(headCkpt.params)];
    assert.equal(names.length, 8);
    for (const name of names) assert.ok(section.includes(`\`${name}\``), `README lacks ${name}`);
    for (const t of ["param.<name>", "adam.m.<name>", "adam.v.<name>", "counters"]) {
      assert.ok(section.includes(`\`${t}\``), `README lacks ${t}`);
    }
  });
});

Deno.test("--resume from a 40-step checkpoint to 80 steps equals an uninterrupted 80-step run", async () => {
  await withTempDir(async (dir) => {
    const short = await seedlab(
      "exp",
      "bigram",
      ...TINY,
      "--set",
      "train.steps=40",
      "--out",
      join(dir, "short"),
    );
    assertExit(short, 0);
    const ckpt = ckptOf(writtenPath(short.stdout));

    const full = await seedlab(
      "exp",
      "bigram",
      ...TINY,
      "--set",
      "train.steps=80",
      "--out",
      join(dir, "full"),
    );
    assertExit(full, 0);
    const fullResult = await readResult(writtenPath(full.stdout));

    // The checkpoint brings its own overrides (eval, sample); only the step count changes.
    const resumed = await seedlab(
      "exp",
      "bigram",
      "--resume",
      ckpt,
      "--set",
      "train.steps=80",
      "--out",
      join(dir, "resumed"),
    );
    assertExit(resumed, 0);
    const resumedResult = await readResult(writtenPath(resumed.stdout));
    const behind = await seedlab("exp", "bigram", "--resume", ckpt, "--set", "train.steps=30");
    assertExit(behind, 2);
    assert.match(behind.stderr, /is at step 40, beyond train\.steps=30/);
    assert.equal(resumedResult.configSha256, fullResult.configSha256);
    assert.equal(resumedResult.runId, fullResult.runId);
    assert.equal(resumedResult.steps, 80);
    // Same parameters bit for bit: evaluation never consumed training batches.
    assert.equal(resumedResult.paramsSha256, fullResult.paramsSha256);
    // The curve continues the checkpoint's: 0, 25, 40 from the short run, then 50, 75, 80.
    assert.deepEqual(resumedResult.curve.map((p) => p.step), [0, 25, 40, 50, 75, 80]);
    const losses = (r: typeof fullResult) =>
      r.curve.map(({ step, train, val }) => ({ step, train, val }));
    assert.deepEqual(losses(resumedResult).slice(0, 2), losses(fullResult).slice(0, 2));

    // Resumed into the uninterrupted run's directory, it is recognised as the same run.
    const into = await seedlab(
      "exp",
      "bigram",
      "--resume",
      ckpt,
      "--set",
      "train.steps=80",
      "--out",
      join(dir, "full"),
    );
    assertExit(into, 0);
    assert.match(
      into.stdout,
      /reproduced the parameters of .*; the loss curve differs from step 40/,
    );
  });
});

Deno.test("--save-every N leaves a loadable checkpoint when the run is SIGKILLed; resume completes it", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "killed");
    const args = [
      "--set",
      "eval.interval=1000",
      "--set",
      "eval.iters=5",
      "--set",
      "sample.tokens=5",
    ];
    const run = spawnSeedlab(
      "exp",
      "bigram",
      ...args,
      "--set",
      "train.steps=1000000",
      "--save-every",
      "30",
      "--out",
      out,
    );
    const m = await run.waitFor(/^checkpoint: step 60 → (.+)$/m);
    run.child.kill("SIGKILL");
    const killed = await run.finish();
    assert.equal(killed.code, 137);
    const ckptPath = m[1];
    assert.deepEqual(
      (await listDir(join(out, "bigram"))).filter((n) => !n.includes(".tmp-")),
      [ckptPath.split("/").pop()],
      "only the checkpoint: no result for a killed run",
    );
    const ckpt = await loadCheckpoint(ckptPath);
    assert.equal(ckpt.step % 30, 0);
    assert.ok(ckpt.step >= 60, `step ${ckpt.step}`);
    assert.equal(ckpt.counters[0], ckpt.step);

    const target = 600;
    assert.ok(ckpt.step < target, `the child ran past ${target} steps before the kill`);
    const resumed = await seedlab(
      "exp",
      "bigram",
      "--resume",
      ckptPath,
      "--set",
      `train.steps=${target}`,
      "--quiet",
      "--out",
      join(dir, "resumed"),
    );
    assertExit(resumed, 0);
    const full = await seedlab(
      "exp",
      "bigram",
      ...args,
      "--set",
      `train.steps=${target}`,
      "--quiet",
      "--out",
      join(dir, "full"),
    );
    assertExit(full, 0);
    const a = await readResult(writtenPath(resumed.stdout));
    const b = await readResult(writtenPath(full.stdout));
    assert.equal(a.steps, target);
    assert.equal(a.paramsSha256, b.paramsSha256);
  });
});

Deno.test("--init-from starts from given weights; names and shapes are validated", async () => {
  await withTempDir(async (dir) => {
    const source = await seedlab(
      "exp",
      "bigram",
      ...TINY,
      "--set",
      "train.lr=0.05",
      "--set",
      "train.steps=100",
      "--out",
      join(dir, "source"),
    );
    assertExit(source, 0);
    const ckpt = ckptOf(writtenPath(source.stdout));
    const sourceResult = await readResult(writtenPath(source.stdout));

    const fresh = await seedlab("exp", "bigram", ...TINY, "--out", join(dir, "fresh"));
    const warm = await seedlab(
      "exp",
      "bigram",
      ...TINY,
      "--init-from",
      ckpt,
      "--out",
      join(dir, "warm"),
    );
    assertExit(fresh, 0);
    assertExit(warm, 0);
    const freshResult = await readResult(writtenPath(fresh.stdout));
    const warmResult = await readResult(writtenPath(warm.stdout));
    // Same config and seed; only the starting weights differ, and they were trained.
    assert.equal(warmResult.configSha256, freshResult.configSha256);
    const start = (r: typeof freshResult) => r.curve[0].val!;
    assert.ok(
      start(warmResult) < start(freshResult) - 0.5,
      `warm start ${start(warmResult)} vs fresh ${start(freshResult)}`,
    );
    assert.ok(Math.abs(start(warmResult) - sourceResult.final.val!) < 0.2);

    // Another model's checkpoint: every missing and mismatched parameter is named.
    const other = await seedlab(
      "exp",
      "attention_head",
      ...TINY,
      "--init-from",
      ckpt,
      "--out",
      join(dir, "other"),
    );
    assertExit(other, 2);
    assert.match(other.stderr, /checkpoint of 'bigram' \(step 100\) does not fit the model/);
    assert.match(other.stderr, /missing from the checkpoint: .*lm_head\.weight/);
    const v = sourceResult.data!.vocabSize;
    assert.match(
      other.stderr,
      new RegExp(
        `param token_embedding_table\\.weight: checkpoint has \\[${v}, ${v}\\], model expects \\[${v}, 32\\]`,
      ),
    );
    assert.deepEqual(await listDir(join(dir, "other")), []);

    // Same model on a corpus with another vocabulary: the shape mismatch is named.
    const text = join(dir, "abc.txt");
    await Deno.writeTextFile(text, "abcabcabcab ".repeat(20));
    const shape = await seedlab(
      "exp",
      "bigram",
      ...TINY,
      "--data",
      text,
      "--init-from",
      ckpt,
      "--out",
      join(dir, "shape"),
    );
    assertExit(shape, 2);
    assert.match(
      shape.stderr,
      new RegExp(
        `param token_embedding_table\\.weight: checkpoint has \\[${v}, ${v}\\], model expects \\[4, 4\\]`,
      ),
    );

    const notCkpt = join(dir, "not.safetensors");
    await Deno.writeTextFile(notCkpt, "hello");
    const corrupt = await seedlab("exp", "bigram", ...TINY, "--init-from", notCkpt);
    assertExit(corrupt, 2);
    assert.match(corrupt.stderr, new RegExp(notCkpt));
  });
});
