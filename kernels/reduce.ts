/**
 * Deterministic row and column sums: a fixed summation order and no atomics, so the same input
 * gives bit-identical sums on every run. Column sums are the bias gradients of Linear layers.
 */
import source from "./reduce.wgsl" with { type: "text" };
import { requireDisjoint, requireF32 } from "./validate.ts";
import { grid1d } from "./grid.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";
import type { Recorder } from "./program.ts";
import { LimitError, ShapeError, type Tensor } from "./tensor.ts";

const WG = 64;

/** The WGSL prefix choosing element types: vec4 along rows when their length allows. */
function prefix(vec: boolean, mode: "row" | "col"): string {
  const t = vec ? "vec4<f32>" : "f32";
  if (mode === "col") {
    return `alias T = ${t};\nalias O = ${t};\nfn to_out(v: T) -> O { return v; }\n`;
  }
  const fold = vec ? "(v.x + v.y) + (v.z + v.w)" : "v";
  return `alias T = ${t};\nalias O = f32;\nfn to_out(v: T) -> O { return ${fold}; }\n`;
}

/** Splits x [..., N] into (rows, N) after checking it has at least one axis. */
function rowsAndCols(op: string, x: Tensor): [number, number] {
  if (x.shape.length === 0) throw new ShapeError(`${op}: ${x.describe()} has no axis to sum`);
  const n = x.shape[x.shape.length - 1];
  return [n === 0 ? 0 : x.size / n, n];
}

/** Records out[i] = Σ_j x[i, j]: x [..., N] → out [...] (x's leading axes). */
export function rowSum(rec: Recorder, x: Tensor, out: Tensor, accumulate = false): void {
  requireF32("rowSum", x, out);
  requireDisjoint("rowSum", [out], [x]);
  const [rows, n] = rowsAndCols("rowSum", x);
  const want = x.shape.slice(0, -1);
  if (out.shape.length !== want.length || out.shape.some((d, i) => d !== want[i])) {
    throw new ShapeError(
      `rowSum: out ${out.describe()} must have shape [${want.join(", ")}] for x ${x.describe()}`,
    );
  }
  const vec = n % 4 === 0;
  const cols = vec ? n / 4 : n;
  if (cols > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `rowSum: rows of ${x.describe()} need ${cols} loop iterations per invocation, above ` +
        `llvmpipe's limit of ${MAX_LOOP_ITERATIONS}`,
    );
  }
  if (rows === 0) return;
  rec.dispatch(
    {
      name: "reduce_rows",
      code: prefix(vec, "row") + source,
      constants: { MODE: 0, ROWS: rows, COLS: cols, ACCUMULATE: accumulate ? 1 : 0 },
    },
    [x, out],
    grid1d(rows, WG),
  );
}

/** Records out[j] = Σ_i x[i, j] (+ out[j] when accumulating): x [..., N] → out [N]. */
export function colSum(rec: Recorder, x: Tensor, out: Tensor, accumulate = false): void {
  requireF32("colSum", x, out);
  requireDisjoint("colSum", [out], [x]);
  const [rows, n] = rowsAndCols("colSum", x);
  if (out.shape.length !== 1 || out.shape[0] !== n) {
    throw new ShapeError(
      `colSum: out ${out.describe()} must have shape [${n}] for x ${x.describe()}`,
    );
  }
  const iterations = Math.ceil(rows / WG) + Math.log2(WG);
  if (iterations > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `colSum: ${rows} rows of ${x.describe()} need ${iterations} loop iterations per ` +
        `invocation, above llvmpipe's limit of ${MAX_LOOP_ITERATIONS}`,
    );
  }
  const vec = n % 4 === 0;
  const cols = vec ? n / 4 : n;
  if (cols === 0) return;
  rec.dispatch(
    {
      name: "reduce_cols",
      code: prefix(vec, "col") + source,
      constants: { MODE: 1, ROWS: rows, COLS: cols, ACCUMULATE: accumulate ? 1 : 0 },
    },
    [x, out],
    grid1d(cols * WG, WG),
  );
}

/** float64 reference of `rowSum` for x [rows, n]. */
export function rowSumReference(x: ArrayLike<number>, rows: number, n: number): Float64Array {
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += x[i * n + j];
    out[i] = s;
  }
  return out;
}

/** float64 reference of `colSum` for x [rows, n]. */
export function colSumReference(x: ArrayLike<number>, rows: number, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < n; j++) out[j] += x[i * n + j];
  }
  return out;
}
