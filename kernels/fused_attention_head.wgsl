// The attention_head model's training step in two dispatches and its evaluation batch in two
// (kernels/fused_attention_head.ts):
//   sequence: one workgroup per batch row b. It draws the row as kernels/batch.wgsl does and
//             runs the forward pass for that sequence; when training, also the backward pass
//             down to d(x), and it stores the per-position tensors the weight gradients need
//             (x, out, d(logits), dk, dq, dv, d(x), token ids) in the scratch buffer;
//   update:   each invocation owns a tile of parameters: it sums their gradient over all B·T
//             positions in position order (the products the graph path's matmuls compute), then
//             applies AdamW as kernels/adamw.wgsl; invocation 0 writes the mean loss and
//             increments the batch counter.
// An evaluation batch runs `sequence` without the backward pass and `update` with only its
// invocation 0's part: one shader each for training and evaluation, so llvmpipe compiles each
// once (its LLVM compile takes seconds), during the harness's step-0 estimate.
// No float atomics and no scheduling-dependent order: every sum walks its terms in a fixed
// order, so results are bit-identical run to run. They are not bit-identical to the autograd
// graph, whose matmuls and reductions group their terms differently
// (tests/fused_attention_head_test.ts measures the difference).
//
// llvmpipe runs every load whose address differs between invocations as a per-lane gather
// (about 5 ns each, measured, and a vec4 costs little more than a scalar), so the products are
// register tiles fed by vec4 loads: an 8×8 tile does 64 multiply-adds per four vec4 loads.
//
// One file of ~770 lines on purpose: both kernels read the scratch layout and the tile helpers
// defined once above the first //@kernel line, and each kernel is one pass whose phases share
// registers and barriers; split into files, the layout would be described far from its users.
//
// kernels/fused_attention_head.ts prepends the shape constants (B, T, C, H, V, WG, the arena
// offsets, …: only what the model's shape fixes, so that Mesa's shader cache serves every
// corpus and run length; the rest arrives in uniforms), kernels/philox.wgsl, and one of two
// activation stores: workgroup memory when a sequence's activations fit the device's limit,
// else the sequence's slice of the scratch buffer. Both are reached only through ld4 / st4 /
// st / sync.
//
// Scratch (u32 words): [0] batch counter before the increment · [LOSS_AT, LOSS_AT + B) loss of
// each sequence (f32 bits) · from G_AT, the per-position tensors below · from ACT_AT, B
// activation stores of ACT_USED words (storage variant only).

const N: u32 = B * T; // positions in a batch
const TH: u32 = T * H;
const TT: u32 = T * T;
const VP: u32 = (V + 7u) / 8u * 8u; // logit rows padded to whole 8-wide tiles
// Stands in for -inf, as in kernels/softmax.wgsl: exp(-BIG - max) is exactly 0.
const BIG: f32 = 3.0e38;

// One sequence's activations: f32 offsets into its store, all multiples of 4 (T, C and H are
// multiples of 8, kernels/fused_attention_head.ts checks). A trailing T marks a transposed
// copy, kept where a later phase needs vec4 loads along the other axis.
const X_AT: u32 = 0u; // x = tok_emb[idx] + pos_emb        [T, C]
const K_AT: u32 = X_AT + T * C; // k, q, v                 3 × [T, H]
const Q_AT: u32 = K_AT + TH;
const V_AT: u32 = Q_AT + TH;
const S_AT: u32 = V_AT + TH; // scores, later d(wei)       [T, T]
const W_AT: u32 = S_AT + TT; // wei = softmax(scores)      [T, T]
const WT_AT: u32 = W_AT + TT; //                           [T, T]
const DS_AT: u32 = WT_AT + TT; // d(scores)                [T, T]
// d(scores)ᵀ takes weiᵀ's slot: only the forward pass reads weiᵀ. (The saving keeps blockSize
// 16 at the default widths within llvmpipe's 32 KiB of workgroup memory.)
const DST_AT: u32 = WT_AT; //                              [T, T]
const O_AT: u32 = DS_AT + TT; // out = wei · v             [T, H]
const L_AT: u32 = O_AT + TH; // logits                   [T, VP]
const LT_AT: u32 = L_AT + T * VP; // d(logits)ᵀ            [VP, T]
const LSE_AT: u32 = LT_AT + VP * T; // log-sum-exp per row [T]
const RL_AT: u32 = LSE_AT + T; // loss per row             [T]
const DO_AT: u32 = RL_AT + T; // d(out)                    [T, H]
const DKT_AT: u32 = DO_AT + TH; // dkᵀ, dqᵀ, dvᵀ           3 × [H, T]
const ACT_USED: u32 = DKT_AT + 3u * TH; // kernels/fused_attention_head.ts: activationFloats

// The whole batch's per-position tensors (f32 offsets from G_AT), position n = b·T + t.
const GX_AT: u32 = G_AT; // x                              [N, C]
const GO_AT: u32 = GX_AT + N * C; // out                   [N, H]
const GL_AT: u32 = GO_AT + N * H; // d(logits)             [N, VP]
const GD_AT: u32 = GL_AT + N * VP; // dk, dq, dv           3 × [N, H]
const GDX_AT: u32 = GD_AT + 3u * N * H; // d(x)            [N, C]
const GID_AT: u32 = GDX_AT + N * C; // token ids (u32)     [N]
const G_END: u32 = GID_AT + (N + 3u) / 4u * 4u; // kernels/fused_attention_head.ts: scratchLayout

fn weight_at(which: u32) -> u32 {
  return select(select(VALUE_AT, QUERY_AT, which == 1u), KEY_AT, which == 0u);
}

// A 4×4 tile as rows.
struct Tile {
  r0: vec4<f32>,
  r1: vec4<f32>,
  r2: vec4<f32>,
  r3: vec4<f32>,
}

fn zero_tile() -> Tile {
  return Tile(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
}

// m + a ⊗ b: a holds the tile's four row values, b its four column values. (Tiles pass by
// value: naga 29's SPIR-V backend panics on pointers to struct members.)
fn outer_add(m: Tile, a: vec4<f32>, b: vec4<f32>) -> Tile {
  return Tile(m.r0 + a.x * b, m.r1 + a.y * b, m.r2 + a.z * b, m.r3 + a.w * b);
}

// An 8×8 tile as four 4×4 quadrants.
struct Tile8 {
  q00: Tile,
  q01: Tile,
  q10: Tile,
  q11: Tile,
}

// Row k (0…3) of a 4×4 tile, and row r (0…7) of an 8×8 tile's left or right half. Loops over
// rows through these keep one copy of a store in the shader instead of one per row: the
// kernels' compile time on llvmpipe grows with every inlined load and store.
fn tile_row(m: Tile, k: u32) -> vec4<f32> {
  return select(select(m.r3, m.r2, k == 2u), select(m.r1, m.r0, k == 0u), k < 2u);
}

fn tile8_row(m: Tile8, r: u32, right: bool) -> vec4<f32> {
  let k = r & 3u;
  let top = select(tile_row(m.q00, k), tile_row(m.q01, k), right);
  let bottom = select(tile_row(m.q10, k), tile_row(m.q11, k), right);
  return select(bottom, top, r < 4u);
}

fn zero_tile8() -> Tile8 {
  return Tile8(zero_tile(), zero_tile(), zero_tile(), zero_tile());
}

// m + a ⊗ b for eight row values (a0, a1) and eight column values (b0, b1).
fn outer_add8(m: Tile8, a0: vec4<f32>, a1: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>) -> Tile8 {
  return Tile8(outer_add(m.q00, a0, b0), outer_add(m.q01, a0, b1), outer_add(m.q10, a1, b0), outer_add(m.q11, a1, b1));
}

//@kernel sequence
struct Params {
  key: vec2<u32>,
  nt: u32, // tokens in the split
  counter: u32, // counters slot: the batch number (incremented by `update` / `finish`)
  // 1 when training (backward pass and the per-position tensors for `update`), 0 to evaluate.
  // A uniform rather than a constant: training and evaluation share one shader, which llvmpipe
  // then compiles once, during the harness's setup (its step-0 estimate), not in the first
  // chunk of timed training steps.
  with_grad: u32,
}

@group(0) @binding(0) var<storage, read> tokens: array<u32>;
@group(0) @binding(1) var<storage, read> counters: array<u32>;
@group(0) @binding(2) var<storage, read> params: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> scratch: array<vec4<u32>>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> ids: array<u32, T>;
var<workgroup> tgt: array<u32, T>;

fn ld(i: u32) -> f32 {
  return ld4(i & ~3u)[i & 3u];
}

// Four consecutive parameters from arena float offset i (a multiple of 4).
fn w4(i: u32) -> vec4<f32> {
  return params[i >> 2u];
}

// Four floats into the scratch buffer at float offset i (a multiple of 4).
fn scratch_store4(i: u32, x: vec4<f32>) {
  scratch[i >> 2u] = bitcast<vec4<u32>>(x);
}

fn put_word(i: u32, x: u32) {
  scratch[i >> 2u][i & 3u] = x;
}

fn store_tile(m: Tile, at: u32, stride: u32) {
  st4(at, m.r0);
  st4(at + stride, m.r1);
  st4(at + 2u * stride, m.r2);
  st4(at + 3u * stride, m.r3);
}

fn store_tile_t(m: Tile, at: u32, stride: u32) {
  st4(at, vec4<f32>(m.r0.x, m.r1.x, m.r2.x, m.r3.x));
  st4(at + stride, vec4<f32>(m.r0.y, m.r1.y, m.r2.y, m.r3.y));
  st4(at + 2u * stride, vec4<f32>(m.r0.z, m.r1.z, m.r2.z, m.r3.z));
  st4(at + 3u * stride, vec4<f32>(m.r0.w, m.r1.w, m.r2.w, m.r3.w));
}

fn store_tile8(m: Tile8, at: u32, stride: u32) {
  for (var r = 0u; r < 8u; r = r + 1u) {
    st4(at + r * stride, tile8_row(m, r, false));
    st4(at + r * stride + 4u, tile8_row(m, r, true));
  }
}

fn global_tile(m: Tile, at: u32, stride: u32) {
  scratch_store4(at, m.r0);
  scratch_store4(at + stride, m.r1);
  scratch_store4(at + 2u * stride, m.r2);
  scratch_store4(at + 3u * stride, m.r3);
}

// m + the dot products of four rows (vec4 slices along k) with the four columns of bm.
fn dot_add(m: Tile, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>, bm: mat4x4<f32>) -> Tile {
  return Tile(m.r0 + a0 * bm, m.r1 + a1 * bm, m.r2 + a2 * bm, m.r3 + a3 * bm);
}

// An 8×8 tile of Σ_k A[r, k]·W[c, k] for activation rows A (row stride a_stride, starting at a)
// and parameter rows W (float offsets w0…w7 of their first element), K a multiple of 4.
fn dot_tile8(a: u32, a_stride: u32, w0: vec4<u32>, w1: vec4<u32>, K: u32) -> Tile8 {
  var m = zero_tile8();
  for (var k = 0u; k < K; k = k + 4u) {
    let b0 = mat4x4<f32>(w4(w0.x + k), w4(w0.y + k), w4(w0.z + k), w4(w0.w + k));
    let b1 = mat4x4<f32>(w4(w1.x + k), w4(w1.y + k), w4(w1.z + k), w4(w1.w + k));
    let x = a + k;
    let x0 = ld4(x);
    let x1 = ld4(x + a_stride);
    let x2 = ld4(x + 2u * a_stride);
    let x3 = ld4(x + 3u * a_stride);
    m.q00 = dot_add(m.q00, x0, x1, x2, x3, b0);
    m.q01 = dot_add(m.q01, x0, x1, x2, x3, b1);
    let x4 = ld4(x + 4u * a_stride);
    let x5 = ld4(x + 5u * a_stride);
    let x6 = ld4(x + 6u * a_stride);
    let x7 = ld4(x + 7u * a_stride);
    m.q10 = dot_add(m.q10, x4, x5, x6, x7, b0);
    m.q11 = dot_add(m.q11, x4, x5, x6, x7, b1);
  }
  return m;
}

// Rows of the d(out) and d(x) tiles: 8 where that still leaves a SIMD row's worth of tiles (8),
// else 4, which fills the row at the default shape.
const DO_ROWS: u32 = select(4u, 8u, (T / 8u) * (H / 8u) >= 8u);
const DX_ROWS: u32 = select(4u, 8u, (T / 8u) * (C / 8u) >= 8u);

// m + a ⊗ b for `rows` (4 or 8) row values read from the activation store at a, and eight
// column values (b0, b1); with 4 rows the bottom quadrants stay untouched.
fn outer_add_rows(m: Tile8, a: u32, b0: vec4<f32>, b1: vec4<f32>, rows: u32) -> Tile8 {
  var r = m;
  let a0 = ld4(a);
  r.q00 = outer_add(r.q00, a0, b0);
  r.q01 = outer_add(r.q01, a0, b1);
  if (rows == 8u) {
    let a1 = ld4(a + 4u);
    r.q10 = outer_add(r.q10, a1, b0);
    r.q11 = outer_add(r.q11, a1, b1);
  }
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wid.x;
  bind_act(b);
  // Nothing in this dispatch writes the counters; `update` / `finish` increment them after.
  let c = counters[p.counter];
  if (b == 0u && li == 0u) {
    put_word(0u, c);
  }
  for (var t = li; t < T; t = t + WG) {
    // Row b of batch c, exactly as kernels/batch.wgsl draws it (computed inside the loop so
    // that invocations with no token to copy skip it).
    let offset = philox4x32_10(vec4<u32>(b, c, 0u, 0u), p.key).x % (p.nt - T);
    let id = tokens[offset + t];
    ids[t] = id;
    tgt[t] = tokens[offset + t + 1u];
    if (p.with_grad != 0u) {
      put_word(GID_AT + b * T + t, id);
    }
  }
  sync();
  forward(b, li);
  if (p.with_grad != 0u) {
    backward(b, li);
  }
}

fn forward(b: u32, li: u32) {
  for (var u = li; u < T * C / 4u; u = u + WG) {
    let t = u / (C / 4u);
    let id = min(ids[t], V - 1u);
    let x = w4(TOK_AT + id * C + 4u * (u - t * (C / 4u))) + w4(POS_AT + 4u * u);
    st4(X_AT + 4u * u, x);
    if (p.with_grad != 0u) {
      scratch_store4(GX_AT + b * T * C + 4u * u, x);
    }
  }
  sync();
  // k, q, v = x · Wᵀ (PyTorch Linear layout: W is [H, C]): tiles of 8 positions × 8 outputs.
  for (var u = li; u < 3u * (T / 8u) * (H / 8u); u = u + WG) {
    let which = u / ((T / 8u) * (H / 8u));
    let r = u - which * (T / 8u) * (H / 8u);
    let t0 = 8u * (r / (H / 8u));
    let h0 = 8u * (r % (H / 8u));
    let w = weight_at(which) + h0 * C;
    let rows = vec4<u32>(0u, 1u, 2u, 3u) * C;
    let m = dot_tile8(X_AT + t0 * C, C, w + rows, w + 4u * C + rows, C);
    store_tile8(m, K_AT + which * TH + t0 * H + h0, H);
  }
  sync();
  // Scores SCALE · q · kᵀ; tiles wholly above the diagonal are only masked.
  for (var u = li; u < (T / 4u) * (T / 4u); u = u + WG) {
    let i0 = 4u * (u / (T / 4u));
    let j0 = 4u * (u % (T / 4u));
    var m = zero_tile();
    if (j0 <= i0) {
      for (var h = 0u; h < H; h = h + 4u) {
        let kk = K_AT + j0 * H + h;
        let bm = mat4x4<f32>(ld4(kk), ld4(kk + H), ld4(kk + 2u * H), ld4(kk + 3u * H));
        let q = Q_AT + i0 * H + h;
        m = dot_add(m, ld4(q), ld4(q + H), ld4(q + 2u * H), ld4(q + 3u * H), bm);
      }
    }
    let j = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
    m.r0 = select(vec4<f32>(-BIG), SCALE * m.r0, j <= vec4<u32>(i0));
    m.r1 = select(vec4<f32>(-BIG), SCALE * m.r1, j <= vec4<u32>(i0 + 1u));
    m.r2 = select(vec4<f32>(-BIG), SCALE * m.r2, j <= vec4<u32>(i0 + 2u));
    m.r3 = select(vec4<f32>(-BIG), SCALE * m.r3, j <= vec4<u32>(i0 + 3u));
    store_tile(m, S_AT + i0 * T + j0, T);
  }
  sync();
  // Causal softmax of each row over columns j ≤ i, into wei and weiᵀ.
  for (var i = li; i < T; i = i + WG) {
    let row = S_AT + i * T;
    var mx: f32 = -BIG;
    for (var j = 0u; j <= i; j = j + 1u) {
      mx = max(mx, ld(row + j));
    }
    var total: f32 = 0.0;
    for (var j = 0u; j <= i; j = j + 1u) {
      total = total + exp(ld(row + j) - mx);
    }
    for (var j = 0u; j < T; j = j + 4u) {
      let cols = vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u);
      let w = select(vec4<f32>(0.0), exp(ld4(row + j) - mx) / total, cols <= vec4<u32>(i));
      st4(W_AT + i * T + j, w);
      st(WT_AT + j * T + i, w.x);
      st(WT_AT + (j + 1u) * T + i, w.y);
      st(WT_AT + (j + 2u) * T + i, w.z);
      st(WT_AT + (j + 3u) * T + i, w.w);
    }
  }
  sync();
  // out = wei · v: Σ over j of weiᵀ[j, i0…] ⊗ v[j, h0…] (masked weights are zero).
  for (var u = li; u < (T / 4u) * (H / 4u); u = u + WG) {
    let i0 = 4u * (u / (H / 4u));
    let h0 = 4u * (u % (H / 4u));
    var m = zero_tile();
    for (var j = 0u; j < i0 + 4u; j = j + 1u) {
      m = outer_add(m, ld4(WT_AT + j * T + i0), ld4(V_AT + j * H + h0));
    }
    store_tile(m, O_AT + i0 * H + h0, H);
    if (p.with_grad != 0u) {
      global_tile(m, GO_AT + (b * T + i0) * H + h0, H);
    }
  }
  sync();
  // logits = out · W_lmᵀ + b; the padding columns v ≥ V hold -BIG.
  for (var u = li; u < (T / 8u) * (VP / 8u); u = u + WG) {
    let t0 = 8u * (u / (VP / 8u));
    let v0 = 8u * (u % (VP / 8u));
    let r0 = vec4<u32>(v0) + vec4<u32>(0u, 1u, 2u, 3u);
    let r1 = r0 + vec4<u32>(4u);
    let last = vec4<u32>(V - 1u);
    let m = dot_tile8(O_AT + t0 * H, H, LMW_AT + min(r0, last) * H, LMW_AT + min(r1, last) * H, H);
    let bias0 = w4(LMB_AT + v0);
    let bias1 = w4(LMB_AT + v0 + 4u);
    let ok0 = r0 < vec4<u32>(V);
    let ok1 = r1 < vec4<u32>(V);
    let l = Tile8(
      logit_rows(m.q00, bias0, ok0),
      logit_rows(m.q01, bias1, ok1),
      logit_rows(m.q10, bias0, ok0),
      logit_rows(m.q11, bias1, ok1),
    );
    store_tile8(l, L_AT + t0 * VP + v0, VP);
  }
  sync();
  // Cross-entropy of each row (the padding's exp is exactly 0).
  for (var t = li; t < T; t = t + WG) {
    let row = L_AT + t * VP;
    var m4 = vec4<f32>(-BIG);
    for (var v = 0u; v < VP; v = v + 4u) {
      m4 = max(m4, ld4(row + v));
    }
    let mx = max(max(m4.x, m4.y), max(m4.z, m4.w));
    var s4 = vec4<f32>(0.0);
    for (var v = 0u; v < VP; v = v + 4u) {
      s4 = s4 + exp(ld4(row + v) - mx);
    }
    let lse = mx + log((s4.x + s4.y) + (s4.z + s4.w));
    st(LSE_AT + t, lse);
    let y = tgt[t];
    var loss = lse - ld(row + min(y, V - 1u));
    if (y >= V || ids[t] >= V) {
      // A token outside the vocabulary poisons the loss instead of reading a neighbour row.
      loss = bitcast<f32>(0x7fc00000u | (y & 0u));
    }
    st(RL_AT + t, loss);
  }
  sync();
  if (li == 0u) {
    var sum: f32 = 0.0;
    for (var t = 0u; t < T; t = t + 1u) {
      sum = sum + ld(RL_AT + t);
    }
    put_word(LOSS_AT + b, bitcast<u32>(sum));
  }
}

fn logit_rows(m: Tile, bias: vec4<f32>, ok: vec4<bool>) -> Tile {
  return Tile(
    select(vec4<f32>(-BIG), m.r0 + bias, ok),
    select(vec4<f32>(-BIG), m.r1 + bias, ok),
    select(vec4<f32>(-BIG), m.r2 + bias, ok),
    select(vec4<f32>(-BIG), m.r3 + bias, ok),
  );
}

// (softmax(logits) − onehot(y)) / N for four logits of one row, from column v0, as
// kernels/cross_entropy.wgsl computes d(logits).
fn dlogit(l: vec4<f32>, lse: f32, v0: u32, y: u32) -> vec4<f32> {
  let hit = vec4<u32>(v0) + vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(y);
  return (exp(l - lse) - select(vec4<f32>(0.0), vec4<f32>(1.0), hit)) * (1.0 / f32(N));
}

fn backward(b: u32, li: u32) {
  // d(mean loss)/d(logits) in 4×4 tiles, transposed for d(out) and row-major for `update`;
  // the padding gets 0.
  for (var u = li; u < (T / 4u) * (VP / 4u); u = u + WG) {
    let t0 = 4u * (u / (VP / 4u));
    let v0 = 4u * (u % (VP / 4u));
    let lse = ld4(LSE_AT + t0);
    let at = L_AT + t0 * VP + v0;
    let d = Tile(
      dlogit(ld4(at), lse.x, v0, tgt[t0]),
      dlogit(ld4(at + VP), lse.y, v0, tgt[t0 + 1u]),
      dlogit(ld4(at + 2u * VP), lse.z, v0, tgt[t0 + 2u]),
      dlogit(ld4(at + 3u * VP), lse.w, v0, tgt[t0 + 3u]),
    );
    store_tile_t(d, LT_AT + v0 * T + t0, T);
    global_tile(d, GL_AT + (b * T + t0) * VP + v0, VP);
  }
  sync();
  // d(out) = d(logits) · W_lm: Σ over v of d(logits)ᵀ[v, t0…] ⊗ W_lm[v, h0…], in tiles of
  // DO_ROWS positions × 8 outputs.
  for (var u = li; u < (T / DO_ROWS) * (H / 8u); u = u + WG) {
    let t0 = DO_ROWS * (u / (H / 8u));
    let h0 = 8u * (u % (H / 8u));
    var m = zero_tile8();
    for (var v = 0u; v < V; v = v + 1u) {
      let a = LT_AT + v * T + t0;
      let w = LMW_AT + v * H + h0;
      m = outer_add_rows(m, a, w4(w), w4(w + 4u), DO_ROWS);
    }
    store_tile(m.q00, DO_AT + t0 * H + h0, H);
    store_tile(m.q01, DO_AT + t0 * H + h0 + 4u, H);
    if (DO_ROWS == 8u) {
      store_tile(m.q10, DO_AT + (t0 + 4u) * H + h0, H);
      store_tile(m.q11, DO_AT + (t0 + 4u) * H + h0 + 4u, H);
    }
  }
  sync();
  // d(wei) = d(out) · vᵀ (into the scores' slot), and dv = weiᵀ · d(out).
  let tt_units = (T / 4u) * (T / 4u);
  for (var u = li; u < tt_units + (T / 4u) * (H / 4u); u = u + WG) {
    if (u < tt_units) {
      let i0 = 4u * (u / (T / 4u));
      let j0 = 4u * (u % (T / 4u));
      var m = zero_tile();
      if (j0 <= i0) {
        for (var h = 0u; h < H; h = h + 4u) {
          let vv = V_AT + j0 * H + h;
          let bm = mat4x4<f32>(ld4(vv), ld4(vv + H), ld4(vv + 2u * H), ld4(vv + 3u * H));
          let d = DO_AT + i0 * H + h;
          m = dot_add(m, ld4(d), ld4(d + H), ld4(d + 2u * H), ld4(d + 3u * H), bm);
        }
      }
      store_tile(m, S_AT + i0 * T + j0, T);
    } else {
      let r = u - tt_units;
      let j0 = 4u * (r / (H / 4u));
      let h0 = 4u * (r % (H / 4u));
      var m = zero_tile();
      for (var i = j0; i < T; i = i + 1u) {
        m = outer_add(m, ld4(W_AT + i * T + j0), ld4(DO_AT + i * H + h0));
      }
      store_tile_t(m, DKT_AT + 2u * TH + h0 * T + j0, T);
      global_tile(m, GD_AT + 2u * N * H + (b * T + j0) * H + h0, H);
    }
  }
  sync();
  // Softmax backward, as kernels/softmax.wgsl: SCALE · wei · (d(wei) − Σ d(wei)·wei).
  for (var i = li; i < T; i = i + WG) {
    var dot: f32 = 0.0;
    for (var j = 0u; j <= i; j = j + 1u) {
      dot = dot + ld(S_AT + i * T + j) * ld(W_AT + i * T + j);
    }
    for (var j = 0u; j < T; j = j + 4u) {
      let ds = SCALE * ld4(W_AT + i * T + j) * (ld4(S_AT + i * T + j) - dot);
      st4(DS_AT + i * T + j, ds);
      st(DST_AT + j * T + i, ds.x);
      st(DST_AT + (j + 1u) * T + i, ds.y);
      st(DST_AT + (j + 2u) * T + i, ds.z);
      st(DST_AT + (j + 3u) * T + i, ds.w);
    }
  }
  sync();
  // dk = d(scores)ᵀ · q and dq = d(scores) · k (masked entries of d(scores) are zero).
  for (var u = li; u < 2u * (T / 4u) * (H / 4u); u = u + WG) {
    let which = u / ((T / 4u) * (H / 4u));
    let r = u - which * (T / 4u) * (H / 4u);
    let t0 = 4u * (r / (H / 4u));
    let h0 = 4u * (r % (H / 4u));
    var m = zero_tile();
    if (which == 0u) {
      for (var i = t0; i < T; i = i + 1u) {
        m = outer_add(m, ld4(DS_AT + i * T + t0), ld4(Q_AT + i * H + h0));
      }
    } else {
      for (var j = 0u; j < t0 + 4u; j = j + 1u) {
        m = outer_add(m, ld4(DST_AT + j * T + t0), ld4(K_AT + j * H + h0));
      }
    }
    store_tile_t(m, DKT_AT + which * TH + h0 * T + t0, T);
    global_tile(m, GD_AT + which * N * H + (b * T + t0) * H + h0, H);
  }
  sync();
  // d(x) = dk · Wk + dq · Wq + dv · Wv, only for `update` (the embeddings' gradients), in
  // tiles of DX_ROWS positions × 8 columns.
  for (var u = li; u < (T / DX_ROWS) * (C / 8u); u = u + WG) {
    let t0 = DX_ROWS * (u / (C / 8u));
    let c0 = 8u * (u % (C / 8u));
    var m = zero_tile8();
    for (var h = 0u; h < H; h = h + 1u) {
      for (var which = 0u; which < 3u; which = which + 1u) {
        let a = DKT_AT + which * TH + h * T + t0;
        let w = weight_at(which) + h * C + c0;
        m = outer_add_rows(m, a, w4(w), w4(w + 4u), DX_ROWS);
      }
    }
    let at = GDX_AT + (b * T + t0) * C + c0;
    global_tile(m.q00, at, C);
    global_tile(m.q01, at + 4u, C);
    if (DX_ROWS == 8u) {
      global_tile(m.q10, at + 4u * C, C);
      global_tile(m.q11, at + 4u * C + 4u, C);
    }
  }
}

//@kernel update
// Units of work, each owned by one invocation (updateRows in kernels/fused_attention_head.ts):
//   lm_head.weight 8×8 tiles · key/query/value weight 8×8 tiles · token table 8 rows × 4 columns
//   · lm_head.bias 4 entries · position table 4 entries.
alias AdamwLane = vec4<f32>;

struct Params {
  adamw: Adamw, // kernels/adamw_step.wgsl
  // The uniform layout rule puts a struct member's successor 16 bytes on: word 12, not 9.
  @align(16) counter: u32,
  capacity: u32, // slots in losses
  // 1 for an evaluation batch: only the mean loss and the counter increment (the evaluation
  // shares this shader so that llvmpipe compiles it during the harness's setup).
  finish_only: u32,
}

@group(0) @binding(0) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> scratch: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read_write> counters: array<u32>;
@group(0) @binding(5) var<storage, read_write> losses: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

var<private> step_size: f32; // lr / (1 − β₁ᵗ)
var<private> sqrt_bc2: f32; // √(1 − β₂ᵗ)

fn word(i: u32) -> u32 {
  return scratch[i >> 2u][i & 3u];
}

// Four floats from the scratch buffer at float offset i (a multiple of 4): the per-position
// tensors the sequence kernel stored with scratch_store4.
fn scratch_load4(i: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(scratch[i >> 2u]);
}

// AdamW on the four parameters at arena float offset i (a multiple of 4), as kernels/adamw.wgsl.
fn adam4(i: u32, g: vec4<f32>) {
  let e = i >> 2u;
  let next = adamw_step(p.adamw, params[e], g, m[e], v[e], step_size, sqrt_bc2);
  m[e] = next.m;
  v[e] = next.v;
  params[e] = next.param;
}

// Σ over positions n of a[n, r0…r0+8] ⊗ b[n, c0…c0+8], n in increasing order.
fn grad_tile8(a: u32, a_stride: u32, b: u32, b_stride: u32) -> Tile8 {
  var acc = zero_tile8();
  for (var n = 0u; n < N; n = n + 1u) {
    let x = a + n * a_stride;
    let y = b + n * b_stride;
    acc = outer_add8(acc, scratch_load4(x), scratch_load4(x + 4u), scratch_load4(y), scratch_load4(y + 4u));
  }
  return acc;
}

const LMW_UNITS: u32 = (VP / 8u) * (H / 8u);
const QKV_UNITS: u32 = 3u * (H / 8u) * (C / 8u);
const TOK_UNITS: u32 = (VP / 8u) * (C / 4u);
const LMB_UNITS: u32 = VP / 4u;
const POS_UNITS: u32 = T * C / 4u;
const UNITS: u32 = LMW_UNITS + QKV_UNITS + TOK_UNITS + LMB_UNITS + POS_UNITS;
// Each kind's units padded to whole SIMD rows of 8 (the two weight-tile kinds share their loop,
// so they pad together): a row of invocations then runs one kind's loop, not two.
const HEAVY_UNITS: u32 = LMW_UNITS + QKV_UNITS;
const HEAVY_ROWS: u32 = (HEAVY_UNITS + 7u) / 8u;
const TOK_ROWS: u32 = (TOK_UNITS + 7u) / 8u;
const LMB_ROWS: u32 = (LMB_UNITS + 7u) / 8u;
const POS_ROWS: u32 = (POS_UNITS + 7u) / 8u;
const ROWS: u32 = HEAVY_ROWS + TOK_ROWS + LMB_ROWS + POS_ROWS; // fused_attention_head.ts: updateRows

// The unit at padded position i (row i / 8, lane i % 8), or UNITS for padding.
fn unit_at(i: u32) -> u32 {
  let row = i / 8u;
  let lane = i % 8u;
  var first = 0u; // the kind's first unit
  var count = HEAVY_UNITS;
  var k = row; // the row within the kind
  if (row >= HEAVY_ROWS) {
    k = row - HEAVY_ROWS;
    first = HEAVY_UNITS;
    count = TOK_UNITS;
    if (k >= TOK_ROWS) {
      k = k - TOK_ROWS;
      first = first + TOK_UNITS;
      count = LMB_UNITS;
      if (k >= LMB_ROWS) {
        k = k - LMB_ROWS;
        first = first + LMB_UNITS;
        count = POS_UNITS;
      }
    }
  }
  return select(UNITS, first + 8u * k + lane, 8u * k + lane < count);
}

fn run_unit(u: u32) {
  if (u < LMW_UNITS + QKV_UNITS) {
    // One 8×8 tile of a weight gradient, Σ_n a[n, r] · b[n, c]. Both kinds share the loop, so a
    // SIMD row holding both runs it once (llvmpipe executes every branch some lane takes).
    var a = 0u; // rows: d(logits) for lm_head, d(k|q|v) for the head's weights
    var a_stride = 0u;
    var x = 0u; // columns: out for lm_head, x for the head's weights
    var x_stride = 0u;
    var at = 0u; // the parameters' arena offset
    var stride = 0u;
    var rows = 8u;
    if (u < LMW_UNITS) {
      // d(W_lm)[v, h] = Σ_n d(logits)[n, v] · out[n, h]; rows past V do not exist.
      let v0 = 8u * (u / (H / 8u));
      let h0 = 8u * (u % (H / 8u));
      a = GL_AT + v0;
      a_stride = VP;
      x = GO_AT + h0;
      x_stride = H;
      at = LMW_AT + v0 * H + h0;
      stride = H;
      rows = min(V - v0, 8u);
    } else {
      // d(W)[h, c] = Σ_n d(k|q|v)[n, h] · x[n, c].
      let r = u - LMW_UNITS;
      let which = r / ((H / 8u) * (C / 8u));
      let hc = r - which * (H / 8u) * (C / 8u);
      let h0 = 8u * (hc / (C / 8u));
      let c0 = 8u * (hc % (C / 8u));
      a = GD_AT + which * N * H + h0;
      a_stride = H;
      x = GX_AT + c0;
      x_stride = C;
      at = weight_at(which) + h0 * C + c0;
      stride = C;
    }
    adam_tile8(grad_tile8(a, a_stride, x, x_stride), at, stride, rows, true);
  } else if (u < LMW_UNITS + QKV_UNITS + TOK_UNITS) {
    // Token table rows v0…v0+7, columns c0…c0+3: Σ of d(x) over the positions whose input is
    // the row, in position order (as kernels/embedding.wgsl's backward gathers).
    let r = u - LMW_UNITS - QKV_UNITS;
    let v0 = 8u * (r / (C / 4u));
    let c0 = 4u * (r % (C / 4u));
    var lo = zero_tile();
    var hi = zero_tile();
    for (var n = 0u; n < N; n = n + 1u) {
      let id = word(GID_AT + n);
      if (id >= v0 && id < v0 + 8u) {
        let d = scratch_load4(GDX_AT + n * C + c0);
        let k = id - v0;
        lo.r0 = lo.r0 + select(vec4<f32>(0.0), d, k == 0u);
        lo.r1 = lo.r1 + select(vec4<f32>(0.0), d, k == 1u);
        lo.r2 = lo.r2 + select(vec4<f32>(0.0), d, k == 2u);
        lo.r3 = lo.r3 + select(vec4<f32>(0.0), d, k == 3u);
        hi.r0 = hi.r0 + select(vec4<f32>(0.0), d, k == 4u);
        hi.r1 = hi.r1 + select(vec4<f32>(0.0), d, k == 5u);
        hi.r2 = hi.r2 + select(vec4<f32>(0.0), d, k == 6u);
        hi.r3 = hi.r3 + select(vec4<f32>(0.0), d, k == 7u);
      }
    }
    adam_tile8(Tile8(lo, zero_tile(), hi, zero_tile()), TOK_AT + v0 * C + c0, C, min(V - v0, 8u), false);
  } else {
    var acc = vec4<f32>(0.0);
    var at = 0u;
    if (u < LMW_UNITS + QKV_UNITS + TOK_UNITS + LMB_UNITS) {
      // d(b_lm)[v] = Σ_n d(logits)[n, v]; past V this updates the bias's zero padding, which
      // stays zero.
      let v0 = 4u * (u - LMW_UNITS - QKV_UNITS - TOK_UNITS);
      for (var n = 0u; n < N; n = n + 1u) {
        acc = acc + scratch_load4(GL_AT + n * VP + v0);
      }
      at = LMB_AT + v0;
    } else {
      // d(pos)[t, c] = Σ_b d(x)[b·T + t, c].
      let r = u - LMW_UNITS - QKV_UNITS - TOK_UNITS - LMB_UNITS;
      let t = r / (C / 4u);
      let c0 = 4u * (r % (C / 4u));
      for (var b = 0u; b < B; b = b + 1u) {
        acc = acc + scratch_load4(GDX_AT + (b * T + t) * C + c0);
      }
      at = POS_AT + t * C + c0;
    }
    adam4(at, acc);
  }
}

// AdamW on the first `rows` rows of an 8-row gradient tile: both vec4 halves of each row when
// `wide`, else the left one.
fn adam_tile8(g: Tile8, at: u32, stride: u32, rows: u32, wide: bool) {
  for (var r = 0u; r < rows; r = r + 1u) {
    for (var half = 0u; half < select(1u, 2u, wide); half = half + 1u) {
      adam4(at + r * stride + 4u * half, tile8_row(g, r, half == 1u));
    }
  }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = word(0u);
  if (wid.x == 0u && li == 0u) {
    var sum: f32 = 0.0;
    for (var b = 0u; b < B; b = b + 1u) {
      sum = sum + bitcast<f32>(word(LOSS_AT + b));
    }
    losses[c % p.capacity] = sum * (1.0 / f32(N));
    counters[p.counter] = c + 1u;
  }
  if (p.finish_only != 0u) {
    return;
  }
  // AdamW's step t is the batch number after the increment, as the graph path's adamw reads it.
  let t = f32(max(c + 1u, 1u));
  step_size = p.adamw.lr / one_minus_exp(t * p.adamw.ln_beta1);
  sqrt_bc2 = sqrt(one_minus_exp(t * p.adamw.ln_beta2));
  // Rows of 8 units dealt to the workgroups in turn: each gets a share of every kind (they
  // differ in cost), and each SIMD row runs a single kind.
  for (var k = li / 8u; k * nwg.x + wid.x < ROWS; k = k + 8u) {
    let u = unit_at(8u * (k * nwg.x + wid.x) + li % 8u);
    if (u < UNITS) {
      run_unit(u);
    }
  }
}
