/**
 * `deno task exp` end to end, in child processes: bad input (exit 2, nothing written),
 * divergence (exit 1), Ctrl-C (exit 130), reproduction and refusal, `--verify` and `--shard`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readResult } from "../harness/results_io.ts";
import {
  assertExit,
  listDir,
  readResults,
  seedlab,
  seedlabWithEnv,
  spawnSeedlab,
  TINY,
  withTempDir,
  writtenPath,
} from "./cli_helpers.ts";

Deno.test("exp: usage errors name the problem, exit 2 and write nothing", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "results");
    const empty = join(dir, "empty.txt");
    await Deno.writeTextFile(empty, "");
    // 9 characters: 8 train and 1 val token, but blockSize 8 needs 9 per split.
    const short = join(dir, "short.txt");
    await Deno.writeTextFile(short, "abcdefghi");
    const missing = join(dir, "missing.txt");
    const cases: { args: string[]; stderr: RegExp[]; tiny?: false }[] = [
      {
        args: ["nope"],
        stderr: [/unknown experiment 'nope'/, /known experiments: .*bigram/, /attention_head/],
      },
      { args: ["bigram", "--set", "train.lr=abc"], stderr: [/train\.lr expects a number/, /abc/] },
      {
        args: ["bigram", "--set", "train.steps=2.5"],
        stderr: [/train\.steps expects an integer, got '2\.5'/],
      },
      {
        args: ["bigram", "--set", "train.nope=1"],
        stderr: [/unknown config key 'train\.nope'/, /known keys: .*train\.lr/],
      },
      {
        args: ["bigram", "--data", missing],
        stderr: [new RegExp(`data file '${missing}' not found`)],
      },
      { args: ["bigram", "--data", empty], stderr: [/empty\.txt.* is empty/] },
      {
        args: ["bigram", "--data", short],
        stderr: [/short\.txt.* is too small/, /8 train and 1 val/, /at least 9/],
      },
      { args: ["bigram", "--seeds", "5..1"], stderr: [/range 5\.\.1 is descending/] },
      { args: ["bigram", "--shard", "3/3"], stderr: [/shard index 3 must be below 3/] },
      { args: ["bigram", "--bogus"], stderr: [/bogus/, /usage: deno task exp/] },
      {
        args: ["bigram", "--verify", join(dir, "none.json")],
        stderr: [/none\.json: no such file/],
        tiny: false,
      },
      {
        args: ["bigram", "--verify", join(dir, "none.json"), "--seed", "3"],
        stderr: [/--verify takes the config and seed from the result; drop --seed, --set/],
      },
      {
        args: ["bigram", "--resume", join(dir, "none.safetensors"), "--seeds", "0..2"],
        stderr: [/--resume continues the checkpoint's seed; drop --seeds/],
      },
      {
        args: ["bigram", "--resume", join(dir, "none.safetensors")],
        stderr: [/none\.safetensors/],
      },
      {
        args: ["bigram", "--save-every", "0"],
        stderr: [/--save-every expects a positive integer/],
      },
      { args: ["xbow", "--save-every", "10"], stderr: [/'xbow' trains nothing/], tiny: false },
    ];
    for (const c of cases) {
      const r = await seedlab("exp", ...c.args, ...(c.tiny === false ? [] : TINY), "--out", out);
      assertExit(r, 2);
      for (const re of c.stderr) assert.match(r.stderr, re, `exp ${c.args.join(" ")}`);
      assert.deepEqual(await listDir(out), [], `exp ${c.args.join(" ")} wrote something`);
    }
  });
});

Deno.test("exp: a loss that becomes NaN stops the run: status diverged, exit 1", async () => {
  await withTempDir(async (out) => {
    const r = await seedlab("exp", "bigram", ...TINY, "--set", "train.lr=1e30", "--out", out);
    assertExit(r, 1);
    const [result] = await readResults(out, "bigram");
    assert.equal(result.status, "diverged");
    assert.match(result.reason ?? "", /training loss became (NaN|-?Infinity) at step \d+/);
    assert.equal(result.final.train, null);
    assert.equal(result.final.val, null);
    assert.ok(result.steps < 50, `stopped early, at step ${result.steps}`);
    assert.equal(result.overrides["train.lr"], 1e30);
    assert.match(r.stdout, /bigram seed 1337: diverged/);
  });
});

Deno.test("exp: SIGINT during training writes status interrupted and exits 130", async () => {
  await withTempDir(async (out) => {
    const run = spawnSeedlab(
      "exp",
      "bigram",
      ...TINY,
      "--set",
      "train.steps=1000000",
      "--out",
      out,
    );
    // Past the first eval after step 0, so training is under way.
    await run.waitFor(/^step 25: train loss/m);
    run.child.kill("SIGINT");
    const r = await run.finish();
    assertExit(r, 130);
    assert.match(r.stdout, /interrupt: finishing the current chunk/);
    const [result] = await readResults(out, "bigram");
    assert.equal(result.status, "interrupted");
    assert.ok(result.steps >= 25 && result.steps < 1_000_000, `steps ${result.steps}`);
    assert.match(result.reason ?? "", new RegExp(`interrupted at step ${result.steps}`));
    assert.ok(result.curve.length >= 2);
    // The checkpoint beside it lets the run be resumed.
    const files = await listDir(join(out, "bigram"));
    assert.deepEqual(files, [`${result.runId}.json`, `${result.runId}.safetensors`]);
  });
});

Deno.test("exp: the same seed reproduces bit for bit, another seed differs, a clash is refused", async () => {
  await withTempDir(async (out) => {
    const first = await seedlab("exp", "bigram", ...TINY, "--seeds", "1,2", "--out", out);
    assertExit(first, 0);
    const [s1, s2] = await readResults(out, "bigram");
    assert.equal(s1.seed, 1);
    assert.equal(s2.seed, 2);
    assert.equal(s1.status, "ok");
    assert.match(s1.paramsSha256, /^[0-9a-f]{64}$/);
    assert.notEqual(s1.paramsSha256, s2.paramsSha256);
    assert.notDeepEqual(s1.curve.map((p) => p.train), s2.curve.map((p) => p.train));
    assert.equal(s1.runId.slice(0, 8), s2.runId.slice(0, 8), "same config, same id prefix");
    assert.equal(s1.runId, `${s1.configSha256.slice(0, 8)}-s1`);

    const path = join(out, "bigram", `${s1.runId}.json`);
    const before = await Deno.readTextFile(path);
    const again = await seedlab("exp", "bigram", ...TINY, "--seed", "1", "--out", out);
    assertExit(again, 0);
    assert.match(again.stdout, new RegExp(`reproduced ${path} bit for bit`));
    assert.match(again.stdout, new RegExp(`params sha256 ${s1.paramsSha256.slice(0, 16)}`));
    assert.equal(await Deno.readTextFile(path), before, "a reproduced result is not rewritten");

    // A stored result that the re-run does not reproduce is never overwritten.
    const tampered = { ...JSON.parse(before), paramsSha256: "0".repeat(64) };
    await Deno.writeTextFile(path, JSON.stringify(tampered, null, 2));
    const clash = await seedlab("exp", "bigram", ...TINY, "--seed", "1", "--out", out);
    assertExit(clash, 1);
    assert.match(clash.stderr, new RegExp(`refusing to overwrite ${path}`));
    assert.equal((await readResult(path)).paramsSha256, "0".repeat(64));
  });
});

Deno.test("exp --verify: exit 0 when bit-identical, 1 naming the first differing step", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "results");
    const run = await seedlab("exp", "bigram", ...TINY, "--seed", "7", "--out", out);
    assertExit(run, 0);
    const path = writtenPath(run.stdout);
    const stored = await readResult(path);
    assert.deepEqual(stored.curve.map((p) => p.step), [0, 25, 50]);
    const filesBefore = await listDir(join(out, "bigram"));
    const ckptBefore = await Deno.readFile(path.replace(/\.json$/, ".safetensors"));

    const ok = await seedlab("exp", "bigram", "--verify", path);
    assertExit(ok, 0);
    assert.match(ok.stdout, new RegExp(`verified: ${stored.runId} reproduces bit for bit`));

    // One curve value off by one ulp-ish step: the verification names step 25.
    const edited = structuredClone(stored);
    edited.curve[1].train = Math.fround(edited.curve[1].train! + 1e-6);
    const copy = join(dir, "edited.json");
    await Deno.writeTextFile(copy, JSON.stringify(edited, null, 2));
    const bad = await seedlab("exp", "bigram", "--verify", copy);
    assertExit(bad, 1);
    assert.match(bad.stderr, /verify: the curve differs first at step 25/);

    const otherParams = { ...stored, paramsSha256: "f".repeat(64) };
    await Deno.writeTextFile(copy, JSON.stringify(otherParams, null, 2));
    const badParams = await seedlab("exp", "bigram", "--verify", copy);
    assertExit(badParams, 1);
    assert.match(badParams.stderr, /verify: params sha256 differs/);

    const wrongExperiment = await seedlab("exp", "attention_head", "--verify", path);
    assertExit(wrongExperiment, 2);
    assert.match(wrongExperiment.stderr, /is a result of 'bigram', not 'attention_head'/);

    // Verifying writes nothing: no new result, the checkpoint untouched.
    assert.deepEqual(await listDir(join(out, "bigram")), filesBefore);
    assert.deepEqual(await Deno.readFile(path.replace(/\.json$/, ".safetensors")), ckptBefore);

    // A run configured by a --config file verifies from the config stored in its result.
    const file = join(dir, "config.json");
    await Deno.writeTextFile(
      file,
      JSON.stringify({ train: { steps: 30, lr: 0.02 }, eval: { interval: 15, iters: 3 } }),
    );
    const fromFile = await seedlab("exp", "bigram", "--config", file, "--out", join(dir, "cfg"));
    assertExit(fromFile, 0);
    const cfgResult = writtenPath(fromFile.stdout);
    assert.deepEqual((await readResult(cfgResult)).overrides, {});
    assertExit(await seedlab("exp", "bigram", "--verify", cfgResult), 0);
  });
});

Deno.test("exp --shard i/n: disjoint slices of the seeds that together cover them all", async () => {
  await withTempDir(async (out) => {
    const bySlice: number[][] = [];
    for (let i = 0; i < 3; i++) {
      const before = new Set((await readResults(out, "xbow")).map((r) => r.seed));
      const r = await seedlab("exp", "xbow", "--seeds", "0..9", "--shard", `${i}/3`, "--out", out);
      assertExit(r, 0);
      const mine = (await readResults(out, "xbow")).map((r) => r.seed).filter((s) =>
        !before.has(s)
      );
      bySlice.push(mine.sort((a, b) => a - b));
    }
    assert.deepEqual(bySlice, [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]);
    const all = await readResults(out, "xbow");
    assert.equal(all.length, 10);
    assert.ok(all.every((r) => r.status === "ok"));
    assert.equal(new Set(all.map((r) => r.configSha256)).size, 1, "one config across shards");
  });
});

Deno.test("exp: without a WebGPU adapter it names what to install, exit 3, writes nothing", async () => {
  await withTempDir(async (dir) => {
    // Deno's WebGPU restricted to Vulkan, with the Vulkan loader pointed at no driver at all.
    const out = await seedlabWithEnv(
      { DENO_WEBGPU_BACKEND: "vulkan", VK_ICD_FILENAMES: join(dir, "no-such-icd.json") },
      "exp",
      "bigram",
      "--out",
      join(dir, "results"),
      ...TINY,
    );
    assertExit(out, 3);
    assert.match(out.stderr, /No WebGPU adapter found/);
    assert.match(out.stderr, /mesa-vulkan-drivers/);
    assert.match(out.stderr, /libegl-mesa0/);
    assert.deepEqual(await listDir(join(dir, "results")), []);
  });
});
