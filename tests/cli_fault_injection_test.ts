/**
 * Fault injection: `exp` runs killed by SIGKILL, SIGINT or SIGTERM at seeded random moments,
 * all into one --out directory so later runs meet the files of earlier ones (ok results to
 * reproduce, interrupted ones to replace, checkpoints without results). After every trial each
 * `.json` validates, each `.safetensors` parses, and each pair beside each other describes the
 * same run: experiment, config sha, seed, step, and for an ok result the checkpoint's
 * parameters hash to its paramsSha256.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkpointParamsSha256, loadCheckpoint } from "../harness/checkpoint.ts";
import { readResult } from "../harness/results_io.ts";
import { listDir, spawnSeedlab, withTempDir } from "./cli_helpers.ts";

const TRIALS = 21;
const SIGNALS = ["SIGKILL", "SIGINT", "SIGTERM"] as const;
/** The exit code a run stopped by each signal reports (it may also finish first: 0). */
const STOPPED: Record<(typeof SIGNALS)[number], number> = {
  SIGKILL: 137,
  SIGINT: 130,
  SIGTERM: 143,
};

/** mulberry32: a small seeded generator, so the trial plan is the same every time. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Checks every file under `<out>/bigram`; returns how many result/checkpoint pairs it saw. */
async function checkConsistent(dir: string, trial: string): Promise<number> {
  const names = await listDir(dir);
  let pairs = 0;
  for (const name of names.filter((n) => n.endsWith(".safetensors"))) {
    await loadCheckpoint(join(dir, name));
  }
  for (const name of names.filter((n) => n.endsWith(".json"))) {
    const result = await readResult(join(dir, name));
    const ckptName = name.replace(/\.json$/, ".safetensors");
    if (!names.includes(ckptName)) continue;
    pairs++;
    const ckpt = await loadCheckpoint(join(dir, ckptName));
    const what = `${trial}: ${name} and its checkpoint`;
    assert.equal(ckpt.experiment, result.experiment, what);
    assert.equal(ckpt.configSha256, result.configSha256, what);
    assert.equal(ckpt.seed, result.seed, what);
    assert.equal(ckpt.step, result.steps, what);
    if (result.status === "ok") {
      assert.equal(await checkpointParamsSha256(ckpt), result.paramsSha256, what);
    }
  }
  return pairs;
}

Deno.test(`fault injection: ${TRIALS} runs killed at seeded random moments leave consistent files`, async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "results");
    const data = join(dir, "text.txt");
    await Deno.writeTextFile(data, "She sells sea shells by the sea shore. ".repeat(60));
    const next = random(20261129);
    const outcomes = new Map<string, number>();
    let pairs = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      // SIGKILL half the time: it is the one that can cut a run between its two files.
      const u = next();
      const signal = u < 0.5 ? "SIGKILL" : u < 0.75 ? "SIGINT" : "SIGTERM";
      // Few run ids, so most runs meet files that earlier runs left at their target.
      const seed = Math.floor(next() * 2);
      const steps = next() < 0.5 ? 200 : 400;
      const saveEvery = next() < 0.75 ? ["--save-every", "25"] : [];
      // Counted from the run's first line (it has its GPU and its data then): a moment in
      // training, evaluation, checkpointing or writing.
      const delayMs = Math.floor(next() * 700);
      const run = spawnSeedlab(
        "exp",
        "bigram",
        "--data",
        data,
        "--seed",
        String(seed),
        "--set",
        `train.steps=${steps}`,
        "--set",
        "eval.interval=50",
        "--set",
        "eval.iters=2",
        "--set",
        "sample.tokens=5",
        ...saveEvery,
        "--out",
        out,
      );
      await run.waitFor(/parameters, data|holds this run/).catch(() => {});
      await new Promise((r) => setTimeout(r, delayMs));
      try {
        run.child.kill(signal);
      } catch {
        // It had already exited.
      }
      const r = await run.finish();
      const label = `trial ${trial} (${signal} after ${delayMs} ms, seed ${seed}, ${steps} steps)`;
      assert.ok(
        [0, STOPPED[signal]].includes(r.code),
        `${label}: exit ${r.code}\n${r.stdout}\n${r.stderr}`,
      );
      assert.doesNotMatch(r.stderr, /Uncaught/, label);
      const key = `${signal} → exit ${r.code}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      pairs += await checkConsistent(join(out, "bigram"), label);
    }
    const files = await listDir(join(out, "bigram"));
    console.log(
      `fault injection: ${TRIALS} trials; ${
        [...outcomes].sort().map(([k, n]) => `${k}: ${n}`).join(", ")
      }; ${pairs} pair checks; final files: ${files.join(" ")}`,
    );
  });
});
