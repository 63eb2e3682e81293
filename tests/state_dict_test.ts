/**
 * PyTorch state dicts in and out (harness/state_dict.ts): a fixture with PyTorch's exact names
 * and a `tril` buffer matches the model, F16/BF16 widen to F32, every missing / unexpected /
 * mismatched name is listed, and an experiment's torchName renames both ways.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { decodeSafetensors, encodeSafetensors } from "../harness/safetensors.ts";
import {
  defaultTorchBuffers,
  loadInitWeights,
  matchInitWeights,
  toStateDict,
  trilOnes,
} from "../harness/state_dict.ts";
import { UsageError } from "../harness/errors.ts";
import {
  attentionHeadStateDict,
  type FixtureTensor,
  stateDictBytes,
  trilFixture,
} from "./state_dict_fixture.ts";

const [V, T, C, H] = [5, 4, 6, 3];
// The attention_head model's parameters, as ParamStore lists them.
const MODEL = [
  { name: "token_embedding_table.weight", shape: [V, C] },
  { name: "position_embedding_table.weight", shape: [T, C] },
  { name: "sa_head.key.weight", shape: [H, C] },
  { name: "sa_head.query.weight", shape: [H, C] },
  { name: "sa_head.value.weight", shape: [H, C] },
  { name: "lm_head.weight", shape: [V, H] },
  { name: "lm_head.bias", shape: [V] },
];
const experiment = { name: "attention_head" };

async function withFile<T>(bytes: Uint8Array, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "seedlab-state-dict-" });
  try {
    const path = join(dir, "w.safetensors");
    await Deno.writeFile(path, bytes);
    return await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("state dict: PyTorch's names load, the tril buffer is ignored, values are exact", async () => {
  const fixture = attentionHeadStateDict(V, T, C, H);
  await withFile(stateDictBytes(fixture), async (path) => {
    const init = await loadInitWeights(path);
    assert.equal(init.kind, "state dict");
    const matched = matchInitWeights(experiment, MODEL, init);
    assert.deepEqual(matched.ignored, ["sa_head.tril"]);
    assert.deepEqual([...matched.params.keys()], MODEL.map((p) => p.name));
    for (const p of MODEL) {
      const want = fixture[p.name];
      assert.ok(want.dtype === "F32");
      assert.deepEqual([...matched.params.get(p.name)!], [...want.values]);
    }
  });
});

Deno.test("state dict: F16 and BF16 are widened to F32 on load", async () => {
  // 1, -0.5, 2^-14·(1 + 1/1024) as F16; 1, -2, 0.15625, 3.5 as BF16.
  const bytes = stateDictBytes({
    "token_embedding_table.weight": { dtype: "F16", shape: [1, 3], bits: [0x3c00, 0xb800, 0x0401] },
    "lm_head.weight": { dtype: "BF16", shape: [2, 2], bits: [0x3f80, 0xc000, 0x3e20, 0x4060] },
  });
  await withFile(bytes, async (path) => {
    const model = [
      { name: "token_embedding_table.weight", shape: [1, 3] },
      { name: "lm_head.weight", shape: [2, 2] },
    ];
    const { params } = matchInitWeights(experiment, model, await loadInitWeights(path));
    assert.deepEqual([...params.get("token_embedding_table.weight")!], [
      1,
      -0.5,
      2 ** -14 * (1 + 1 / 1024),
    ]);
    assert.deepEqual([...params.get("lm_head.weight")!], [1, -2, 0.15625, 3.5]);
  });
});

Deno.test("state dict: every missing, unexpected and mismatched name is listed", async () => {
  const fixture = attentionHeadStateDict(V, T, C, H);
  delete fixture["lm_head.bias"];
  fixture["lm_head.weight"] = {
    dtype: "F32",
    shape: [V + 1, H],
    values: new Array((V + 1) * H).fill(0),
  };
  fixture["blocks.0.ln1.weight"] = { dtype: "F32", shape: [C], values: new Array(C).fill(1) };
  // An I64 tensor is refused while reading, before any name is matched.
  const i64: FixtureTensor = { dtype: "I64", shape: [1], values: [3] };
  const withI64 = { ...fixture, steps: i64 };
  await withFile(stateDictBytes(withI64), async (path) => {
    await assert.rejects(loadInitWeights(path), /steps: dtype I64 is not supported/);
  });
  await withFile(stateDictBytes(fixture), async (path) => {
    const init = await loadInitWeights(path);
    assert.throws(() => matchInitWeights(experiment, MODEL, init), (e: Error) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, new RegExp(`state dict ${path} does not fit the model`));
      assert.match(e.message, /missing from the checkpoint: lm_head\.bias$/m);
      assert.match(e.message, /not in the model: blocks\.0\.ln1\.weight$/m);
      assert.match(
        e.message,
        new RegExp(
          `param lm_head\\.weight: checkpoint has \\[${
            V + 1
          }, ${H}\\], model expects \\[${V}, ${H}\\]`,
        ),
      );
      assert.doesNotMatch(e.message, /tril/);
      return true;
    });
  });
});

Deno.test("state dict: a tensor named like a buffer is a parameter when the model has one", async () => {
  const model = [{ name: "mask.tril", shape: [2] }];
  const bytes = stateDictBytes({ "mask.tril": { dtype: "F32", shape: [2], values: [7, 8] } });
  await withFile(bytes, async (path) => {
    const matched = matchInitWeights(experiment, model, await loadInitWeights(path));
    assert.deepEqual(matched.ignored, []);
    assert.deepEqual([...matched.params.get("mask.tril")!], [7, 8]);
  });
});

Deno.test("export: PyTorch names, the tril buffer, and torchName renames both ways", async () => {
  const params = Object.fromEntries(MODEL.map((p, i) => [p.name, {
    shape: p.shape,
    data: new Float32Array(p.shape.reduce((a, b) => a * b, 1)).fill(i + 0.5),
  }]));
  const dict = toStateDict({ name: "attention_head" }, params);
  assert.deepEqual(Object.keys(dict), [...MODEL.map((p) => p.name), "sa_head.tril"]);
  assert.deepEqual(dict["sa_head.tril"].shape, [T, T]);
  assert.deepEqual([...dict["sa_head.tril"].data], trilFixture(T));
  assert.deepEqual([...trilOnes(3)], [1, 0, 0, 1, 1, 0, 1, 1, 1]);
  // A model without attention heads has no buffers; a head without positions cannot size one.
  assert.deepEqual(defaultTorchBuffers({ "token_embedding_table.weight": { shape: [V, V] } }), {});
  assert.throws(
    () =>
      defaultTorchBuffers({
        "h.key.weight": { shape: [1] },
        "h.query.weight": { shape: [1] },
        "h.value.weight": { shape: [1] },
      }),
    /cannot size the causal mask of h\.tril/,
  );

  // An experiment whose parameter names differ from its PyTorch module's declares a mapping.
  const renamed = {
    name: "renamed",
    torchName: (n: string) => n.replace(/^sa_head\./, "blocks.0.sa.heads.0."),
  };
  const torchDict = toStateDict(renamed, params);
  assert.ok("blocks.0.sa.heads.0.key.weight" in torchDict);
  assert.ok("blocks.0.sa.heads.0.tril" in torchDict);
  assert.ok(!("sa_head.key.weight" in torchDict));
  const bytes = encodeSafetensors(torchDict as never, { format: "pt" });
  assert.equal(decodeSafetensors(bytes).metadata.format, "pt");
  await withFile(bytes, async (path) => {
    const matched = matchInitWeights(renamed, MODEL, await loadInitWeights(path));
    assert.deepEqual(matched.ignored, ["blocks.0.sa.heads.0.tril"]);
    for (const p of MODEL) assert.deepEqual(matched.params.get(p.name), params[p.name].data);
  });
  assert.throws(
    () => toStateDict({ name: "clash", torchName: () => "same" }, params),
    /maps both token_embedding_table\.weight and position_embedding_table\.weight to same/,
  );
});
