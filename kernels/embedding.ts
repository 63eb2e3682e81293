/**
 * Embedding lookup: out[n, :] = table[idx[n], :], and its deterministic backward: a per-batch
 * index of each row's positions is built on the device (the ids change every step), then a
 * gather walks each row's positions in increasing n (no atomics, so gradients are bit-identical
 * across runs, and equal to summing over every position in order).
 */
import source from "./embedding.wgsl" with { type: "text" };
import indexSource from "./embedding_index.wgsl" with { type: "text" };
import { requireDisjoint, requireF32 } from "./validate.ts";
import { wgslSection } from "./wgsl.ts";
import { grid1d } from "./grid.ts";
import type { Recorder } from "./program.ts";
import { createTensor, LimitError, ShapeError, type Tensor } from "./tensor.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";

function requireU32(op: string, ...tensors: Tensor[]): void {
  for (const t of tensors) {
    if (t.dtype !== "u32") throw new ShapeError(`${op}: ${t.describe()} must be u32`);
  }
}

function requireRows(op: string, rows: Tensor, idx: Tensor, C: number): void {
  if (rows.shape[rows.shape.length - 1] !== C || rows.size !== idx.size * C) {
    throw new ShapeError(
      `${op}: ${rows.describe()} must be [${[...idx.shape, C].join(", ")}]: one row of ${C} ` +
        `per id of ${idx.describe()}`,
    );
  }
}

function tableShape(op: string, table: Tensor): [number, number] {
  if (table.shape.length !== 2) throw new ShapeError(`${op}: ${table.describe()} must be [V, C]`);
  return [table.shape[0], table.shape[1]];
}

// One invocation moves 4 channels (vec4) when C allows, else 1.
function channelWidth(C: number): 1 | 4 {
  return C % 4 === 0 ? 4 : 1;
}

function withChannelType(code: string, width: 1 | 4): string {
  return `alias T = ${width === 4 ? "vec4<f32>" : "f32"};\n` + code;
}

/** Records out[n, :] = table[idx[n], :] for table [V, C], idx [N] or [B, T] (ids ≥ V give zeros). */
export function embeddingForward(rec: Recorder, table: Tensor, idx: Tensor, out: Tensor): void {
  const op = "embeddingForward";
  const [V, C] = tableShape(op, table);
  requireF32(op, table, out);
  requireU32(op, idx);
  requireRows(op, out, idx, C);
  requireDisjoint(op, [out], [table, idx]);
  if (out.size === 0) return;
  const width = channelWidth(C);
  rec.dispatch(
    {
      name: "embedding_forward",
      code: withChannelType(wgslSection(source, "forward"), width),
      constants: { N: idx.size, V, CW: C / width },
    },
    [table, idx, out],
    grid1d(out.size / width, 256),
  );
}

/**
 * Records the index build into a fresh u32 tensor [V + N]: row heads, then the next position
 * with the same id for each position (0xffffffff ends a list). See embedding_index.wgsl.
 */
function recordIndex(rec: Recorder, idx: Tensor, V: number): Tensor {
  const N = idx.size;
  const index = createTensor(rec.gpu, [V + N], "u32", `${idx.name}.embeddingIndex`);
  rec.dispatch(
    { name: "embedding_index", code: indexSource, constants: { N, V } },
    [idx, index],
    1,
  );
  return index;
}

/**
 * Records dTable (+)= Σ over n with idx[n] = v of dOut[n, :], summed in increasing n: two
 * dispatches, the per-batch index of the ids, then the gather of each row's positions.
 */
export function embeddingBackward(
  rec: Recorder,
  idx: Tensor,
  dOut: Tensor,
  dTable: Tensor,
  accumulate: boolean,
): void {
  const op = "embeddingBackward";
  const [V, C] = tableShape(op, dTable);
  requireF32(op, dOut, dTable);
  requireU32(op, idx);
  requireRows(op, dOut, idx, C);
  requireDisjoint(op, [dTable], [idx, dOut]);
  const N = idx.size;
  if (N > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `${op}: ${idx.describe()} has ${N} ids; the index build loops over all of them in one ` +
        `invocation, above llvmpipe's limit of ${MAX_LOOP_ITERATIONS} loop iterations`,
    );
  }
  if (dTable.size === 0) return;
  const index = recordIndex(rec, idx, V);
  const width = channelWidth(C);
  rec.dispatch(
    {
      name: "embedding_backward",
      code: withChannelType(wgslSection(source, "backward"), width),
      constants: { N, V, CW: C / width, ACCUMULATE: accumulate ? 1 : 0 },
    },
    [dOut, idx, index, dTable],
    grid1d(dTable.size / width, 256),
  );
}

/** Reference for `embeddingForward`: out [N, C] from table [V, C] (ids must be < V). */
export function embeddingForwardReference(
  table: ArrayLike<number>,
  idx: ArrayLike<number>,
  V: number,
  C: number,
): Float64Array {
  const out = new Float64Array(idx.length * C);
  for (let n = 0; n < idx.length; n++) {
    const id = idx[n];
    if (id >= V) throw new RangeError(`embeddingForwardReference: id ${id} at ${n} is ≥ V = ${V}`);
    for (let c = 0; c < C; c++) out[n * C + c] = table[id * C + c];
  }
  return out;
}

/** Reference for `embeddingBackward` (without accumulation): dTable [V, C] in float64. */
export function embeddingBackwardReference(
  idx: ArrayLike<number>,
  dOut: ArrayLike<number>,
  V: number,
  C: number,
): Float64Array {
  const dTable = new Float64Array(V * C);
  for (let n = 0; n < idx.length; n++) {
    const id = idx[n];
    if (id >= V) throw new RangeError(`embeddingBackwardReference: id ${id} at ${n} is ≥ V = ${V}`);
    for (let c = 0; c < C; c++) dTable[id * C + c] += dOut[n * C + c];
  }
  return dTable;
}
