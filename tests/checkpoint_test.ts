import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
  throws as assertThrows,
} from "node:assert/strict";
import { join } from "node:path";
import {
  checkInitCompatible,
  type Checkpoint,
  CHECKPOINT_FORMAT,
  type CheckpointTensor,
  loadCheckpoint,
  saveCheckpoint,
} from "../harness/checkpoint.ts";
import { loadSafetensors, type SafeTensor, saveSafetensors } from "../harness/safetensors.ts";
import { UsageError } from "../harness/errors.ts";

const SHA = "a".repeat(64);

function tensor(shape: number[], seed: number): CheckpointTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 100 + i)) };
}

function sampleCheckpoint(): Checkpoint {
  const shapes: Record<string, number[]> = {
    "token_embedding.weight": [65, 32],
    "lm_head.weight": [65, 32],
    "lm_head.bias": [65],
  };
  const group = (offset: number) =>
    Object.fromEntries(Object.entries(shapes).map(([n, s], i) => [n, tensor(s, offset + i)]));
  return {
    experiment: "bigram",
    configSha256: SHA,
    seed: 4_000_000_001,
    step: 1500,
    params: group(0),
    adamM: group(10),
    adamV: group(20),
    counters: new Uint32Array([1500, 400, 0, 0, 0, 0, 0, 0xffffffff]),
    curve: [
      { step: 0, train: 4.17, val: 4.18, elapsedMs: 0 },
      { step: 1000, train: null, val: null, elapsedMs: 812.5 },
      { step: 1500, train: 2.5, elapsedMs: 1200 },
    ],
  };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "seedlab-checkpoint-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// Expects a UsageError whose message contains every fragment.
async function assertLoadFails(path: string, ...fragments: string[]): Promise<void> {
  await assertRejects(loadCheckpoint(path), (e: unknown) => {
    assert(e instanceof UsageError, String(e));
    for (const f of fragments) assert(e.message.includes(f), `"${e.message}" lacks "${f}"`);
    return true;
  });
}

// The tensors and metadata saveCheckpoint would write, for tests to damage one at a time.
function rawParts(): { tensors: Record<string, SafeTensor>; metadata: Record<string, string> } {
  return {
    tensors: {
      "param.w": { dtype: "F32", shape: [2, 3], data: new Float32Array(6) },
      "adam.m.w": { dtype: "F32", shape: [2, 3], data: new Float32Array(6) },
      "adam.v.w": { dtype: "F32", shape: [2, 3], data: new Float32Array(6) },
      "counters": { dtype: "U32", shape: [8], data: new Uint32Array(8) },
    },
    metadata: {
      "seedlab.format": CHECKPOINT_FORMAT,
      "seedlab.experiment": "bigram",
      "seedlab.configSha256": SHA,
      "seedlab.seed": "0",
      "seedlab.step": "10",
    },
  };
}

Deno.test("checkpoint round trip restores every field bit for bit", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bigram", "run.safetensors");
    const ckpt = sampleCheckpoint();
    await saveCheckpoint(path, ckpt);
    const got = await loadCheckpoint(path);
    assertEquals(got, ckpt);
    // Saving what was loaded gives the same bytes: the layout is deterministic.
    const again = join(dir, "again.safetensors");
    await saveCheckpoint(again, got);
    assertEquals(await Deno.readFile(again), await Deno.readFile(path));
  });
});

Deno.test("checkpoint file follows the documented safetensors layout", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "c.safetensors");
    const ckpt = sampleCheckpoint();
    delete ckpt.curve;
    await saveCheckpoint(path, ckpt);
    const { tensors, metadata } = await loadSafetensors(path);
    const names = Object.keys(ckpt.params);
    assertEquals(Object.keys(tensors), [
      ...names.map((n) => `param.${n}`),
      ...names.map((n) => `adam.m.${n}`),
      ...names.map((n) => `adam.v.${n}`),
      "counters",
    ]);
    assertEquals(tensors["param.lm_head.weight"].dtype, "F32");
    assertEquals(tensors["param.lm_head.weight"].shape, [65, 32]);
    assertEquals(tensors.counters.dtype, "U32");
    assertEquals(tensors.counters.shape, [8]);
    assertEquals(metadata, {
      "seedlab.format": "seedlab-checkpoint-1",
      "seedlab.experiment": "bigram",
      "seedlab.configSha256": SHA,
      "seedlab.seed": "4000000001",
      "seedlab.step": "1500",
    });
    assert(!("curve" in await loadCheckpoint(path)));
  });
});

Deno.test("checkpoint save refuses an inconsistent checkpoint and writes nothing", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "bad.safetensors");
    const noV = sampleCheckpoint();
    delete noV.adamV["lm_head.bias"];
    await assertRejects(saveCheckpoint(path, noV), /param lm_head.bias has no adam.v/);
    const shortCounters = { ...sampleCheckpoint(), counters: new Uint32Array(3) };
    await assertRejects(saveCheckpoint(path, shortCounters), /counters has 3 slots, expected 8/);
    const badStep = { ...sampleCheckpoint(), step: -1 };
    await assertRejects(saveCheckpoint(path, badStep), /step -1 is not a non-negative integer/);
    assertEquals((await Array.fromAsync(Deno.readDir(dir))).length, 0);
  });
});

Deno.test("checkpoint load rejects missing, foreign and damaged files", async () => {
  await withTempDir(async (dir) => {
    const missing = join(dir, "missing.safetensors");
    await assertLoadFails(missing, missing, "not found");

    const write = async (
      name: string,
      damage: (p: ReturnType<typeof rawParts>) => void,
    ): Promise<string> => {
      const parts = rawParts();
      damage(parts);
      const path = join(dir, name);
      await saveSafetensors(path, parts.tensors, parts.metadata);
      return path;
    };

    // The undamaged parts load, so each failure below is due to its one change.
    const ok = await loadCheckpoint(await write("ok.safetensors", () => {}));
    assertEquals(ok.step, 10);
    assertEquals(Object.keys(ok.params), ["w"]);

    const corrupt = join(dir, "corrupt.safetensors");
    await Deno.writeFile(corrupt, new TextEncoder().encode("not a checkpoint"));
    await assertLoadFails(corrupt, corrupt, "header length");

    await assertLoadFails(
      await write("notag.safetensors", (p) => delete p.metadata["seedlab.format"]),
      "metadata has no seedlab.format",
    );
    await assertLoadFails(
      await write(
        "newer.safetensors",
        (p) => p.metadata["seedlab.format"] = "seedlab-checkpoint-2",
      ),
      '"seedlab-checkpoint-2"',
      `reads "${CHECKPOINT_FORMAT}"`,
    );
    await assertLoadFails(
      await write("noexp.safetensors", (p) => delete p.metadata["seedlab.experiment"]),
      "metadata has no seedlab.experiment",
    );
    for (const seed of ["", "1.5", "-3", "1e3", "abc", "99999999999999999999"]) {
      await assertLoadFails(
        await write("seed.safetensors", (p) => p.metadata["seedlab.seed"] = seed),
        `seedlab.seed is "${seed}", not a non-negative integer`,
      );
    }
    await assertLoadFails(
      await write("nom.safetensors", (p) => delete p.tensors["adam.m.w"]),
      "param w has no adam.m",
    );
    await assertLoadFails(
      await write("vshape.safetensors", (p) => {
        p.tensors["adam.v.w"] = { dtype: "F32", shape: [3, 2], data: new Float32Array(6) };
      }),
      "adam.v w: shape [3, 2] differs from the param's [2, 3]",
    );
    await assertLoadFails(
      await write("orphan.safetensors", (p) => {
        p.tensors["adam.m.ghost"] = { dtype: "F32", shape: [1], data: new Float32Array(1) };
      }),
      "adam.m ghost has no matching param",
    );
    await assertLoadFails(
      await write("nocounters.safetensors", (p) => delete p.tensors.counters),
      "no counters tensor",
    );
    await assertLoadFails(
      await write("counters4.safetensors", (p) => {
        p.tensors.counters = { dtype: "U32", shape: [4], data: new Uint32Array(4) };
      }),
      "counters is U32 [4], expected U32 [8]",
    );
    await assertLoadFails(
      await write("u32param.safetensors", (p) => {
        p.tensors["param.w"] = { dtype: "U32", shape: [2, 3], data: new Uint32Array(6) };
      }),
      "tensor param.w is U32, expected F32",
    );
    await assertLoadFails(
      await write("extra.safetensors", (p) => {
        p.tensors["optimizer.state"] = { dtype: "F32", shape: [], data: new Float32Array(1) };
      }),
      "unexpected tensor optimizer.state",
    );
    await assertLoadFails(
      await write("curve.safetensors", (p) => p.metadata["seedlab.curve"] = '[{"step": -1}]'),
      "seedlab.curve is not a loss curve",
    );
  });
});

Deno.test("checkInitCompatible accepts a checkpoint of the same model", () => {
  const ckpt = sampleCheckpoint();
  const shapes = Object.fromEntries(
    Object.entries(ckpt.params).map(([n, p]) => [n, { shape: [...p.shape] }]),
  );
  checkInitCompatible(shapes, ckpt);
});

Deno.test("checkInitCompatible names every missing, unexpected and mismatched parameter", () => {
  const ckpt = sampleCheckpoint();
  const fails = (expected: Record<string, { shape: number[] }>, ...fragments: string[]) =>
    assertThrows(() => checkInitCompatible(expected, ckpt), (e: unknown) => {
      assert(e instanceof UsageError, String(e));
      for (const f of fragments) assert(e.message.includes(f), `"${e.message}" lacks "${f}"`);
      return true;
    });

  const same = {
    "token_embedding.weight": { shape: [65, 32] },
    "lm_head.weight": { shape: [65, 32] },
    "lm_head.bias": { shape: [65] },
  };
  fails(
    { ...same, "position_embedding.weight": { shape: [8, 32] } },
    "missing from the checkpoint: position_embedding.weight",
  );
  const { "lm_head.bias": _bias, ...withoutBias } = same;
  fails(withoutBias, "not in the model: lm_head.bias");
  fails(
    { ...same, "lm_head.weight": { shape: [89, 32] } },
    "param lm_head.weight: checkpoint has [65, 32], model expects [89, 32]",
  );
  fails(
    { ...same, "lm_head.bias": { shape: [65, 1] } },
    "checkpoint has [65], model expects [65, 1]",
  );
  // Names that exist on every object's prototype are still just missing names.
  fails({ ...same, "constructor": { shape: [1] } }, "missing from the checkpoint: constructor");
  // Every problem at once, each on its own line.
  fails(
    {
      "token_embedding.weight": { shape: [89, 32] },
      "lm_head.weight": { shape: [65, 32] },
      "blocks.0.attn.key.weight": { shape: [32, 32] },
    },
    "'bigram' (step 1500)",
    "\n  missing from the checkpoint: blocks.0.attn.key.weight",
    "\n  not in the model: lm_head.bias",
    "\n  param token_embedding.weight: checkpoint has [65, 32], model expects [89, 32]",
  );
});

Deno.test("checkpoint keeps the run's --set overrides for --resume", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "o.safetensors");
    const overrides = {
      "train.steps": 400,
      "train.lr": 0.01,
      data: "mobydick",
      "model.sizes": [4],
    };
    await saveCheckpoint(path, { ...sampleCheckpoint(), overrides });
    const { metadata } = await loadSafetensors(path);
    assertEquals(JSON.parse(metadata["seedlab.overrides"]), overrides);
    assertEquals((await loadCheckpoint(path)).overrides, overrides);

    for (const [text, problem] of [["{", "not valid JSON"], ["[1]", "not a JSON object"]]) {
      const { tensors, metadata } = rawParts();
      const bad = join(dir, "bad-overrides.safetensors");
      await saveSafetensors(bad, tensors, { ...metadata, "seedlab.overrides": text });
      await assertLoadFails(bad, "seedlab.overrides", problem);
    }
  });
});
