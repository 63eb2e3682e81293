/**
 * Writes PyTorch-style state dicts for the tests by hand, independently of seedlab's encoder:
 * `safetensors.torch.save_file(model.state_dict(), path)` produces exactly this layout (an
 * 8-byte header length, a JSON header with `{"__metadata__": {"format": "pt"}}` and one entry
 * per tensor, then the raw little-endian data).
 */

/** One tensor of a fixture: dtype and row-major elements (F16/BF16 as raw 16-bit words). */
export type FixtureTensor =
  | { dtype: "F32"; shape: number[]; values: number[] | Float32Array }
  | { dtype: "F16" | "BF16"; shape: number[]; bits: number[] }
  | { dtype: "I64"; shape: number[]; values: number[] };

/** The bytes of a safetensors file holding `tensors` in order, with PyTorch's metadata. */
export function stateDictBytes(tensors: Record<string, FixtureTensor>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    let bytes: Uint8Array;
    if (t.dtype === "F32") bytes = new Uint8Array(Float32Array.from(t.values).buffer);
    else if (t.dtype === "I64") {
      bytes = new Uint8Array(BigInt64Array.from(t.values.map(BigInt)).buffer);
    } else bytes = new Uint8Array(Uint16Array.from(t.bits).buffer);
    header[name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + bytes.length],
    };
    chunks.push(bytes);
    offset += bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

/** `torch.tril(torch.ones(T, T))`, written out independently of harness/state_dict.ts. */
export function trilFixture(T: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) out.push(j <= i ? 1 : 0);
  return out;
}

/** Deterministic pseudo-random values in [-amp, amp) (a small LCG; the values only need to vary). */
export function lcgValues(n: number, seed: number, amp = 0.5): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.fround((s / 2 ** 32 - 0.5) * 2 * amp);
  });
}

/**
 * The lecture's single-head model's state dict (`AttentionHeadModel` of
 * examples/torch_models.py) with PyTorch's exact names and the `sa_head.tril` buffer.
 */
export function attentionHeadStateDict(
  V: number,
  T: number,
  C: number,
  H: number,
): Record<string, FixtureTensor> {
  const f32 = (shape: number[], seed: number): FixtureTensor => ({
    dtype: "F32",
    shape,
    values: lcgValues(shape.reduce((a, b) => a * b, 1), seed),
  });
  return {
    "token_embedding_table.weight": f32([V, C], 1),
    "position_embedding_table.weight": f32([T, C], 2),
    "sa_head.tril": { dtype: "F32", shape: [T, T], values: trilFixture(T) },
    "sa_head.key.weight": f32([H, C], 3),
    "sa_head.query.weight": f32([H, C], 4),
    "sa_head.value.weight": f32([H, C], 5),
    "lm_head.weight": f32([V, H], 6),
    "lm_head.bias": f32([V], 7),
  };
}
