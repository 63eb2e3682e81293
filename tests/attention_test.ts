/**
 * kernels/attention.ts: causal multi-head attention forward and backward against the float64
 * references (odd shapes, scalar and vec4 lanes, a fused qkv tensor, accumulation), the
 * backward against finite differences, dropout of the weights (mask drawn from Philox, used
 * identically by the backward, new each step), determinism and limit errors.
 */
import { deepEqual, equal, notDeepEqual, ok, throws } from "node:assert/strict";
import {
  attentionBackward,
  attentionBackwardReference,
  type AttentionDropout,
  attentionDropoutMask,
  attentionForward,
  attentionReference,
  type AttentionShape,
  keepWords,
} from "../kernels/attention.ts";
import { createCounters } from "../kernels/counters.ts";
import { getGpu, type Gpu } from "../kernels/device.ts";
import { streamKey } from "../kernels/philox.ts";
import { type Plan, Recorder } from "../kernels/program.ts";
import {
  createTensor,
  LimitError,
  readF32,
  readU32,
  ShapeError,
  type Tensor,
  writeTensor,
} from "../kernels/tensor.ts";
import { finiteDifferences, randomF32, relError } from "./support.ts";

const TOL = 2e-5;

interface Case extends AttentionShape {
  /** q, k, v (and dq, dk, dv) as the three column blocks of one [B, T, 3C] tensor each. */
  fused?: boolean;
  /** Gradients start from random values and are added to. */
  accumulate?: boolean;
  dropout?: { p: number; counter: number; callIndex: number };
  /** Rows per invocation (default: the dispatcher's choice by head size). */
  rows?: number;
}

/** One recorded forward + backward on the device, with its host inputs. */
interface Run {
  c: Case;
  plan: Plan;
  host: {
    q: Float32Array;
    k: Float32Array;
    v: Float32Array;
    dOut: Float32Array;
    init: Float32Array;
  };
  t: Record<"out" | "lse", Tensor>;
  /** The gradients: three tensors, or one [B, T, 3C] in the fused layout. */
  grads: Tensor[];
  keep: Tensor;
  counters: Tensor;
}

let seed = 100;

async function record(gpu: Gpu, c: Case): Promise<Run> {
  const { B, T, nHead, headSize } = c;
  const C = nHead * headSize, n = B * T * C;
  const host = {
    q: randomF32(n, seed++, 1.5),
    k: randomF32(n, seed++, 1.5),
    v: randomF32(n, seed++),
    dOut: randomF32(n, seed++),
    init: randomF32(n, seed++),
  };
  const shape = [B, T, C];
  const rec = new Recorder(gpu);
  const init = c.accumulate ? host.init : undefined;
  // Three [B, T, C] tensors, or one [B, T, 3C] seen as three column blocks.
  const operands = (name: string, parts: (ArrayLike<number> | undefined)[]) => {
    if (!c.fused) {
      const ts = parts.map((d, i) => createTensor(gpu, shape, "f32", `${name}${i}`, d));
      return { views: ts, tensors: ts };
    }
    const joined = new Float32Array(3 * n);
    for (let r = 0; r < B * T; r++) {
      for (const [i, src] of parts.entries()) {
        if (src) joined.set(Array.from({ length: C }, (_, j) => src[r * C + j]), (3 * r + i) * C);
      }
    }
    const tensor = createTensor(gpu, [B, T, 3 * C], "f32", name, joined);
    return { views: [0, C, 2 * C].map((column) => ({ tensor, column })), tensors: [tensor] };
  };
  const [q, k, v] = operands("qkv", [host.q, host.k, host.v]).views;
  const grads = operands("dqkv", [init, init, init]);
  const [dq, dk, dv] = grads.views;
  const t = {
    out: createTensor(gpu, shape, "f32", "out"),
    lse: createTensor(gpu, [B, nHead, T], "f32", "lse"),
  };
  const dOut = createTensor(gpu, shape, "f32", "dOut", host.dOut);
  const keep = createTensor(gpu, [B, nHead, T, keepWords(T)], "u32", "keep");
  const counters = createCounters(gpu, [c.dropout?.counter ?? 0]);
  const dropout: AttentionDropout | undefined = c.dropout && {
    p: c.dropout.p,
    key: streamKey(7, "dropout"),
    counters,
    counterIndex: 0,
    callIndex: c.dropout.callIndex,
  };
  const args = {
    q,
    k,
    v,
    ...t,
    dq,
    dk,
    dv,
    nHead,
    scale: c.scale,
    dropout,
    keep,
    dOut,
    rows: c.rows,
  };
  attentionForward(rec, args);
  const all = c.accumulate ?? false;
  attentionBackward(rec, { ...args, accumulate: { q: all, k: all, v: all } });
  return { c, plan: await rec.finish(), host, t, grads: grads.tensors, keep, counters };
}

async function read(run: Run) {
  const r: Record<string, Float32Array> = {};
  for (const [name, t] of Object.entries(run.t)) r[name] = await readF32(t);
  const grads = await Promise.all(run.grads.map(readF32));
  const C = run.c.nHead * run.c.headSize;
  ["dq", "dk", "dv"].forEach((name, i) => {
    // Column block i of every row of the fused gradient.
    r[name] = grads.length === 3
      ? grads[i]
      : grads[0].filter((_, e) => Math.floor((e % (3 * C)) / C) === i);
  });
  return r;
}

/** The mask the reference applies for a run at a counter value (undefined without dropout). */
function maskOf(run: Run, counter: number) {
  const d = run.c.dropout;
  if (!d || d.p === 0) return undefined;
  return attentionDropoutMask(run.c, d.p, streamKey(7, "dropout"), counter, d.callIndex);
}

function checkAgainstReference(run: Run, got: Record<string, Float32Array>, counter: number) {
  const { q, k, v, dOut, init } = run.host;
  const name = JSON.stringify(run.c);
  const mask = maskOf(run, counter);
  const want = attentionReference(q, k, v, run.c, mask);
  const grads = attentionBackwardReference(q, k, v, dOut, run.c, mask);
  ok(relError(got.out, want.out) < TOL, `${name}: out error ${relError(got.out, want.out)}`);
  ok(relError(got.lse, want.lse) < TOL, `${name}: lse error ${relError(got.lse, want.lse)}`);
  for (const g of ["dq", "dk", "dv"] as const) {
    const w = run.c.accumulate ? grads[g].map((x, i) => x + init[i]) : grads[g];
    const err = relError(got[g], w);
    ok(err < TOL, `${name}: ${g} error ${err}`);
    if (run.c.T === 1 && g !== "dv" && !run.c.accumulate) {
      // One key: the softmax is constant, so dq and dk are exactly zero.
      ok(got[g].every((x) => x === 0), `${name}: ${g} must be exactly zero at T = 1`);
    } else {
      ok(w.some((x) => Math.abs(x) > 1e-3), `${name}: ${g} reference has no signal`);
    }
  }
}

const shapes: Case[] = [
  { B: 2, T: 8, nHead: 4, headSize: 8 },
  { B: 1, T: 1, nHead: 1, headSize: 4 },
  { B: 2, T: 7, nHead: 6, headSize: 3 },
  { B: 1, T: 13, nHead: 1, headSize: 5, scale: 0.7 },
  { B: 3, T: 32, nHead: 4, headSize: 16 },
  { B: 2, T: 9, nHead: 2, headSize: 4, fused: true, accumulate: true },
  { B: 1, T: 6, nHead: 3, headSize: 2, fused: true },
  // Tiles of 3 rows over T = 7 (the last one partial), and one row per invocation.
  { B: 2, T: 7, nHead: 5, headSize: 4, rows: 3 },
  { B: 1, T: 5, nHead: 2, headSize: 8, rows: 1 },
];

Deno.test("attention forward and backward match the float64 references", async () => {
  const gpu = await getGpu();
  for (const c of shapes) {
    const run = await record(gpu, c);
    await run.plan.run();
    checkAgainstReference(run, await read(run), 0);
  }
});

Deno.test("attention backward matches finite differences of the reference", async () => {
  const gpu = await getGpu();
  for (const c of [{ B: 2, T: 5, nHead: 2, headSize: 3 }, { B: 1, T: 4, nHead: 1, headSize: 4 }]) {
    const run = await record(gpu, c);
    await run.plan.run();
    const got = await read(run);
    const x = {
      q: Float64Array.from(run.host.q),
      k: Float64Array.from(run.host.k),
      v: Float64Array.from(run.host.v),
    };
    const loss = () => {
      const out = attentionReference(x.q, x.k, x.v, c).out;
      return out.reduce((s, o, i) => s + o * run.host.dOut[i], 0);
    };
    for (const name of ["q", "k", "v"] as const) {
      const fd = finiteDifferences(x[name], loss);
      const err = relError(got[`d${name}`], fd);
      ok(err < TOL, `${JSON.stringify(c)}: d${name} vs finite differences ${err}`);
    }
  }
});

Deno.test("attention dropout: p = 0 is no dropout; the drawn mask is Philox's and backward uses it", async () => {
  const gpu = await getGpu();
  const base = { B: 2, T: 40, nHead: 2, headSize: 4 };
  seed = 500;
  const plain = await record(gpu, base);
  seed = 500;
  const zero = await record(gpu, { ...base, dropout: { p: 0, counter: 3, callIndex: 1 } });
  await plain.plan.run();
  await zero.plan.run();
  deepEqual(await read(zero), await read(plain), "p = 0 must be bit-identical to no dropout");

  for (
    const c of [{ ...base, dropout: { p: 0.3, counter: 5, callIndex: 2 } }, {
      B: 1,
      T: 7,
      nHead: 3,
      headSize: 3,
      dropout: { p: 0.5, counter: 9, callIndex: 0 },
    }]
  ) {
    const run = await record(gpu, c);
    await run.plan.run();
    checkAgainstReference(run, await read(run), c.dropout.counter);
    const bits = await readU32(run.keep);
    const mask = maskOf(run, c.dropout.counter)!;
    checkBits(c, bits, mask);
    const kept = mask.filter((m) => m !== 0).length, causal = c.B * c.nHead * c.T * (c.T + 1) / 2;
    ok(kept > 0 && kept < causal, `kept ${kept} of ${causal}: the mask must have both kinds`);

    // The step counter is read on the device: replaying after it advances draws a new mask.
    writeTensor(
      run.counters,
      [c.dropout.counter + 1, 0, 0, 0, 0, 0, 0, 0].slice(0, run.counters.size),
    );
    await run.plan.run();
    const next = await readU32(run.keep);
    notDeepEqual(next, bits, "a new step must draw a new mask");
    checkBits(c, next, maskOf(run, c.dropout.counter + 1)!);
    checkAgainstReference(run, await read(run), c.dropout.counter + 1);
  }
});

/** The keep bits of every weight on or below the diagonal agree with the reference mask. */
function checkBits(c: Case, bits: Uint32Array, mask: Float64Array) {
  const { B, nHead, T } = c, words = keepWords(T);
  for (let row = 0; row < B * nHead * T; row++) {
    for (let j = 0; j <= row % T; j++) {
      const bit = (bits[row * words + (j >> 5)] >>> (j & 31)) & 1;
      equal(bit, mask[row * T + j] !== 0 ? 1 : 0, `keep bit of row ${row}, column ${j}`);
    }
  }
}

Deno.test("attention is bit-identical run to run", async () => {
  const gpu = await getGpu();
  const run = await record(gpu, {
    B: 2,
    T: 32,
    nHead: 4,
    headSize: 16,
    dropout: { p: 0.2, counter: 1, callIndex: 0 },
  });
  await run.plan.run();
  const first = await read(run);
  await run.plan.run();
  deepEqual(await read(run), first);
});

Deno.test("attention refuses bad shapes and shapes past llvmpipe's loop limit", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const t = (shape: number[], dtype: "f32" | "u32" = "f32") => createTensor(gpu, shape, dtype, "t");
  const args = (T: number, C: number, nHead: number) => ({
    q: t([1, T, C]),
    k: t([1, T, C]),
    v: t([1, T, C]),
    out: t([1, T, C]),
    lse: t([1, nHead, T]),
    nHead,
  });
  throws(
    () => attentionForward(rec, args(70000, 1, 1)),
    (e) => e instanceof LimitError && /loop iterations/.test(e.message),
  );
  throws(
    () => attentionForward(rec, args(2, 260, 1)),
    (e) => e instanceof LimitError && /headSize 260/.test(e.message),
  );
  throws(() => attentionForward(rec, args(4, 6, 4)), ShapeError);
  throws(() => attentionForward(rec, { ...args(4, 8, 2), rows: 9 }), RangeError);
  throws(() => attentionForward(rec, { ...args(4, 8, 2), q: t([1, 4, 6]) }), ShapeError);
  throws(
    () => attentionForward(rec, { ...args(4, 8, 2), k: { tensor: t([1, 4, 12]), column: 8 } }),
    ShapeError,
  );
  const counters = createCounters(gpu);
  const dropout = { p: 0.1, key: [1, 4] as const, counters, counterIndex: 0, callIndex: 0 };
  throws(() => attentionForward(rec, { ...args(4, 8, 2), dropout }), /keep/);
  throws(
    () => attentionForward(rec, { ...args(4, 8, 2), dropout: { ...dropout, p: 2 } }),
    RangeError,
  );
  // Gradients sharing a buffer must be disjoint column blocks of one tensor.
  const dqkv = t([1, 4, 24]);
  const backward = {
    ...args(4, 8, 2),
    dOut: t([1, 4, 8]),
    dq: { tensor: dqkv, column: 0 },
    dk: { tensor: dqkv, column: 4 },
    dv: { tensor: dqkv, column: 16 },
  };
  throws(
    () => attentionBackward(rec, backward),
    (e) => e instanceof ShapeError && /overlap/.test(e.message),
  );
  attentionBackward(rec, { ...backward, dk: { tensor: dqkv, column: 8 } });
  equal(rec.dispatches.length, 1);
  await rec.finish();
});
