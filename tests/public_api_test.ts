/**
 * The shape of mod.ts: a small flat API for experiment authors (what examples/ import and the
 * README's "Writing your own op or model" names, the registry and the GPT), and the rest under
 * the `kernels` and `nn` namespaces.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import * as api from "../mod.ts";
import { matmul as matmulKernel } from "../kernels/matmul.ts";
import { matmul as matmulOp } from "../nn/matmul_ops.ts";
import { dropout as dropoutKernel } from "../kernels/dropout.ts";
import { dropout as dropoutOp } from "../nn/elementwise_ops.ts";

Deno.test("public API: the flat names are the experiment author's, nothing more", () => {
  deepStrictEqual(Object.keys(api).sort(), [
    "Block",
    "Counter",
    "Dropout",
    "Embedding",
    "FeedForward",
    "Graph",
    "LayerNorm",
    "LimitError",
    "Linear",
    "MAX_GROUPS_PER_DIM",
    "MAX_LOOP_ITERATIONS",
    "MultiHeadAttention",
    "ParamStore",
    "Recorder",
    "ShapeError",
    "Tensor",
    "Var",
    "createGpt",
    "experiments",
    "gpt",
    "grid1d",
    "kernels",
    "languageModelSchema",
    "nn",
    "relu",
    "requireDisjoint",
    "requireF32",
    "requireSameShape",
    "streamKey",
    "uniformU32",
    "wgslSection",
  ]);
});

Deno.test("public API: a kernel and the graph op of the same name live in their namespaces", () => {
  strictEqual(api.kernels.matmul, matmulKernel);
  strictEqual(api.nn.matmul, matmulOp);
  strictEqual(api.kernels.dropout, dropoutKernel);
  strictEqual(api.nn.dropout, dropoutOp);
  strictEqual(api.relu, api.nn.relu);
  ok(!("dropoutKernel" in api) && !("matmulKernel" in api));
});

Deno.test("public API: every name examples/ import from mod.ts is flat", async () => {
  for (const file of ["char_mlp.ts", "silu.ts"]) {
    const source = await Deno.readTextFile(new URL(`../examples/${file}`, import.meta.url));
    const block = source.match(/import \{([^}]*)\} from "\.\.\/mod\.ts";/);
    ok(block, `${file} imports from mod.ts`);
    const names = block[1].split(",").map((n) => n.trim().replace(/^type /, "")).filter(Boolean);
    // Types leave no runtime key; the type-only names must still be exported (deno check).
    const types = new Set(["LanguageModelExperiment"]);
    for (const name of names) ok(types.has(name) || name in api, `${file}: ${name} is not flat`);
  }
});
