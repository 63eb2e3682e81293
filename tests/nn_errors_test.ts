/**
 * The nn ops refuse bad input while recording, before anything is dispatched: shapes that do
 * not fit raise a ShapeError naming the op and the shapes, and a tensor over the device's
 * maxStorageBufferBindingSize raises a LimitError naming the op (or tensor), its shape and the
 * limit. Never a wrong result.
 */
import { equal, ok, throws } from "node:assert/strict";
import { createCounters } from "../kernels/counters.ts";
import { getGpu, type Gpu } from "../kernels/device.ts";
import { Recorder } from "../kernels/program.ts";
import { createTensor, LimitError, ShapeError } from "../kernels/tensor.ts";
import { add, relu } from "../nn/elementwise_ops.ts";
import { layerNorm, softmax } from "../nn/normalization_ops.ts";
import { linear } from "../nn/layer_ops.ts";
import { matmul } from "../nn/matmul_ops.ts";
import { Graph, Var } from "../nn/graph.ts";
import { Head } from "../nn/modules.ts";
import { crossEntropyLoss, embedding } from "../nn/ops.ts";
import { ParamStore } from "../nn/params.ts";

/** A graph (training, so backward paths are validated too) and leaf values by shape. */
function setup(gpu: Gpu) {
  const rec = new Recorder(gpu);
  const g = new Graph(rec, true);
  // No host data: these tensors are only described, never read.
  const f32 = (name: string, shape: number[]): Var =>
    new Var(createTensor(gpu, shape, "f32", name), true);
  const u32 = (name: string, shape: number[]): Var =>
    g.constant(createTensor(gpu, shape, "u32", name));
  return { rec, g, f32, u32 };
}

const shapeText = (shape: number[]) => `[${shape.join(", ")}]`;

/**
 * Asserts `fn` throws an error of `kind` whose message names the op and each of the shapes,
 * and that nothing was dispatched by the failing call.
 */
function rejects(
  rec: Recorder,
  kind: typeof ShapeError | typeof LimitError,
  op: string,
  shapes: number[][],
  fn: () => unknown,
  extra: RegExp[] = [],
): void {
  const before = rec.dispatches.length;
  throws(fn, (e: unknown) => {
    ok(e instanceof kind, `${op}: expected ${kind.name}, got ${e}`);
    const message = (e as Error).message;
    ok(message.includes(op), `message does not name ${op}: ${message}`);
    for (const s of shapes) {
      ok(message.includes(shapeText(s)), `message does not name ${shapeText(s)}: ${message}`);
    }
    for (const r of extra) ok(r.test(message), `message does not match ${r}: ${message}`);
    return true;
  });
  equal(rec.dispatches.length, before, `${op}: dispatched before failing`);
}

Deno.test("shape mismatches name the op and the shapes, and dispatch nothing", async () => {
  const gpu = await getGpu();
  const { rec, g, f32, u32 } = setup(gpu);

  // matmul: inner dimensions with each transpose flag, batch sizes, ranks.
  rejects(
    rec,
    ShapeError,
    "matmul",
    [[2, 3], [4, 5]],
    () => matmul(g, f32("a", [2, 3]), f32("b", [4, 5])),
    [
      /inner dimensions 3 and 4/,
    ],
  );
  rejects(
    rec,
    ShapeError,
    "matmul",
    [[2, 3], [5, 4]],
    () => matmul(g, f32("a", [2, 3]), f32("b", [5, 4]), { transB: true }),
    [/transB=true/],
  );
  rejects(
    rec,
    ShapeError,
    "matmul",
    [[3, 2], [4, 5]],
    () => matmul(g, f32("a", [3, 2]), f32("b", [4, 5]), { transA: true }),
    [/transA=true/],
  );
  rejects(
    rec,
    ShapeError,
    "matmul",
    [[2, 3, 4], [3, 4, 5]],
    () => matmul(g, f32("a", [2, 3, 4]), f32("b", [3, 4, 5])),
    [/batch sizes 2 and 3/],
  );
  rejects(
    rec,
    ShapeError,
    "matmul",
    [[4], [4, 2]],
    () => matmul(g, f32("a", [4]), f32("b", [4, 2])),
    [/2-D or 3-D/],
  );

  // add: b must equal trailing dimensions of a (or be a single value).
  rejects(
    rec,
    ShapeError,
    "add",
    [[2, 3, 4], [3, 5]],
    () => add(g, f32("a", [2, 3, 4]), f32("b", [3, 5])),
  );
  rejects(
    rec,
    ShapeError,
    "add",
    [[3, 4], [4, 3]],
    () => add(g, f32("a", [3, 4]), f32("b", [4, 3])),
  );
  rejects(rec, ShapeError, "add", [[4], [2, 4]], () => add(g, f32("a", [4]), f32("b", [2, 4])));

  // linear: in-features, weight rank, bias length.
  rejects(
    rec,
    ShapeError,
    "linear",
    [[2, 5], [4, 6]],
    () => linear(g, f32("x", [2, 5]), f32("w", [4, 6])),
  );
  rejects(
    rec,
    ShapeError,
    "linear",
    [[2, 3, 5], [4, 6]],
    () => linear(g, f32("x", [2, 3, 5]), f32("w", [4, 6]), f32("b", [4])),
  );
  rejects(
    rec,
    ShapeError,
    "linear",
    [[3], [4, 6]],
    () => linear(g, f32("x", [2, 6]), f32("w", [4, 6]), f32("b", [3])),
  );
  rejects(rec, ShapeError, "linear", [[6]], () => linear(g, f32("x", [2, 6]), f32("w", [6])));

  // crossEntropyLoss: one target per row of logits, in the same leading shape.
  const sink = () => ({
    losses: createTensor(gpu, [1], "f32", "losses"),
    counters: createCounters(gpu, [1]),
    counterIndex: 0,
  });
  for (const targets of [[2, 4], [3, 2], [6], [2, 3, 1]]) {
    rejects(
      rec,
      ShapeError,
      "crossEntropyLoss",
      [[2, 3, 5], targets],
      () => crossEntropyLoss(g, f32("logits", [2, 3, 5]), u32("targets", targets), sink()),
    );
  }

  // embedding: ids must be u32, the table [V, C].
  rejects(
    rec,
    ShapeError,
    "embedding",
    [[2, 3]],
    () => embedding(g, f32("table", [5, 4]), f32("ids", [2, 3])),
    [/u32/],
  );
  rejects(
    rec,
    ShapeError,
    "embedding",
    [[20]],
    () => embedding(g, f32("table", [20]), u32("ids", [2, 3])),
    [/\[V, C\]/],
  );

  // layerNorm: gamma and beta of the last axis.
  rejects(
    rec,
    ShapeError,
    "layerNorm",
    [[2, 4], [3]],
    () => layerNorm(g, f32("x", [2, 4]), f32("gamma", [3]), f32("beta", [4])),
  );

  // softmax: a causal mask needs rows.
  rejects(rec, ShapeError, "softmax", [[6]], () => softmax(g, f32("x", [6]), { causal: true }));

  // The graph still works after the failures: a valid op records, the plan validates.
  relu(g, f32("ok", [2, 2]));
  ok(rec.dispatches.length > 0);
  await rec.finish();
});

Deno.test("tensors over maxStorageBufferBindingSize fail with op, shape and limit before dispatch", async () => {
  const gpu = await getGpu();
  const { rec, g, f32, u32 } = setup(gpu);
  const limit = gpu.limits.maxStorageBufferBindingSize;
  const limitText = new RegExp(`maxStorageBufferBindingSize of ${limit}\\b`);
  const floats = limit / 4;

  // Small operands whose output is one float too many: [n, 1]·[1, n] with n² > limit/4.
  const n = Math.floor(Math.sqrt(floats)) + 1;
  rejects(
    rec,
    LimitError,
    "matmul",
    [[n, n]],
    () => matmul(g, f32("a", [n, 1]), f32("b", [1, n])),
    [limitText],
  );
  rejects(
    rec,
    LimitError,
    "linear",
    [[n, n]],
    () => linear(g, f32("x", [n, 1]), f32("w", [n, 1]), f32("b", [n])),
    [limitText],
  );
  // 4096 ids of a 1-row table of C floats: the gathered [2, 2048, C] rows overflow.
  const C = Math.floor(floats / 4096) + 1;
  rejects(
    rec,
    LimitError,
    "embedding",
    [[2, 2048, C]],
    () => embedding(g, f32("table", [1, C]), u32("ids", [2, 2048])),
    [limitText],
  );

  // A tensor created directly names itself, its shape and the limit.
  throws(
    () => createTensor(gpu, [floats + 1], "f32", "huge"),
    (e: unknown) =>
      e instanceof LimitError && e.message.includes("huge") &&
      e.message.includes(`[${floats + 1}]`) && limitText.test(e.message),
  );
  // At exactly the limit it is allowed (no off-by-one in the check).
  ok(createTensor(gpu, [floats], "f32", "at-limit").size === floats);

  // The lecture's attention at a long context: the [B, T, T] scores exceed the limit while
  // every input is small; the error names the op's output and its shape.
  const store = new ParamStore(gpu);
  const head = new Head(store, "head", 1, 1);
  store.finalize();
  const T = Math.floor(Math.sqrt(floats / 2)) + 1;
  throws(
    () => head.call(g, f32("x", [2, T, 1])),
    (e: unknown) =>
      e instanceof LimitError && /matmul/.test(e.message) &&
      e.message.includes(`[2, ${T}, ${T}]`) && limitText.test(e.message),
  );
  await rec.finish();

  // A model whose parameters do not fit in one arena names the store, its largest
  // parameters and the limit when it is finalised.
  const big = new ParamStore(gpu);
  big.register("small", [10], { kind: "constant", value: 0 });
  big.register("wte", [floats / 8, 9], { kind: "constant", value: 0 });
  throws(
    () => big.finalize(),
    (e: unknown) =>
      e instanceof LimitError && /ParamStore/.test(e.message) &&
      e.message.includes(`wte [${floats / 8}, 9]`) && limitText.test(e.message),
  );
});
