/**
 * PyTorch checkpoints both ways from the command line: `deno task export` → `--init-from`
 * round trip, a PyTorch-style fixture (exact names, a `tril` buffer, BF16) that trains on and
 * whose first evaluation equals the float64 reference, and (where PyTorch is installed) the
 * exported weights loaded into the lecture's PyTorch modules giving seedlab's loss to 1e-5.
 */
import { findTorchPython } from "../bench/torch.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import { experiments } from "../experiments/mod.ts";
import type { LanguageModelExperiment } from "../experiments/types.ts";
import { createCounters } from "../kernels/counters.ts";
import { getGpu } from "../kernels/device.ts";
import { runOnce } from "../kernels/program.ts";
import { createTensor, readF32 } from "../kernels/tensor.ts";
import { Graph } from "../nn/graph.ts";
import { crossEntropyLoss } from "../nn/ops.ts";
import { ParamStore } from "../nn/params.ts";
import { loadCheckpoint } from "../harness/checkpoint.ts";
import { formatSets, resolveConfig } from "../harness/config.ts";
import { readResult, runId } from "../harness/results_io.ts";
import { loadSafetensors } from "../harness/safetensors.ts";
import { assertExit, ROOT, seedlab, TINY, withTempDir, writtenPath } from "./cli_helpers.ts";
import { attentionHeadStateDict, lcgValues, stateDictBytes } from "./state_dict_fixture.ts";

const ckptOf = (resultPath: string) => resultPath.replace(/\.json$/, ".safetensors");

Deno.test("export → --init-from round trip: PyTorch names only, same weights, same run", async () => {
  await withTempDir(async (dir) => {
    const source = await seedlab("exp", "bigram", ...TINY, "--seed", "3", "--out", dir);
    assertExit(source, 0);
    const ckptPath = ckptOf(writtenPath(source.stdout));
    const out = join(dir, "bigram.torch.safetensors");
    const exported = await seedlab("export", ckptPath, "--out", out);
    assertExit(exported, 0);
    assert.match(exported.stdout, /wrote .*: 1 parameter\(s\) of 'bigram' at step 50/);

    const file = await loadSafetensors(out);
    assert.deepEqual(Object.keys(file.tensors), ["token_embedding_table.weight"]);
    assert.deepEqual(file.metadata, { format: "pt" });
    const ckpt = await loadCheckpoint(ckptPath);
    const table = file.tensors["token_embedding_table.weight"];
    assert.equal(table.dtype, "F32");
    assert.deepEqual(table.data, ckpt.params["token_embedding_table.weight"].data);

    // The default name sits beside the checkpoint.
    const byDefault = await seedlab("export", ckptPath);
    assertExit(byDefault, 0);
    assert.deepEqual(
      (await loadSafetensors(ckptPath.replace(/\.safetensors$/, ".torch.safetensors"))).tensors,
      file.tensors,
    );

    const run = (init: string, sub: string) =>
      seedlab("exp", "bigram", ...TINY, "--init-from", init, "--out", join(dir, sub));
    const [fromExport, fromCkpt] = [await run(out, "a"), await run(ckptPath, "b")];
    assertExit(fromExport, 0);
    assertExit(fromCkpt, 0);
    assert.match(fromExport.stdout, /init: 1 parameter\(s\) from state dict /);
    const [a, b] = [
      await readResult(writtenPath(fromExport.stdout)),
      await readResult(writtenPath(fromCkpt.stdout)),
    ];
    assert.deepEqual(a.curve.map((p) => [p.train, p.val]), b.curve.map((p) => [p.train, p.val]));
    assert.equal(a.paramsSha256, b.paramsSha256);
    // The state dict is recorded like a seedlab checkpoint: its path and parameters' sha256,
    // part of the run id (the same weights give the same run id, unlike a run from scratch).
    assert.equal(a.initFrom?.path, out);
    assert.equal(a.initFrom?.paramsSha256, b.initFrom?.paramsSha256);
    assert.equal(a.runId, b.runId);
    assert.equal(a.runId, runId(a.configSha256, a.seed, a.initFrom!.paramsSha256));
    assert.notEqual(a.runId, runId(a.configSha256, a.seed));
    // ...and --verify re-runs it from the state dict.
    const verified = await seedlab("exp", "bigram", "--verify", writtenPath(fromExport.stdout));
    assertExit(verified, 0);
    assert.match(verified.stdout, /verified: /);

    // A plain state dict is no checkpoint to export, and export never overwrites its input.
    assertExit(await seedlab("export", out), 2);
    const self = await seedlab("export", ckptPath, "--out", ckptPath);
    assertExit(self, 2);
    assert.match(self.stderr, /is the checkpoint itself/);
    // An --out that cannot be written is refused before anything is written (exit 2, one line,
    // no stack trace), like `report --out`.
    const toDir = await seedlab("export", ckptPath, "--out", dir);
    assertExit(toDir, 2);
    assert.match(toDir.stderr, /--out .* is a directory; give a file name/);
    assert.doesNotMatch(toDir.stderr, /Uncaught|at /);
  });
});

/** Mean cross-entropy in float64 of a logit row against one target. */
function crossEntropy64(row: readonly number[], target: number): number {
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
  return lse - row[target];
}

Deno.test("a PyTorch-style state dict (BF16, tril buffer) trains on; its first evaluation is the reference's", async () => {
  await withTempDir(async (dir) => {
    // On "abab…" every window of 8 inputs holds four a→b and four b→a transitions, so any
    // batch's mean loss is the mean of the two rows' cross-entropies: a reference that does
    // not depend on which batches the evaluation draws.
    const corpus = join(dir, "ab.txt");
    await Deno.writeTextFile(corpus, "ab".repeat(200));
    // BF16 bit patterns of 0.25, -1.25, 0.75, 0.5 (exact in BF16).
    const bits = [0x3e80, 0xbfa0, 0x3f40, 0x3f00];
    const table = [[0.25, -1.25], [0.75, 0.5]];
    const dict = join(dir, "bigram.safetensors");
    await Deno.writeFile(
      dict,
      stateDictBytes({ "token_embedding_table.weight": { dtype: "BF16", shape: [2, 2], bits } }),
    );
    const r = await seedlab(
      "exp",
      "bigram",
      ...TINY,
      "--data",
      corpus,
      "--init-from",
      dict,
      "--out",
      join(dir, "out"),
    );
    assertExit(r, 0);
    const result = await readResult(writtenPath(r.stdout));
    assert.equal(result.status, "ok");
    assert.equal(result.steps, 50);
    const want = (crossEntropy64(table[0], 1) + crossEntropy64(table[1], 0)) / 2;
    for (const got of [result.curve[0].train, result.curve[0].val]) {
      assert.ok(Math.abs(got! - want) < 1e-5, `first evaluation ${got}, reference ${want}`);
    }
    assert.ok(result.final.train! < want, "training went on from the given weights");

    // The lecture's single-head model with PyTorch's names and its tril buffer.
    const headDict = join(dir, "head.safetensors");
    await Deno.writeFile(headDict, stateDictBytes(attentionHeadStateDict(2, 8, 32, 32)));
    const head = await seedlab(
      "exp",
      "attention_head",
      ...TINY,
      "--data",
      corpus,
      "--init-from",
      headDict,
      "--out",
      join(dir, "out"),
    );
    assertExit(head, 0);
    assert.match(
      head.stdout,
      /init: 7 parameter\(s\) from state dict .*ignored buffers seedlab computes: sa_head\.tril/,
    );
  });
});

const PYTHON = await findTorchPython();
if (!PYTHON) {
  console.error(
    "cli_export_test: `python3 -c 'import torch'` fails (tried python3, /usr/bin/python3): " +
      "SKIPPING the PyTorch loss comparison; install it with: apt-get install python3-torch",
  );
}

// Reads each exported file (with the safetensors package when installed, else a loader written
// here with struct and json), loads it into the lecture's module with strict load_state_dict and
// prints PyTorch's loss on the given batch.
const TORCH_SCRIPT = `
import json, struct, sys
import torch
sys.path.insert(0, sys.argv[1])
from torch_models import MODELS

def load_file(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32", entry
        begin, end = entry["data_offsets"]
        raw = bytearray(data[8 + n + begin:8 + n + end])
        out[name] = torch.frombuffer(raw, dtype=torch.float32).reshape(entry["shape"]).clone()
    return out

try:
    from safetensors.torch import load_file
except ImportError:
    pass

for case in json.loads(sys.argv[2]):
    model = MODELS[case["experiment"]](**case["kwargs"])
    model.load_state_dict(load_file(case["file"]))
    idx = torch.tensor(case["idx"]).reshape(case["B"], case["T"])
    targets = torch.tensor(case["targets"]).reshape(case["B"], case["T"])
    with torch.no_grad():
        _, loss = model(idx, targets)
    print(repr(loss.item()))
`;

/** seedlab's mean cross-entropy of `params` on one batch, through the model's graph forward. */
async function seedlabLoss(
  experiment: LanguageModelExperiment,
  config: unknown,
  vocab: number,
  params: Map<string, Float32Array>,
  batch: { B: number; T: number; idx: number[]; targets: number[] },
): Promise<number> {
  const gpu = await getGpu();
  const store = new ParamStore(gpu);
  const model = experiment.createModel(store, config as never, vocab);
  store.finalize();
  store.write(params);
  const losses = createTensor(gpu, [1], "f32", "loss");
  // The loss kernel writes slot (counter − 1): counter 1 is slot 0.
  const counters = createCounters(gpu, [1]);
  await runOnce(gpu, (rec) => {
    const g = new Graph(rec, false);
    const ids = (name: string, v: number[]) =>
      g.constant(createTensor(gpu, [batch.B, batch.T], "u32", name, v));
    const logits = model.forward(g, ids("idx", batch.idx));
    crossEntropyLoss(g, logits, ids("targets", batch.targets), {
      losses,
      counters,
      counterIndex: 0,
    });
  });
  return (await readF32(losses))[0];
}

Deno.test({
  name: "PyTorch loads every exported experiment and its loss on a fixed batch equals seedlab's",
  ignore: PYTHON === undefined,
  fn: async () => {
    await withTempDir(async (dir) => {
      const cases = [];
      const seedlabLosses: number[] = [];
      // Every registered language model (examples/torch_models.py has a module for each).
      const models = [...experiments.values()].filter((e) => e.kind === "language-model");
      assert.ok(models.length >= 2);
      for (const experiment of models as LanguageModelExperiment[]) {
        const r = await seedlab("exp", experiment.name, ...TINY, "--out", dir);
        assertExit(r, 0);
        const result = await readResult(writtenPath(r.stdout));
        const ckptPath = ckptOf(writtenPath(r.stdout));
        const file = join(dir, `${experiment.name}.torch.safetensors`);
        assertExit(await seedlab("export", ckptPath, "--out", file), 0);
        const V = result.data!.vocabSize;
        const { config } = await resolveConfig(experiment.schema as never, {
          sets: formatSets(result.overrides),
        });
        const lm = config as { train: { blockSize: number }; model?: Record<string, unknown> };
        const [B, T] = [4, lm.train.blockSize];
        const ids = (seed: number) =>
          lcgValues(B * T, seed).map((x) => Math.floor((x + 0.5) * V) % V);
        const batch = { B, T, idx: ids(11), targets: ids(12) };
        const ckpt = await loadCheckpoint(ckptPath);
        const params = new Map(Object.entries(ckpt.params).map(([k, v]) => [k, v.data]));
        seedlabLosses.push(await seedlabLoss(experiment, config, V, params, batch));
        // The module's arguments: model.* in snake case (nEmbd → n_embd) and the block size.
        const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
        const kwargs = Object.fromEntries(
          Object.entries(lm.model ?? {}).map(([k, v]) => [snake(k), v]),
        );
        cases.push({
          experiment: experiment.name,
          kwargs: { ...kwargs, vocab_size: V, block_size: T },
          file,
          ...batch,
        });
      }
      const out = await new Deno.Command(PYTHON!, {
        args: ["-c", TORCH_SCRIPT, join(ROOT, "examples"), JSON.stringify(cases)],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const torchLosses = text.trim().split("\n").map(Number);
      assert.equal(torchLosses.length, cases.length);
      cases.forEach((c, i) => {
        assert.ok(
          Math.abs(torchLosses[i] - seedlabLosses[i]) <= 1e-5,
          `${c.experiment}: PyTorch ${torchLosses[i]} vs seedlab ${seedlabLosses[i]}`,
        );
      });
    });
  },
});
