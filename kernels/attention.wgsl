// Causal multi-head self-attention over batched heads, forward and backward, one dispatch each
// (kernels/attention.ts). q, k, v are [B, T, nHead·headSize] (head h in columns h·headSize …),
// possibly column ranges of a wider tensor (a fused qkv): element (b, t, h, d) of q sits at
// lane (b·T + t)·Q_STRIDE + Q_OFF + h·HSW + d.
//
// Layout of the work: a workgroup is one SIMD row of 8 invocations owning 8 consecutive rows
// of one (batch, head). The loop over the other axis is uniform across the workgroup (its
// bounds come from the workgroup id), so on llvmpipe the rows it walks are read with one
// broadcast load instead of a per-lane gather, and no workgroup memory or barrier is needed.
// Lanes past the end of the sequence compute row T − 1 again and store nothing.
//
// Determinism: every sum runs over its terms in a fixed order (d ascending within a lane vector,
// then the vector's lanes pairwise; j or i ascending), and nothing is shared between
// invocations, so results are bit-identical run to run.
//
// kernels/attention.ts prepends the shape constants (BATCH, SEQ, NH, HSW, the strides and
// offsets in lanes, SCALE, KEEP_WORDS, ACC_Q/K/V), the lane type (Lane = vec4<f32> when every
// length and offset is a multiple of four, else f32, with hsum folding it), and either the
// dropout hooks (draw_keep / keep_factor reading Philox and the keep bits) or identity ones.

// Stands in for -inf, as in kernels/softmax.wgsl: exp(-BIG - m) is exactly 0.
const BIG: f32 = 3.0e38;
const TILES: u32 = (SEQ + 7u) / 8u;
// (batch, head, 8-row tile) units.
const UNITS: u32 = BATCH * NH * TILES;

//@kernel forward
@group(0) @binding(0) var<storage, read> q: array<Lane>;
@group(0) @binding(1) var<storage, read> k: array<Lane>;
@group(0) @binding(2) var<storage, read> v: array<Lane>;
@group(0) @binding(3) var<storage, read_write> out: array<Lane>;
// log Σ_j exp(s_ij) per (b, h, i): what the backward needs to rebuild the softmax weights.
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;

// One invocation per query row i: an online softmax over keys j = 0 … i (running max m, sum l,
// and the weighted sum of values rescaled whenever m grows), so the scores are never stored.
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
  let bh = unit / TILES;
  let b = bh / NH;
  let h = bh % NH;
  let i0 = 8u * (unit % TILES);
  let live = i0 + li < SEQ;
  let i = min(i0 + li, SEQ - 1u);
  let row = bh * SEQ + i;
  let qa = (b * SEQ + i) * Q_STRIDE + Q_OFF + h * HSW;
  let qr@d = q[qa + @du];
  var acc@d = Lane(0.0);
  var m = -BIG;
  var l = 0.0;
  let jend = min(SEQ, i0 + 8u);
  for (var j = 0u; j < jend; j = j + 1u) {
    let ka = (b * SEQ + j) * K_STRIDE + K_OFF + h * HSW;
    var s4 = Lane(0.0);
    s4 = s4 + qr@d * k[ka + @du];
    let s = select(-BIG, SCALE * hsum(s4), j <= i);
    let mn = max(m, s);
    let c = exp(m - mn);
    let e = exp(s - mn);
    l = l * c + e;
    m = mn;
    // The dropout mask applies to the weights after the softmax, not to its normaliser.
    let w = e * draw_keep(row, j, j <= i, j + 1u == jend, live);
    let va = (b * SEQ + j) * V_STRIDE + V_OFF + h * HSW;
    acc@d = acc@d * c + w * v[va + @du];
  }
  if (live) {
    let oa = (b * SEQ + i) * O_STRIDE + h * HSW;
    out[oa + @du] = acc@d / l;
    lse[row] = m + log(l);
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
  let bh = u / TILES;
  let b = bh / NH;
  let h = bh % NH;
  let t0 = 8u * (u % TILES);
  let live = t0 + li < SEQ;
  let t = min(t0 + li, SEQ - 1u);
  if (unit < UNITS) {
    query_rows(b, h, bh, t0, t, live);
  } else {
    key_rows(b, h, bh, t0, t, live);
  }
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

fn q_at(b: u32, i: u32, h: u32) -> u32 {
  return (b * SEQ + i) * Q_STRIDE + Q_OFF + h * HSW;
}

fn k_at(b: u32, j: u32, h: u32) -> u32 {
  return (b * SEQ + j) * K_STRIDE + K_OFF + h * HSW;
}

fn v_at(b: u32, j: u32, h: u32) -> u32 {
  return (b * SEQ + j) * V_STRIDE + V_OFF + h * HSW;
}

fn o_at(b: u32, i: u32, h: u32) -> u32 {
  return (b * SEQ + i) * O_STRIDE + h * HSW;
}

// Lane i: dq_i over keys j = 0 … i.
fn query_rows(b: u32, h: u32, bh: u32, i0: u32, i: u32, live: bool) {
  let qa = q_at(b, i, h);
  let oa = o_at(b, i, h);
  let qr@d = q[qa + @du];
  let dor@d = dout[oa + @du];
  var d4 = Lane(0.0);
  d4 = d4 + dor@d * out[oa + @du];
  let big_d = hsum(d4);
  let row = bh * SEQ + i;
  let lse_i = lse[row];
  var acc@d = Lane(0.0);
  let jend = min(SEQ, i0 + 8u);
  for (var j = 0u; j < jend; j = j + 1u) {
    let ka = k_at(b, j, h);
    let va = v_at(b, j, h);
    var s4 = Lane(0.0);
    var p4 = Lane(0.0);
    s4 = s4 + qr@d * k[ka + @du];
    p4 = p4 + dor@d * v[va + @du];
    let p = select(0.0, exp(SCALE * hsum(s4) - lse_i), j <= i);
    let ds = p * (hsum(p4) * keep_factor(row, j) - big_d);
    acc@d = acc@d + ds * k[ka + @du];
  }
  if (live) {
    dq[oa + @du] = add_dq(oa + @du, SCALE * acc@d);
  }
}

// Lane j: dk_j and dv_j over queries i = j … T − 1 (the loop starts at the tile's first row).
fn key_rows(b: u32, h: u32, bh: u32, j0: u32, j: u32, live: bool) {
  let ka = k_at(b, j, h);
  let va = v_at(b, j, h);
  let kr@d = k[ka + @du];
  let vr@d = v[va + @du];
  var dka@d = Lane(0.0);
  var dva@d = Lane(0.0);
  for (var i = j0; i < SEQ; i = i + 1u) {
    let qa = q_at(b, i, h);
    let oa = o_at(b, i, h);
    var s4 = Lane(0.0);
    var p4 = Lane(0.0);
    var d4 = Lane(0.0);
    // Same operand order and grouping as the forward's score, so P matches it.
    s4 = s4 + q[qa + @du] * kr@d;
    let g@d = dout[oa + @du];
    p4 = p4 + g@d * vr@d;
    d4 = d4 + g@d * out[oa + @du];
    let row = bh * SEQ + i;
    let p = select(0.0, exp(SCALE * hsum(s4) - lse[row]), j <= i);
    let keep = keep_factor(row, j);
    let ds = p * (hsum(p4) * keep - hsum(d4));
    let pk = p * keep;
    dka@d = dka@d + ds * q[qa + @du];
    dva@d = dva@d + pk * g@d;
  }
  if (live) {
    let oa = o_at(b, j, h);
    dk[oa + @du] = add_dk(oa + @du, SCALE * dka@d);
    dv[oa + @du] = add_dv(oa + @du, dva@d);
  }
}
