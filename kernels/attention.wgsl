// Causal multi-head self-attention over batched heads, forward and backward, one dispatch each
// (kernels/attention.ts). q, k, v are [B, T, nHead·headSize] (head h in columns h·headSize …),
// possibly column ranges of a wider tensor (a fused qkv): element (b, t, h, d) of q sits at
// lane (b·T + t)·Q_STRIDE + Q_OFF + h·HSW + d.
//
// Layout of the work: llvmpipe runs a workgroup of 8 as one 8-lane SIMD row and every storage
// load as a per-lane gather (a vec4 costs about what a scalar does), so loads, not arithmetic,
// set the speed. An invocation therefore owns one (batch, head) — the 8 lanes 8 different pairs,
// so no gather fetches what a neighbour lane fetches — and ROWS consecutive rows of it, held in
// registers: every row it loads from the other side (k_j and v_j in the forward) serves ROWS
// rows. Lines naming @r / @d are written once and expanded by kernels/attention.ts for every
// row r < ROWS and every lane d < HSW of a head (unrolled registers: a private array indexed in
// a loop would itself be a gather). Invocations past the last pair or rows past T compute a
// clamped row again and store nothing.
//
// Determinism: every sum runs over its terms in a fixed order (d ascending within a lane vector,
// then the vector's lanes pairwise; j or i ascending), and nothing is shared between
// invocations, so results are bit-identical run to run.
//
// kernels/attention.ts prepends the shape constants (BATCH, SEQ, NH, HSW, ROWS, the strides and
// offsets in lanes, KEEP_WORDS, GROUPS, ACC_Q/K/V; SCALE as an override), the lane type (Lane =
// vec4<f32> when every length and offset is a multiple of four, else f32, with hsum folding
// it), and either the dropout hooks (draw_keep / keep_factor: Philox and the keep bits) or
// identity ones.

// Stands in for -inf, as in kernels/softmax.wgsl: exp(-BIG - m) is exactly 0.
const BIG: f32 = 3.0e38;
const BH: u32 = BATCH * NH;
const TILES: u32 = (SEQ + ROWS - 1u) / ROWS;
// Workgroups per pass: 8 (batch, head) pairs (one per invocation) × one tile of ROWS rows.
const UNITS: u32 = (BH + 7u) / 8u * TILES;

fn q_at(b: u32, i: u32, h: u32) -> u32 {
  return (b * SEQ + i) * Q_STRIDE + Q_OFF + h * HSW;
}

fn k_at(b: u32, j: u32, h: u32) -> u32 {
  return (b * SEQ + j) * K_STRIDE + K_OFF + h * HSW;
}

fn v_at(b: u32, j: u32, h: u32) -> u32 {
  return (b * SEQ + j) * V_STRIDE + V_OFF + h * HSW;
}

// out and its gradient are contiguous [B, T, NH·HSW].
fn o_at(b: u32, i: u32, h: u32) -> u32 {
  return (b * SEQ + i) * O_STRIDE + h * HSW;
}

//@kernel forward
@group(0) @binding(0) var<storage, read> q: array<Lane>;
@group(0) @binding(1) var<storage, read> k: array<Lane>;
@group(0) @binding(2) var<storage, read> v: array<Lane>;
@group(0) @binding(3) var<storage, read_write> out: array<Lane>;
// log Σ_j exp(s_ij) per (b, h, i): what the backward needs to rebuild the softmax weights.
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;

// An invocation owns query rows first … first + ROWS − 1 of one (b, h): for each key j it loads
// k_j and v_j once for all its rows and runs an online softmax per row (running max m, sum l, and
// the weighted sum of values rescaled whenever m grows), so the scores are never stored.
@compute @workgroup_size(8)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let unit = wid.x + wid.y * nwg.x;
  if (unit >= UNITS) {
    return;
  }
  let live = (unit / TILES) * 8u + li < BH;
  let bh = min((unit / TILES) * 8u + li, BH - 1u);
  let b = bh / NH;
  let h = bh % NH;
  let first = (unit % TILES) * ROWS;
  let i@r = min(first + @ru, SEQ - 1u);
  let row@r = bh * SEQ + i@r;
  let qa@r = q_at(b, i@r, h);
  let q@r_@d = q[qa@r + @du];
  var acc@r_@d = Lane(0.0);
  var m@r = -BIG;
  var l@r = 0.0;
  let jend = min(SEQ, first + ROWS);
  for (var j = 0u; j < jend; j = j + 1u) {
    let ka = k_at(b, j, h);
    let va = v_at(b, j, h);
    let k@d = k[ka + @du];
    let v@d = v[va + @du];
    var s@r = Lane(0.0);
    s@r = s@r + q@r_@d * k@d;
    let sc@r = select(-BIG, SCALE * hsum(s@r), j <= i@r);
    let mn@r = max(m@r, sc@r);
    let c@r = exp(m@r - mn@r);
    let e@r = exp(sc@r - mn@r);
    l@r = l@r * c@r + e@r;
    m@r = mn@r;
    // The dropout mask applies to the weights after the softmax, not to its normaliser.
    let w@r = e@r * draw_keep(@ru, row@r, j, j <= i@r, j + 1u == jend, live && first + @ru < SEQ);
    acc@r_@d = acc@r_@d * c@r + w@r * v@d;
  }
  if (live) {
    let oa@r = o_at(b, i@r, h);
    if (first + @ru < SEQ) { out[oa@r + @du] = acc@r_@d / l@r; }
    if (first + @ru < SEQ) { lse[row@r] = m@r + log(l@r); }
  }
}

//@kernel backward
@group(0) @binding(0) var<storage, read> q: array<Lane>;
@group(0) @binding(1) var<storage, read> k: array<Lane>;
@group(0) @binding(2) var<storage, read> v: array<Lane>;
@group(0) @binding(3) var<storage, read> out: array<Lane>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<Lane>;
@group(0) @binding(6) var<storage, read_write> dq: array<Lane>;
@group(0) @binding(7) var<storage, read_write> dk: array<Lane>;
@group(0) @binding(8) var<storage, read_write> dv: array<Lane>;

// With P = softmax weights, M the dropout factors and dO the output's gradient:
//   dS_ij = P_ij · (M_ij · dO_i·v_j − D_i),  D_i = Σ_j P_ij M_ij dO_i·v_j = dO_i·out_i,
//   dq_i = SCALE · Σ_j dS_ij k_j,  dk_j = SCALE · Σ_i dS_ij q_i,  dv_j = Σ_i P_ij M_ij dO_i.
// Workgroups [0, UNITS) own query rows (dq), [UNITS, 2·UNITS) key rows (dk, dv); each rebuilds
// P from the stored log-sum-exp with the forward's score expression, so nothing T×T is stored.
@compute @workgroup_size(8)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let unit = wid.x + wid.y * nwg.x;
  if (unit >= 2u * UNITS) {
    return;
  }
  let u = unit % UNITS;
  let live = (u / TILES) * 8u + li < BH;
  let bh = min((u / TILES) * 8u + li, BH - 1u);
  let first = (u % TILES) * ROWS;
  if (unit < UNITS) {
    query_rows(bh / NH, bh % NH, bh, first, live);
  } else {
    key_rows(bh / NH, bh % NH, bh, first, live);
  }
}

// dq, dk, dv may be column ranges of one wider tensor, like q, k, v.
fn dq_at(b: u32, i: u32, h: u32) -> u32 {
  return (b * SEQ + i) * DQ_STRIDE + DQ_OFF + h * HSW;
}

fn dk_at(b: u32, j: u32, h: u32) -> u32 {
  return (b * SEQ + j) * DK_STRIDE + DK_OFF + h * HSW;
}

fn dv_at(b: u32, j: u32, h: u32) -> u32 {
  return (b * SEQ + j) * DV_STRIDE + DV_OFF + h * HSW;
}

// The gradient to store at i: x, plus what is there when accumulating.
fn add_dq(i: u32, x: Lane) -> Lane {
  if (ACC_Q) {
    return x + dq[i];
  }
  return x;
}

fn add_dk(i: u32, x: Lane) -> Lane {
  if (ACC_K) {
    return x + dk[i];
  }
  return x;
}

fn add_dv(i: u32, x: Lane) -> Lane {
  if (ACC_V) {
    return x + dv[i];
  }
  return x;
}

// dq of query rows first … first + ROWS − 1 over keys j = 0 … i.
fn query_rows(b: u32, h: u32, bh: u32, first: u32, live: bool) {
  let i@r = min(first + @ru, SEQ - 1u);
  let row@r = bh * SEQ + i@r;
  let qa@r = q_at(b, i@r, h);
  let oa@r = o_at(b, i@r, h);
  let q@r_@d = q[qa@r + @du];
  let g@r_@d = dout[oa@r + @du];
  var dd4_@r = Lane(0.0);
  dd4_@r = dd4_@r + g@r_@d * out[oa@r + @du];
  let dd@r = hsum(dd4_@r);
  let lse@r = lse[row@r];
  var acc@r_@d = Lane(0.0);
  let jend = min(SEQ, first + ROWS);
  for (var j = 0u; j < jend; j = j + 1u) {
    let ka = k_at(b, j, h);
    let va = v_at(b, j, h);
    let k@d = k[ka + @du];
    let v@d = v[va + @du];
    var s@r = Lane(0.0);
    var p4_@r = Lane(0.0);
    s@r = s@r + q@r_@d * k@d;
    p4_@r = p4_@r + g@r_@d * v@d;
    let p@r = select(0.0, exp(SCALE * hsum(s@r) - lse@r), j <= i@r);
    let ds@r = p@r * (hsum(p4_@r) * keep_factor(row@r, j) - dd@r);
    acc@r_@d = acc@r_@d + ds@r * k@d;
  }
  if (live) {
    let ga@r = dq_at(b, i@r, h);
    if (first + @ru < SEQ) { dq[ga@r + @du] = add_dq(ga@r + @du, SCALE * acc@r_@d); }
  }
}

// dk and dv of key rows first … first + ROWS − 1 over queries i = j … T − 1 (from `first`).
fn key_rows(b: u32, h: u32, bh: u32, first: u32, live: bool) {
  let j@r = min(first + @ru, SEQ - 1u);
  let ka@r = k_at(b, j@r, h);
  let va@r = v_at(b, j@r, h);
  let k@r_@d = k[ka@r + @du];
  let v@r_@d = v[va@r + @du];
  var gk@r_@d = Lane(0.0);
  var gv@r_@d = Lane(0.0);
  for (var i = first; i < SEQ; i = i + 1u) {
    let qa = q_at(b, i, h);
    let oa = o_at(b, i, h);
    let q@d = q[qa + @du];
    let g@d = dout[oa + @du];
    var dd4 = Lane(0.0);
    dd4 = dd4 + g@d * out[oa + @du];
    let dd = hsum(dd4);
    let row = bh * SEQ + i;
    let lse_i = lse[row];
    var s@r = Lane(0.0);
    var p4_@r = Lane(0.0);
    // Same operand order and grouping as the forward's score, so P matches it.
    s@r = s@r + q@d * k@r_@d;
    p4_@r = p4_@r + g@d * v@r_@d;
    let p@r = select(0.0, exp(SCALE * hsum(s@r) - lse_i), j@r <= i);
    let keep@r = keep_factor(row, j@r);
    let ds@r = p@r * (hsum(p4_@r) * keep@r - dd);
    let pk@r = p@r * keep@r;
    gk@r_@d = gk@r_@d + ds@r * q@d;
    gv@r_@d = gv@r_@d + pk@r * g@d;
  }
  if (live) {
    let gka@r = dk_at(b, j@r, h);
    let gva@r = dv_at(b, j@r, h);
    if (first + @ru < SEQ) { dk[gka@r + @du] = add_dk(gka@r + @du, SCALE * gk@r_@d); }
    if (first + @ru < SEQ) { dv[gva@r + @du] = add_dv(gva@r + @du, gv@r_@d); }
  }
}
