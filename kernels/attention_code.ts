/**
 * The WGSL that kernels/attention.ts dispatches, generated per shape: a header of shape
 * constants, the lane type and the dropout hooks, then kernels/attention.wgsl's section with
 * its per-row and per-lane lines unrolled.
 */
import philoxSource from "./philox.wgsl" with { type: "text" };
import source from "./attention.wgsl" with { type: "text" };
import { keepScale } from "./dropout.ts";
import { wgslSection } from "./wgsl.ts";
import type { Tensor } from "./tensor.ts";

/** Dropout of the attention weights (after the softmax), drawn as kernels/dropout.ts draws. */
export interface AttentionDropout {
  /** Probability of zeroing a weight, in [0, 1]; 0 records no dropout at all. */
  p: number;
  /** Philox key (the run's dropout stream: `streamKey(seed, "dropout")`). */
  key: readonly [number, number];
  /** u32 device counters; the step counter is read on the device at replay time. */
  counters: Tensor;
  /** Slot of `counters` holding the step counter. */
  counterIndex: number;
  /** Distinct number per dropout site within a step, so sites draw independent masks. */
  callIndex: number;
}

/** Shape of an attention call, derived from its tensors by kernels/attention.ts. */
export interface Resolved {
  B: number;
  T: number;
  nHead: number;
  headSize: number;
  scale: number;
  /** 4 when every length and offset allows vec4 lanes, else 1. */
  width: number;
  /** Rows of one (batch, head) per invocation. */
  rows: number;
  operands: { tensor: Tensor; column: number; stride: number }[];
  dropout?: AttentionDropout;
}

/** Words of keep bits per row of T weights. */
export function keepWords(T: number): number {
  return Math.ceil(T / 32);
}

/** The generated header: shape constants, lane type and the dropout hooks. */
function header(r: Resolved, kernel: "forward" | "backward", acc = [false, false, false]) {
  const W = r.width;
  const lines = [
    W === 4
      ? "alias Lane = vec4<f32>;\nfn hsum(v: Lane) -> f32 { return (v.x + v.y) + (v.z + v.w); }"
      : "alias Lane = f32;\nfn hsum(v: Lane) -> f32 { return v; }",
    `const BATCH: u32 = ${r.B}u;`,
    `const SEQ: u32 = ${r.T}u;`,
    `const NH: u32 = ${r.nHead}u;`,
    `const HSW: u32 = ${r.headSize / W}u;`,
    `const ROWS: u32 = ${r.rows}u;`,
    `const O_STRIDE: u32 = ${(r.nHead * r.headSize) / W}u;`,
    ...["Q", "K", "V", "DQ", "DK", "DV"].slice(0, r.operands.length).flatMap((n, i) => [
      `const ${n}_STRIDE: u32 = ${r.operands[i].stride / W}u;`,
      `const ${n}_OFF: u32 = ${r.operands[i].column / W}u;`,
    ]),
    "override SCALE: f32;",
    `const KEEP_WORDS: u32 = ${keepWords(r.T)}u;`,
    `const GROUPS: u32 = ${Math.ceil(r.T / 4)}u;`,
    `const ACC_Q: bool = ${acc[0]};`,
    `const ACC_K: bool = ${acc[1]};`,
    `const ACC_V: bool = ${acc[2]};`,
  ];
  if (!r.dropout) {
    lines.push(
      kernel === "forward"
        ? "fn draw_keep(slot: u32, row: u32, j: u32, valid: bool, last: bool, live: bool) -> f32 {\n  return 1.0;\n}"
        : "fn keep_factor(row: u32, j: u32) -> f32 { return 1.0; }",
    );
    return lines.join("\n") + "\n";
  }
  lines.push("override KEEP_SCALE: f32;");
  return lines.join("\n") + "\n" + philoxSource + wgslSection(DROPOUT_HOOKS, kernel);
}

// Dropout hooks, prepended before the kernel's source (so bindings 5… / 9 exist only when used).
const DROPOUT_HOOKS = `
//@kernel forward
struct DropParams {
  key: vec2<u32>,
  call: u32,
  counter_index: u32,
  p: f32,
}
@group(0) @binding(5) var<storage, read_write> keep_bits: array<u32>;
@group(0) @binding(6) var<storage, read> counters: array<u32>;
@group(0) @binding(7) var<uniform> drop: DropParams;
// Per row of the invocation (slot): the current Philox draw and the keep bits not yet stored.
var<private> drop_words: array<vec4<u32>, ROWS>;
var<private> drop_bits: array<u32, ROWS>;

// Weight (row, j) is kept iff word j%4 of Philox((row·GROUPS + j/4, call, step, 0)) ≥ p; the
// walk over j is in order, so one draw serves four weights. Bits go out a word at a time.
fn draw_keep(slot: u32, row: u32, j: u32, valid: bool, last: bool, live: bool) -> f32 {
  if ((j & 3u) == 0u) {
    let ctr = vec4<u32>(row * GROUPS + j / 4u, drop.call, counters[drop.counter_index], 0u);
    drop_words[slot] = philox4x32_10(ctr, drop.key);
  }
  let keep = valid && philox_unit(drop_words[slot][j & 3u]) >= drop.p;
  drop_bits[slot] = drop_bits[slot] | select(0u, 1u << (j & 31u), keep);
  let full = (j & 31u) == 31u;
  if ((full || last) && live) {
    keep_bits[row * KEEP_WORDS + j / 32u] = drop_bits[slot];
  }
  if (full) {
    drop_bits[slot] = 0u;
  }
  return select(0.0, KEEP_SCALE, keep);
}
//@kernel backward
@group(0) @binding(9) var<storage, read> keep_bits: array<u32>;

fn keep_factor(row: u32, j: u32) -> f32 {
  let bit = (keep_bits[row * KEEP_WORDS + j / 32u] >> (j & 31u)) & 1u;
  return select(0.0, KEEP_SCALE, bit != 0u);
}
`;

/**
 * Expands every line that names `@<name>` once per value 0 … n − 1 of it, in order (`@<name>u`
 * becomes the u32 literal, `@<name>` the number). A head's rows then live in named registers
 * (q0_0, q0_1, …) rather than a private array, which llvmpipe keeps in memory and reaches by a
 * per-lane gather when a loop indexes it: several times slower, measured.
 */
function unroll(code: string, name: string, n: number): string {
  const tag = `@${name}`;
  return code.split("\n").flatMap((line) =>
    line.includes(tag)
      ? Array.from(
        { length: n },
        (_, i) => line.replaceAll(`${tag}u`, `${i}u`).replaceAll(tag, `${i}`),
      )
      : [line]
  ).join("\n");
}

export function kernelCode(r: Resolved, kernel: "forward" | "backward", acc?: boolean[]): string {
  const body = unroll(unroll(wgslSection(source, kernel), "r", r.rows), "d", r.headSize / r.width);
  return header(r, kernel, acc) + body;
}

export function constants(r: Resolved): Record<string, number> {
  return r.dropout ? { SCALE: r.scale, KEEP_SCALE: keepScale(r.dropout.p) } : { SCALE: r.scale };
}
