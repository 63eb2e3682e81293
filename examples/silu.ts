/**
 * A new op end to end, from seedlab's public API alone: SiLU (x·σ(x), PyTorch's nn.SiLU) as
 * WGSL kernels (forward and backward in one source, split by `//@kernel` sections), a float64
 * TypeScript reference, a graph op with its backward, and a model that uses it: the char MLP of
 * examples/char_mlp.ts with SiLU in place of ReLU. tests/example_op_test.ts checks the kernels
 * against the references and the op against finite differences, and trains the model.
 *
 *   deno task exp examples/silu.ts --set model.hidden=128
 */
import { z } from "zod";
import {
  Embedding,
  type Graph,
  grid1d,
  type LanguageModelExperiment,
  languageModelSchema,
  Linear,
  type Recorder,
  requireDisjoint,
  requireF32,
  requireSameShape,
  type Tensor,
  type Var,
  wgslSection,
} from "../mod.ts";

// One source, two kernels. Everything before the first `//@kernel` line is a prelude shared by
// both; each section has its own bindings and its own entry point `main`.
const SOURCE = `
override LEN: u32;
override ACCUMULATE: bool = false;

fn sigmoid(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}

// Flat index over a grid that grid1d may fold into y (more than 65,535 workgroups).
fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * 256u;
}

//@kernel forward
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= LEN) {
    return;
  }
  y[i] = x[i] * sigmoid(x[i]);
}

//@kernel backward
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= LEN) {
    return;
  }
  let s = sigmoid(x[i]);
  var g = dy[i] * s * (1.0 + x[i] * (1.0 - s));
  // The graph decides at record time whether this is the first contribution to dx.
  if (ACCUMULATE) {
    g = dx[i] + g;
  }
  dx[i] = g;
}
`;

/** Records y = x·σ(x). */
export function siluForward(rec: Recorder, x: Tensor, y: Tensor): void {
  requireF32("silu", x, y);
  requireSameShape("silu", x, y);
  requireDisjoint("silu", [y], [x]);
  if (x.size === 0) return;
  rec.dispatch(
    { name: "silu", code: wgslSection(SOURCE, "forward"), constants: { LEN: x.size } },
    [x, y],
    grid1d(x.size, 256),
  );
}

/** Records dx = dy·σ(x)·(1 + x·(1 − σ(x))), or dx += … when `accumulate`. */
export function siluBackward(
  rec: Recorder,
  x: Tensor,
  dy: Tensor,
  dx: Tensor,
  accumulate: boolean,
): void {
  requireF32("siluBackward", x, dy, dx);
  requireSameShape("siluBackward", x, dy);
  requireSameShape("siluBackward", x, dx);
  requireDisjoint("siluBackward", [dx], [x, dy]);
  if (x.size === 0) return;
  rec.dispatch(
    {
      name: "silu_backward",
      code: wgslSection(SOURCE, "backward"),
      constants: { LEN: x.size, ACCUMULATE: accumulate ? 1 : 0 },
    },
    [x, dy, dx],
    grid1d(x.size, 256),
  );
}

/** float64 reference of the forward. */
export function siluReference(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => v / (1 + Math.exp(-v)));
}

/** float64 reference of the backward (dx for upstream gradient dy). */
export function siluBackwardReference(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v, i) => {
    const s = 1 / (1 + Math.exp(-v));
    return dy[i] * s * (1 + v * (1 - s));
  });
}

/** The graph op: x·σ(x), differentiable. */
export function silu(g: Graph, x: Var): Var {
  const y = g.alloc(x.shape, "silu");
  siluForward(g.rec, x.data, y);
  // The backward closure runs when g.backward() is recorded, after every later op's: by then
  // gradOf(out) holds the sum of everything downstream.
  return g.output(y, [x], (out) => {
    const dY = g.gradOf(out);
    if (!dY) return;
    const target = g.gradTarget(x);
    siluBackward(g.rec, x.data, dY, target.tensor, target.accumulate);
  });
}

const schema = z.object({
  ...languageModelSchema({
    steps: 3000,
    batchSize: 32,
    blockSize: 8,
    lr: 1e-2,
    evalInterval: 500,
    evalIters: 100,
  }),
  model: z.object({
    nEmbd: z.number().int().positive().default(32),
    hidden: z.number().int().positive().default(64),
  }).prefault({}),
});

/** Character → embedding → Linear → SiLU → Linear → logits. */
export const siluMlp: LanguageModelExperiment<z.infer<typeof schema>> = {
  kind: "language-model",
  name: "silu_mlp",
  summary: "char MLP with a user-defined SiLU op: embedding → linear → silu → linear",
  schema,
  createModel(store, config, vocabSize) {
    const { nEmbd, hidden } = config.model;
    const embed = new Embedding(store, "token_embedding", vocabSize, nEmbd);
    const fc = new Linear(store, "fc", nEmbd, hidden);
    const out = new Linear(store, "lm_head", hidden, vocabSize);
    return { forward: (g, idx) => out.call(g, silu(g, fc.call(g, embed.call(g, idx)))) };
  },
};
