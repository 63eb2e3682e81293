import assert from "node:assert/strict";
import { join } from "node:path";
import { experiments } from "../experiments/mod.ts";
import { formatDispatches, formatRows, type TrainingRecord } from "../bench/main.ts";
import { findTorchPython, runTorchBench, type TorchRun, torchVariants } from "../bench/torch.ts";
import { availableBenches, torchSpec, TRAINING_BENCHES } from "../bench/training_bench.ts";
import { ROOT, withTempDir } from "./cli_helpers.ts";

async function bench(env: Record<string, string>, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "bench", "main.ts"), ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("bench --help prints usage and exits 0; a bad option exits 2 in one line", async () => {
  const help = await bench({}, "--help");
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^usage: deno task bench \[--vs-torch\]/);
  assert.match(help.stdout, /--only WHAT/);
  const bad = await bench({}, "--bogus");
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim(), "error: Unknown option '--bogus' (see deno task bench --help)");
  const steps = await bench({}, "--steps", "0");
  assert.equal(steps.code, 2);
  assert.match(steps.stderr, /^error: --steps must be a positive integer, got "0"$/m);
});

Deno.test("bench without a WebGPU adapter exits 3 with the message every command gives", async () => {
  await withTempDir(async (dir) => {
    const out = await bench(
      { DENO_WEBGPU_BACKEND: "vulkan", VK_ICD_FILENAMES: join(dir, "no-such-icd.json") },
      "--only",
      "kernels",
    );
    assert.equal(out.code, 3, out.stderr);
    assert.match(out.stderr, /^error: No WebGPU adapter found\./m);
    assert.match(out.stderr, /mesa-vulkan-drivers/);
    assert.doesNotMatch(out.stderr, /at .*\.ts:\d+/, "no stack trace");
  });
});

Deno.test("torchVariants: one column per BLAS installed, a plain run when none is", async () => {
  await withTempDir(async (dir) => {
    assert.deepEqual(torchVariants(dir), [{ label: "PyTorch", env: {} }]);
    const touch = async (path: string) => {
      await Deno.mkdir(join(dir, path, ".."), { recursive: true });
      await Deno.writeTextFile(join(dir, path), "");
    };
    await touch("openblas-pthread/libblas.so.3");
    assert.deepEqual(torchVariants(dir), [{
      label: "OpenBLAS 1 thread",
      env: { LD_LIBRARY_PATH: `${dir}/openblas-pthread`, OPENBLAS_NUM_THREADS: "1" },
    }]);
    await touch("blas/libblas.so.3");
    await touch("lapack/liblapack.so.3");
    const [reference, openblas] = torchVariants(dir);
    assert.deepEqual(reference, {
      label: "reference BLAS",
      env: { LD_LIBRARY_PATH: `${dir}/blas:${dir}/lapack` },
    });
    assert.equal(openblas.label, "OpenBLAS 1 thread");
  });
});

Deno.test("the training list is data: registered experiments run, the rest are named", () => {
  const { run, missing } = availableBenches();
  for (const b of run) assert.equal(experiments.get(b.experiment)?.kind, "language-model");
  for (const name of missing) assert.equal(experiments.get(name), undefined);
  assert.equal(
    run.length + TRAINING_BENCHES.filter((b) => missing.includes(b.experiment)).length,
    TRAINING_BENCHES.length,
  );
  assert.ok(run.some((b) => b.experiment === "bigram"));
  assert.ok(TRAINING_BENCHES.some((b) => b.experiment === "gpt" && b.torch));
});

Deno.test("torchSpec carries the experiment's resolved config to torch_bench.py", () => {
  const attention = TRAINING_BENCHES.find((b) => b.experiment === "attention_head")!;
  const figure = {
    stepsPerSec: 1,
    dispatchesPerStep: 2,
    path: "fused" as const,
    timing: {} as never,
    vocab: 65,
    config: {
      train: { batchSize: 16, blockSize: 8, lr: 3e-4 },
      model: { nEmbd: 48, headSize: 24 },
    },
  };
  assert.deepEqual(torchSpec(attention, figure, 7), {
    name: attention.label,
    kind: "attention_head",
    steps: 7,
    batch: 16,
    block: 8,
    lr: 3e-4,
    vocab: 65,
    n_embd: 48,
    head_size: 24,
  });
  const gpt = TRAINING_BENCHES.find((b) => b.experiment === "gpt")!;
  const spec = torchSpec(gpt, {
    ...figure,
    config: {
      train: { batchSize: 16, blockSize: 32, lr: 1e-3 },
      model: { nEmbd: 64, nHead: 4, nLayer: 4, dropout: 0, ffnMult: 4, residual: true },
    },
  }, 5)!;
  assert.equal(spec.kind, "gpt");
  assert.deepEqual(
    [spec.n_embd, spec.n_head, spec.n_layer, spec.dropout, spec.ffn_mult, spec.residual],
    [64, 4, 4, 0, 4, true],
  );
  assert.equal(spec.layer_norm, true, "a key the config lacks takes the lecture's value");
  const unfused = TRAINING_BENCHES.find((b) => b.label.includes("unfused"))!;
  assert.equal(torchSpec(unfused, figure, 5), undefined);
});

Deno.test("formatRows gives one PyTorch figure and ratio per BLAS; formatDispatches the share", () => {
  const run = (label: string, figure: number): TorchRun => ({
    variant: { label, env: {} },
    torch: "1.13",
    threads: 1,
    blas: { name: label, library: null },
    figures: { gpt: figure },
  });
  const text = formatRows(
    [{ name: "gpt", value: 20, unit: "steps/s", torch: { ref: 10, openblas: 40 } }, {
      name: "matmul",
      value: 3,
      unit: "GFLOP/s",
    }],
    [run("ref", 10), run("openblas", 40)],
  );
  assert.match(text, /^gpt\s+20\.0 steps\/s\s+ref 10\.0 → ×2\.00\s+openblas 40\.0 → ×0\.50$/m);
  assert.match(text, /^matmul\s+3\.0 GFLOP\/s$/m);
  const record: TrainingRecord = {
    experiment: "gpt",
    label: "gpt train",
    steps: 10,
    path: "graph",
    stepsPerSec: 20,
    dispatchesPerStep: 400,
    dispatchOverheadShare: 0.4,
    loadavg1: 1,
    timing: {} as never,
  };
  assert.match(
    formatDispatches([record], 50),
    /gpt \(graph path\): 400 dispatches\/step × 50\.0 µs = 20\.00 ms of a 50\.00 ms step \(40\.0%\)/,
  );
});

const python = await findTorchPython();

Deno.test({
  name: "torch_bench.py trains a tiny GPT and names the BLAS that provided sgemm_",
  ignore: python === undefined,
  fn: async () => {
    const [variant] = torchVariants();
    const runs = await runTorchBench(python!, [{
      name: "tiny gpt",
      kind: "gpt",
      steps: 3,
      batch: 2,
      block: 4,
      vocab: 11,
      lr: 1e-3,
      n_embd: 8,
      n_head: 2,
      n_layer: 1,
    }], [variant]);
    assert.equal(runs.length, 1);
    const [run] = runs;
    assert.ok(run.figures["tiny gpt"] > 0);
    assert.ok(run.threads >= 1);
    assert.ok(run.blas.library, run.blas.name);
    if (variant.env.LD_LIBRARY_PATH) {
      const dir = variant.env.LD_LIBRARY_PATH.split(":")[0];
      assert.ok(run.blas.library!.startsWith(`${dir}/`), `${run.blas.library} under ${dir}`);
    }
  },
});
