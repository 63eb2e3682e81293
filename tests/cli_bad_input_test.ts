/**
 * Issue 11, bad input and odd places: sizes beyond the device, unusable output locations,
 * `--help` and unknown options, a FIFO as data, the README's smaller promises, markdown cells,
 * experiment names and paths typed under `deno task`. Every case is one clear line with the
 * documented exit code; no output anywhere holds a stack trace.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readResult } from "../harness/results_io.ts";
import {
  assertExit,
  type CliOutput,
  listDir,
  ROOT,
  seedlab,
  seedlabWithEnv,
  SMALL,
  withTempDir,
  writtenPath,
} from "./cli_helpers.ts";

/** Every output the tests in this file captured, checked for stack traces at the end. */
const captured: CliOutput[] = [];
async function run(...args: string[]): Promise<CliOutput> {
  const out = await seedlab(...args);
  captured.push(out);
  return out;
}
async function runWithEnv(env: Record<string, string>, ...args: string[]): Promise<CliOutput> {
  const out = await seedlabWithEnv(env, ...args);
  captured.push(out);
  return out;
}

Deno.test("sizes beyond the device: exit 2 naming the key, the limit and the largest that fits", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "results");
    const batch = await run(
      "exp",
      "bigram",
      ...SMALL,
      "--set",
      "train.batchSize=100000",
      "--out",
      out,
    );
    assertExit(batch, 2);
    assert.match(batch.stderr, /train\.batchSize=100000 does not fit: .*limit of 65535/);
    assert.match(batch.stderr, /the largest train\.batchSize that fits .* is 2047$/m);

    const steps = await run("exp", "bigram", ...SMALL, "--set", "train.steps=1e12", "--out", out);
    assertExit(steps, 2);
    assert.match(steps.stderr, /train\.steps=1000000000000 does not fit the device/);
    assert.match(steps.stderr, /the largest train\.steps that fits is \d+/);

    // 3,000 distinct characters: a bigram table of 3000² floats exceeds one binding.
    const wide = join(dir, "wide.txt");
    const chars = Array.from({ length: 3000 }, (_, i) => String.fromCodePoint(0x4e00 + i));
    await Deno.writeTextFile(wide, chars.join("").repeat(2));
    const vocab = await run("exp", "bigram", ...SMALL, "--data", wide, "--out", out);
    assertExit(vocab, 2);
    assert.match(vocab.stderr, /data wide\.txt has 3000 distinct characters, too many/);
    assert.match(vocab.stderr, /the largest vocabulary that fits is \d+/);

    const xbow = await run("exp", "xbow", "--set", "shape.T=100000", "--out", out);
    assertExit(xbow, 2);
    assert.match(xbow.stderr, /does not fit: .*lower shape\.T=100000/);
    // The largest T follows from llvmpipe's 128 MiB binding limit: 4 · T² floats at B = 4.
    assert.match(xbow.stderr, /largest shape\.T that fits with shape\.B=4 is 2896;/);
    assert.deepEqual(await listDir(out), [], "nothing written");
  });
});

Deno.test("output locations: checked before training; a failed write keeps what was computed", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "file.txt");
    await Deno.writeTextFile(file, "");
    const intoFile = await run("exp", "bigram", ...SMALL, "--out", file);
    assertExit(intoFile, 2);
    assert.match(intoFile.stderr, /--out .*file\.txt: .*file\.txt is a file, not a directory/);
    assert.doesNotMatch(intoFile.stdout, /step 0/);

    // /proc takes no new files, even from root.
    const readOnly = await run("exp", "bigram", ...SMALL, "--out", "/proc/seedlab-results");
    assertExit(readOnly, 2);
    assert.match(readOnly.stderr, /--out \/proc\/seedlab-results: cannot write into \/proc/);

    const reportDir = await run("report", ROOT, "--out", dir);
    assertExit(reportDir, 2);
    assert.match(reportDir.stderr, /--out .* is a directory; give a file name/);

    // A disk that fills up during the run (a 40 KiB file size limit): the checkpoint cannot be
    // written, the result is rescued elsewhere, and no temporary file is left behind.
    const out = join(dir, "full");
    const cmd = new Deno.Command("bash", {
      args: [
        "-c",
        `trap '' XFSZ; ulimit -f 40; exec "$0" run -A harness/main.ts "$@"`,
        Deno.execPath(),
        "exp",
        "bigram",
        ...SMALL,
        "--out",
        out,
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    });
    const o = await cmd.output();
    const full = {
      code: o.code,
      stdout: new TextDecoder().decode(o.stdout),
      stderr: new TextDecoder().decode(o.stderr),
    };
    captured.push(full);
    assertExit(full, 1);
    assert.match(full.stderr, /could not write the checkpoint to .*full\/bigram\/.*\.safetensors/);
    const rescued = /saved the result to (.+\.json) instead/.exec(full.stderr);
    assert.ok(rescued, full.stderr);
    assert.equal((await readResult(rescued[1])).status, "ok");
    await Deno.remove(join(rescued[1], ".."), { recursive: true });
    assert.deepEqual(await listDir(join(out, "bigram")), [], "no torn or temporary files");
  });
});

Deno.test("--help on every command exits 0; an unknown option exits 2 with a clean message", async () => {
  for (const command of ["exp", "diff", "check", "report"]) {
    const help = await run(command, "--help");
    assertExit(help, 0);
    assert.match(help.stdout, new RegExp(`usage: deno task ${command}`));
    const bad = await run(command, "--bogus");
    assertExit(bad, 2);
    assert.match(bad.stderr, /^error: unknown option '--bogus'$/m);
    assert.doesNotMatch(bad.stderr, /-- "/, "no garbled quoting");
  }
  const missing = await run("exp", "bigram", "--seed");
  assertExit(missing, 2);
  assert.match(missing.stderr, /option --seed needs a value/);
});

Deno.test("a FIFO as --data (or --config) is refused at once", async () => {
  await withTempDir(async (dir) => {
    const fifo = join(dir, "pipe");
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(made.success);
    const data = await run("exp", "bigram", ...SMALL, "--data", fifo, "--out", join(dir, "r"));
    assertExit(data, 2);
    assert.match(data.stderr, /data file '.*pipe' is a FIFO \(named pipe\); give a regular file/);
    const config = await run("exp", "bigram", "--config", fifo, "--out", join(dir, "r"));
    assertExit(config, 2);
    assert.match(config.stderr, /config file '.*pipe' is a FIFO/);
  });
});

Deno.test("the README's smaller promises: --quiet, last --data wins, empty shard, --seed, --resume, backend", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "results");
    const a = join(dir, "a.txt");
    await Deno.writeTextFile(a, "abcdefghij klmnop ".repeat(30));
    const quiet = await run("exp", "bigram", ...SMALL, "--seeds", "1,2", "--quiet", "--out", out);
    assertExit(quiet, 0);
    const lines = quiet.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 2, quiet.stdout);
    assert.match(lines[0], /^bigram seed 1: ok .* → wrote .*\.json$/);

    const dataLast = await run(
      "exp",
      "bigram",
      ...SMALL,
      "--set",
      "data=mobydick",
      "--data",
      a,
      "--set",
      "data=mobydick",
      "--out",
      out,
      "--quiet",
    );
    assertExit(dataLast, 0);
    assert.equal((await readResult(writtenPath(dataLast.stdout))).data!.name, "mobydick");
    const setLast = await run(
      "exp",
      "bigram",
      ...SMALL,
      "--data",
      "mobydick",
      "--set",
      `data=${a}`,
      "--out",
      out,
      "--quiet",
    );
    assertExit(setLast, 0);
    assert.equal((await readResult(writtenPath(setLast.stdout))).data!.name, "a.txt");

    const empty = await run("exp", "bigram", "--seeds", "0,1", "--shard", "3/5", "--out", out);
    assertExit(empty, 0);
    assert.match(empty.stdout, /^shard 3\/5 of 2 seeds is empty; nothing to run$/m);

    const seed = await run("exp", "bigram", "--seed", "4294967296");
    assertExit(seed, 2);
    assert.match(seed.stderr, /--seed '4294967296': seed 4294967296 exceeds 2\^32-1/);

    const ckpt = writtenPath(setLast.stdout).replace(/\.json$/, ".safetensors");
    const resumed = await run(
      "exp",
      "bigram",
      "--resume",
      ckpt,
      "--set",
      "train.steps=30",
      "--out",
      join(dir, "resumed"),
    );
    assertExit(resumed, 0);
    assert.match(resumed.stdout, /resuming .* from step 20 to train\.steps=30/);

    const metal = await runWithEnv({ DENO_WEBGPU_BACKEND: "metal" }, "exp", "xbow", "--out", out);
    assertExit(metal, 2);
    assert.match(
      metal.stderr,
      /DENO_WEBGPU_BACKEND=metal: 'metal' is not a WebGPU backend on linux; valid: vulkan, gl/,
    );
  });
});

Deno.test("diff --format md escapes table cells; an experiment named with a path is refused", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "results");
    const xbow = await run("exp", "xbow", "--out", out);
    assertExit(xbow, 0);
    const path = writtenPath(xbow.stdout);
    const result = await readResult(path);
    await Deno.writeTextFile(path, JSON.stringify({ ...result, runId: "a|b<img src=x>" }));
    const md = await run("diff", path, "--format", "md", "--metric", "final.maxAbsDiffHead");
    assertExit(md, 0);
    assert.match(md.stdout, /a\\\|b&lt;img src=x&gt;/);
    assert.doesNotMatch(md.stdout, /<img/);

    const evil = join(dir, "evil.ts");
    await Deno.writeTextFile(
      evil,
      'export const evil = { kind: "check", name: "../evil", summary: "", schema: {}, run() {} };\n',
    );
    const named = await run("exp", evil, "--out", out);
    assertExit(named, 2);
    assert.match(named.stderr, /exports an experiment named "\.\.\/evil"; a name must be/);
  });
});

Deno.test("relative paths typed under `deno task` resolve against INIT_CWD", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "text.txt"), "hello world, hello seeds. ".repeat(30));
    const env = { INIT_CWD: dir };
    const exp = await runWithEnv(
      env,
      "exp",
      "bigram",
      ...SMALL,
      "--data",
      "text.txt",
      "--out",
      "out",
    );
    assertExit(exp, 0);
    const [name] = await listDir(join(dir, "out", "bigram")).then((n) =>
      n.filter((f) => f.endsWith(".json"))
    );
    const result = await readResult(join(dir, "out", "bigram", name));
    assert.equal(result.data!.source, join(dir, "text.txt"));
    const diff = await runWithEnv(env, "diff", "out/bigram");
    assertExit(diff, 0);
    const report = await runWithEnv(env, "report", "out", "--out", "r.html");
    assertExit(report, 0);
    assert.ok((await Deno.stat(join(dir, "r.html"))).isFile);
  });
});

Deno.test("no captured output holds a stack trace", () => {
  assert.ok(captured.length > 20, `${captured.length} outputs captured`);
  for (const out of captured) {
    assert.doesNotMatch(out.stdout + out.stderr, /Uncaught|^\s+at /m);
  }
});
