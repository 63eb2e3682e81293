/**
 * The gpt experiment and the `--graph` flag from the command line: results record which path
 * trained them, `--verify` re-runs that path, a ladder config file runs, and a gpt run with
 * dropout verifies bit for bit.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readResult } from "../harness/results_io.ts";
import { assertExit, seedlab, TINY, withTempDir, writtenPath } from "./cli_helpers.ts";

Deno.test("exp --graph: the result records the path, the run id says it was forced, and --verify re-runs it", async () => {
  await withTempDir(async (dir) => {
    const graph = await seedlab(
      "exp",
      "attention_head",
      "--graph",
      ...TINY,
      "--out",
      join(dir, "g"),
    );
    assertExit(graph, 0);
    const fused = await seedlab("exp", "attention_head", ...TINY, "--out", join(dir, "f"));
    assertExit(fused, 0);
    const [g, f] = [
      await readResult(writtenPath(graph.stdout)),
      await readResult(writtenPath(fused.stdout)),
    ];
    assert.equal(g.path, "graph");
    assert.equal(f.path, "fused");
    // The paths sum in different orders: different bits, so a forced path is part of the run
    // id and both results can live in one --out.
    assert.equal(g.forcedGraph, true);
    assert.equal(f.forcedGraph, undefined);
    assert.notEqual(g.runId, f.runId);
    assert.equal(g.runId.slice(-6), f.runId.slice(-6)); // same seed suffix
    assert.notEqual(g.paramsSha256, f.paramsSha256);
    const verify = await seedlab("exp", "attention_head", "--verify", writtenPath(graph.stdout));
    assertExit(verify, 0);
  });
});

Deno.test("exp gpt: a ladder config runs, and a run with dropout verifies bit for bit", async () => {
  await withTempDir(async (dir) => {
    const short = ["--set", "train.steps=10", "--set", "eval.interval=5"];
    const rung = await seedlab(
      "exp",
      "gpt",
      "--config",
      "configs/gpt/4-layernorm.json",
      ...TINY,
      ...short,
      "--set",
      "data=mobydick",
      "--out",
      dir,
    );
    assertExit(rung, 0);
    const result = await readResult(writtenPath(rung.stdout));
    assert.equal(result.path, "graph");
    assert.deepEqual(
      [result.config.model, (result.config.train as { blockSize: number }).blockSize],
      [{
        nEmbd: 32,
        nHead: 4,
        nLayer: 3,
        dropout: 0,
        ffnMult: 4,
        residual: true,
        layerNorm: true,
        init: "pytorch",
      }, 8],
    );
    const small = [
      "--set",
      "model.nEmbd=16",
      "--set",
      "model.nLayer=2",
      "--set",
      "train.blockSize=8",
    ];
    const dropout = await seedlab(
      "exp",
      "gpt",
      ...TINY,
      ...short,
      ...small,
      "--set",
      "model.dropout=0.2",
      "--out",
      dir,
    );
    assertExit(dropout, 0);
    const verify = await seedlab("exp", "gpt", "--verify", writtenPath(dropout.stdout));
    assertExit(verify, 0);
    assert.match(verify.stdout, /reproduces bit for bit/);
  });
});
