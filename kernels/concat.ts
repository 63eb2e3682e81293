/**
 * Concatenation of tensors along an axis and its inverse, split, each in one dispatch for as
 * many pieces as the device binds storage buffers (more pieces take one dispatch per group),
 * with plain TypeScript references.
 */
import source from "./concat.wgsl" with { type: "text" };
import { requireDisjoint, requireF32 } from "./validate.ts";
import { wgslSection } from "./wgsl.ts";
import { grid1d } from "./grid.ts";
import type { Recorder } from "./program.ts";
import { ShapeError, type Tensor } from "./tensor.ts";

/**
 * A piece of the joined tensor: a tensor, or a size along the axis for a piece that is not
 * there (a concat writes zeros for it, a split skips it), as when only some gradients exist.
 */
export type Piece = Tensor | number;

/** A split output: where the piece goes and whether to add to what is there. */
export interface SplitTarget {
  tensor: Tensor;
  accumulate: boolean;
}

/** Resolves a possibly negative axis of a rank-`rank` tensor, or throws naming `op`. */
export function resolveAxis(op: string, axis: number, rank: number): number {
  const resolved = Number.isInteger(axis) && axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(resolved) || resolved < 0 || resolved >= rank) {
    throw new ShapeError(`${op}: axis ${axis} is out of range for ${rank} axes`);
  }
  return resolved;
}

const pieceSize = (p: Piece, axis: number) => typeof p === "number" ? p : p.shape[axis];

// The joined tensor as rows: OUTER = product of the axes before `axis`, and each piece's width
// in a row (its size along the axis times the product of the axes after it).
function rowLayout(op: string, joined: Tensor, pieces: readonly Piece[], axis: number) {
  const shape = joined.shape;
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  let total = 0;
  for (const p of pieces) {
    const size = pieceSize(p, axis);
    if (!Number.isInteger(size) || size < 0) {
      throw new ShapeError(`${op}: piece size ${size} along axis ${axis} is not a count`);
    }
    if (
      typeof p !== "number" &&
      (p.shape.length !== shape.length || p.shape.some((d, a) => a !== axis && d !== shape[a]))
    ) {
      throw new ShapeError(
        `${op}: ${p.describe()} must match ${joined.describe()} on every axis but ${axis}`,
      );
    }
    total += size;
  }
  if (total !== shape[axis]) {
    throw new ShapeError(
      `${op}: the pieces add up to ${total} along axis ${axis}, not the ${shape[axis]} of ` +
        `${joined.describe()}`,
    );
  }
  return { outer, inner, row: total * inner };
}

interface Group {
  /** Columns [col0, col0 + span) of each joined row. */
  col0: number;
  span: number;
  /** Per piece of the group: its index among all pieces, its columns and, if bound, its binding. */
  pieces: { index: number; start: number; end: number; binding?: number }[];
  bound: Tensor[];
}

const overlaps = (a: Tensor, b: Tensor) =>
  a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength &&
  b.byteOffset < a.byteOffset + a.byteLength;

// Consecutive pieces, at most `maxBound` of them bound per group; with `separate`, a bound
// tensor that overlaps another of its group starts a new group (two writes of one element in
// one dispatch would race).
function groups(
  tensors: readonly (Tensor | undefined)[],
  widths: readonly number[],
  maxBound: number,
  separate: boolean,
): Group[] {
  const out: Group[] = [];
  let current: Group | undefined;
  let col = 0;
  tensors.forEach((t, k) => {
    const full = t !== undefined && current !== undefined &&
      (current.bound.length === maxBound ||
        (separate && current.bound.some((b) => overlaps(b, t))));
    if (!current || full) out.push(current = { col0: col, span: 0, pieces: [], bound: [] });
    const piece: Group["pieces"][number] = { index: k, start: col, end: col + widths[k] };
    if (t) {
      current.bound.push(t);
      piece.binding = current.bound.length;
    }
    current.pieces.push(piece);
    col += widths[k];
    current.span = col - current.col0;
  });
  return out.filter((g) => g.span > 0);
}

// Validates, groups and records one kind of copy. `branch` is the WGSL a piece's column runs
// (`at` is its element index in the piece); the rest of the chain is shared.
function recordPieces(
  rec: Recorder,
  kind: "concat" | "split",
  joined: Tensor,
  pieces: readonly Piece[],
  axis: number,
  branch: (piece: Group["pieces"][number], at: string) => string,
  accumulate = false,
): void {
  const a = resolveAxis(kind, axis, joined.shape.length);
  const { outer, inner, row } = rowLayout(kind, joined, pieces, a);
  const tensors = pieces.map((p) => typeof p === "number" ? undefined : p);
  const present = tensors.filter((t) => t !== undefined);
  requireF32(kind, joined, ...present);
  const writes = kind === "concat";
  requireDisjoint(kind, writes ? [joined] : present, writes ? present : [joined]);
  if (joined.size === 0) return;
  const maxBound = rec.gpu.limits.maxStorageBuffersPerShaderStage - 1;
  const widths = pieces.map((p) => pieceSize(p, a) * inner);
  const access = writes ? "read" : "read_write";
  for (const group of groups(tensors, widths, maxBound, !writes)) {
    const bindings = group.bound.map((_, k) =>
      `@group(0) @binding(${k + 1}) var<storage, ${access}> piece${k + 1}: array<f32>;`
    ).join("\n");
    const chain = group.pieces.map((p) => {
      const at = `r * ${p.end - p.start}u + col - ${p.start}u`;
      return `  if (col < ${p.end}u) {\n    ${branch(p, at)}\n  }`;
    }).join("\n");
    const fn = writes
      ? `fn pieceValue(r: u32, col: u32) -> f32 {\n${chain}\n  return 0.0;\n}`
      : `fn storePiece(r: u32, col: u32, value: f32) {\n${chain}\n}`;
    rec.dispatch(
      {
        name: kind,
        code: `${bindings}\n\n${fn}\n\n${wgslSection(source, kind)}`,
        constants: {
          OUTER: outer,
          ROW: row,
          COL0: group.col0,
          SPAN: group.span,
          ...(writes ? { ACCUMULATE: accumulate ? 1 : 0 } : {}),
        },
      },
      [joined, ...group.bound],
      grid1d(outer * group.span, 256),
    );
  }
}

/**
 * Records dst (+)= the pieces side by side along `axis` (negative counts from the end): every
 * piece has dst's shape except along the axis, where the sizes add up to dst's. A number
 * stands for a missing piece of that size, written as zeros.
 */
export function concat(
  rec: Recorder,
  pieces: readonly Piece[],
  axis: number,
  dst: Tensor,
  accumulate = false,
): void {
  recordPieces(
    rec,
    "concat",
    dst,
    pieces,
    axis,
    (p, at) => p.binding === undefined ? "return 0.0;" : `return piece${p.binding}[${at}];`,
    accumulate,
  );
}

/**
 * Records each target (+)= its piece of `src` along `axis`, the inverse of `concat`: targets
 * in order, their sizes along the axis adding up to src's. A number skips a piece of that size.
 * Targets may be views of one buffer (gradients in an arena) as long as they do not overlap;
 * a target given twice is written by two dispatches, in order.
 */
export function split(
  rec: Recorder,
  src: Tensor,
  axis: number,
  targets: readonly (SplitTarget | number)[],
): void {
  const pieces = targets.map((t) => typeof t === "number" ? t : t.tensor);
  recordPieces(rec, "split", src, pieces, axis, (p, at) => {
    if (p.binding === undefined) return "return;";
    const name = `piece${p.binding}`;
    const target = targets[p.index];
    const add = typeof target !== "number" && target.accumulate ? `${name}[at] + ` : "";
    return `let at = ${at};\n    ${name}[at] = ${add}value;\n    return;`;
  });
}

/** Reference for `concat` (without accumulation), in float64: pieces given as data + shape. */
export function concatReference(
  pieces: readonly { data: ArrayLike<number>; shape: readonly number[] }[],
  axis: number,
): Float64Array {
  const shape = pieces[0].shape;
  const a = axis < 0 ? axis + shape.length : axis;
  const outer = shape.slice(0, a).reduce((x, y) => x * y, 1);
  const widths = pieces.map((p) => p.shape.slice(a).reduce((x, y) => x * y, 1));
  const row = widths.reduce((x, y) => x + y, 0);
  const out = new Float64Array(outer * row);
  for (let r = 0; r < outer; r++) {
    let col = 0;
    pieces.forEach((p, k) => {
      for (let j = 0; j < widths[k]; j++) out[r * row + col + j] = p.data[r * widths[k] + j];
      col += widths[k];
    });
  }
  return out;
}

/** Reference for `split`, in float64: the pieces of `src` [shape] with `sizes` along `axis`. */
export function splitReference(
  src: ArrayLike<number>,
  shape: readonly number[],
  sizes: readonly number[],
  axis: number,
): Float64Array[] {
  const a = axis < 0 ? axis + shape.length : axis;
  const outer = shape.slice(0, a).reduce((x, y) => x * y, 1);
  const inner = shape.slice(a + 1).reduce((x, y) => x * y, 1);
  const row = shape[a] * inner;
  let col = 0;
  return sizes.map((size) => {
    const width = size * inner;
    const piece = new Float64Array(outer * width);
    for (let r = 0; r < outer; r++) {
      for (let j = 0; j < width; j++) piece[r * width + j] = src[r * row + col + j];
    }
    col += width;
    return piece;
  });
}
