/**
 * Issue 11, data consistency: a refused run writes neither file, `--init-from` is part of what
 * a run is (result, run id, --verify), --verify checks the file it is given, and SIGTERM stops
 * a run like Ctrl-C.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadCheckpoint } from "../harness/checkpoint.ts";
import { readResult } from "../harness/results_io.ts";
import {
  assertExit,
  listDir,
  readResults,
  seedlab,
  SMALL,
  spawnSeedlab,
  withTempDir,
  writtenPath,
} from "./cli_helpers.ts";

/** Long enough to be stopped part way: evaluations every 25 steps of a million. */
const ENDLESS = [
  "--set",
  "train.steps=1000000",
  "--set",
  "eval.interval=25",
  "--set",
  "eval.iters=2",
  "--set",
  "sample.tokens=5",
];

const ckptOf = (path: string) => path.replace(/\.json$/, ".safetensors");

async function bytesOf(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("a refused run leaves both files of an ok result as they were", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "results");
    const data = join(dir, "text.txt");
    await Deno.writeTextFile(data, "the quick brown fox jumps over the lazy dog. ".repeat(40));
    const args = ["exp", "bigram", ...SMALL, "--data", data, "--out", out];
    const first = await seedlab(...args);
    assertExit(first, 0);
    const json = writtenPath(first.stdout);
    const before = [await bytesOf(json), await bytesOf(ckptOf(json))];
    const unchanged = async (what: string) =>
      assert.deepEqual([await bytesOf(json), await bytesOf(ckptOf(json))], before, what);

    // The data file changed: refused before training, exit 1, nothing written.
    await Deno.writeTextFile(data, "pack my box with five dozen liquor jugs. ".repeat(40));
    const changed = await seedlab(...args);
    assertExit(changed, 1);
    assert.match(changed.stderr, /refusing to run seed 1337: .* holds an ok run of other data/);
    assert.match(changed.stderr, /pass --out DIR/);
    assert.doesNotMatch(changed.stdout, /step 0/, "no compute was spent");
    await unchanged("changed data");
    const verifyChanged = await seedlab("exp", "bigram", "--verify", json);
    assertExit(verifyChanged, 2);
    assert.match(
      verifyChanged.stderr,
      /was trained on data text\.txt with sha256 .*cannot be re-run/,
    );

    // A run long enough to be stopped part way when it is run again.
    await Deno.writeTextFile(data, "the quick brown fox jumps over the lazy dog. ".repeat(40));
    const slow = ["exp", "bigram", ...ENDLESS, "--set", "train.steps=400", "--data", data];
    const long = await seedlab(...slow, "--out", out);
    assertExit(long, 0);
    const longJson = writtenPath(long.stdout);
    const longBefore = [await bytesOf(longJson), await bytesOf(ckptOf(longJson))];
    const again = spawnSeedlab(...slow, "--save-every", "10", "--out", out);
    await again.waitFor(/holds this run \(ok\): re-running to check that it reproduces/);
    await again.waitFor(/^step 50: /m);
    again.child.kill("SIGINT");
    const stopped = await again.finish();
    assertExit(stopped, 130);
    assert.match(
      stopped.stderr,
      /refusing to overwrite .*this run's result and checkpoint were not written/,
    );
    assert.doesNotMatch(stopped.stdout, /checkpoint: step/);
    assert.deepEqual([await bytesOf(longJson), await bytesOf(ckptOf(longJson))], longBefore);
    await unchanged("interrupted re-run");
    assert.deepEqual((await listDir(join(out, "bigram"))).filter((n) => n.includes(".tmp-")), []);
  });
});

Deno.test("--init-from is recorded, part of the run id, and --verify re-runs it", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "results");
    const source = await seedlab(
      "exp",
      "bigram",
      ...SMALL,
      "--seed",
      "4",
      "--out",
      join(dir, "src"),
    );
    assertExit(source, 0);
    const sourceResult = await readResult(writtenPath(source.stdout));
    const init = ckptOf(writtenPath(source.stdout));

    const scratch = await seedlab("exp", "bigram", ...SMALL, "--out", out);
    assertExit(scratch, 0);
    const scratchPath = writtenPath(scratch.stdout);
    const before = [await bytesOf(scratchPath), await bytesOf(ckptOf(scratchPath))];
    const warm = await seedlab("exp", "bigram", ...SMALL, "--init-from", init, "--out", out);
    assertExit(warm, 0);
    const warmPath = writtenPath(warm.stdout);
    const warmResult = await readResult(warmPath);
    const scratchResult = await readResult(scratchPath);
    assert.equal(warmResult.configSha256, scratchResult.configSha256);
    assert.notEqual(warmResult.runId, scratchResult.runId, "the init weights change the run id");
    assert.deepEqual(warmResult.initFrom, { path: init, paramsSha256: sourceResult.paramsSha256 });
    // The scratch run's pair is untouched; the warm run has its own.
    assert.deepEqual([await bytesOf(scratchPath), await bytesOf(ckptOf(scratchPath))], before);
    assert.deepEqual((await loadCheckpoint(ckptOf(warmPath))).initFrom, warmResult.initFrom);

    const verified = await seedlab("exp", "bigram", "--verify", warmPath);
    assertExit(verified, 0);
    assert.match(verified.stdout, /verified: .* reproduces bit for bit/);

    // The init file replaced by other weights, then gone: said clearly, exit 2, nothing run.
    await Deno.copyFile(ckptOf(scratchPath), init);
    const changed = await seedlab("exp", "bigram", "--verify", warmPath);
    assertExit(changed, 2);
    assert.match(changed.stderr, /started from .* \(--init-from\), which has changed since/);
    await Deno.remove(init);
    const missing = await seedlab("exp", "bigram", "--verify", warmPath);
    assertExit(missing, 2);
    assert.match(missing.stderr, /started from .* \(--init-from\), which cannot be loaded/);
    assert.doesNotMatch(missing.stdout, /step 0/);
  });
});

Deno.test("--verify refuses an edited result and says up front what it cannot verify", async () => {
  await withTempDir(async (dir) => {
    const run = await seedlab("exp", "bigram", ...SMALL, "--out", join(dir, "results"));
    assertExit(run, 0);
    const stored = await readResult(writtenPath(run.stdout));
    const copy = join(dir, "edited.json");
    const verifyEdited = async (edit: (r: typeof stored) => void) => {
      const edited = structuredClone(stored);
      edit(edited);
      await Deno.writeTextFile(copy, JSON.stringify(edited, null, 2));
      return await seedlab("exp", "bigram", "--verify", copy);
    };

    const lr = await verifyEdited((r) => ((r.config.train as { lr: number }).lr = 0.5));
    assertExit(lr, 2);
    assert.match(lr.stderr, /edited\.json is not consistent \(was it edited\?\)/);
    assert.match(lr.stderr, /its config hashes to [0-9a-f]{12}…, not to its configSha256/);
    assert.doesNotMatch(lr.stdout, /step 0/, "refused before re-running");

    const runId = await verifyEdited((r) => (r.runId = "00000000-s1337"));
    assertExit(runId, 2);
    assert.match(runId.stderr, /its runId 00000000-s1337 should be /);

    const sample = await verifyEdited((r) => (r.sample = "edited"));
    assertExit(sample, 1);
    assert.match(sample.stderr, /verify: the sample differs/);

    const status = await verifyEdited((r) => {
      r.status = "diverged";
      r.reason = "training loss became NaN at step 7";
    });
    assertExit(status, 1);
    assert.match(status.stdout, /ended diverged at step 20 .*checking that the re-run ends/);
    assert.match(status.stderr, /verify: status differs: stored diverged, re-run ok/);

    const interrupted = await verifyEdited((r) => {
      r.status = "interrupted";
      r.steps = 10;
    });
    assertExit(interrupted, 2);
    assert.match(interrupted.stderr, /is an interrupted run \(stopped at step 10\)/);
    assert.doesNotMatch(interrupted.stdout, /step 0/);
    assert.doesNotMatch(interrupted.stdout + interrupted.stderr, /undefined|Uncaught/);
  });
});

Deno.test("SIGTERM stops a run like Ctrl-C: interrupted result and checkpoint, exit 143", async () => {
  await withTempDir(async (out) => {
    const run = spawnSeedlab("exp", "bigram", ...ENDLESS, "--out", out);
    await run.waitFor(/^step 25: train loss/m);
    run.child.kill("SIGTERM");
    const r = await run.finish();
    assertExit(r, 143);
    assert.match(r.stdout, /interrupt: finishing the current chunk .*\(SIGTERM\)/);
    const [result] = await readResults(out, "bigram");
    assert.equal(result.status, "interrupted");
    assert.ok(result.steps >= 25 && result.steps < 1_000_000, `steps ${result.steps}`);
    const ckpt = await loadCheckpoint(join(out, "bigram", `${result.runId}.safetensors`));
    assert.equal(ckpt.step, result.steps);
  });
});
