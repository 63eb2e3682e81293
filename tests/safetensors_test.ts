import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
  throws as assertThrows,
} from "node:assert/strict";
import { join } from "node:path";
import {
  decodeSafetensors,
  encodeSafetensors,
  halfToNumber,
  loadSafetensors,
  type SafeTensor,
  saveSafetensors,
  toFloat32,
} from "../harness/safetensors.ts";
import { UsageError } from "../harness/errors.ts";

// Builds F32 data from raw bit patterns, so NaN payloads and signed zeros are exactly what
// the test says and never pass through a JS number.
function f32Bits(bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

function bitsOf(t: SafeTensor): number[] {
  return [...new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length)];
}

// Assembles a file from a header object written by the test, independently of the encoder.
function rawFile(header: unknown, data: Uint8Array | number, pad = true): Uint8Array {
  let json = new TextEncoder().encode(JSON.stringify(header));
  if (pad) {
    const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const body = typeof data === "number" ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

function assertDecodeError(bytes: Uint8Array, message: RegExp): void {
  assertThrows(() => decodeSafetensors(bytes), message);
}

Deno.test("safetensors round trip keeps every tensor bit-exact and in order", () => {
  const special = f32Bits([
    0x7fc00000, // quiet NaN
    0x7fc00001, // NaN with a payload
    0xffc00000, // negative NaN
    0x7f800001, // signalling NaN
    0x80000000, // -0
    0x00000001, // smallest denormal
    0x807fffff, // largest negative denormal
    0x7f800000, // +Inf
    0xff800000, // -Inf
    0x3f800000, // 1
  ]);
  const tensors: Record<string, SafeTensor> = {
    "special": { dtype: "F32", shape: [2, 5], data: special },
    "tok_emb.weight": {
      dtype: "F32",
      shape: [3, 4],
      data: Float32Array.from({ length: 12 }, (_, i) => i / 7 - 1),
    },
    "ids": { dtype: "U32", shape: [4], data: new Uint32Array([0, 1, 0x7fffffff, 0xffffffff]) },
    "scalar_f32": { dtype: "F32", shape: [], data: new Float32Array([Math.PI]) },
    "scalar_u32": { dtype: "U32", shape: [], data: new Uint32Array([42]) },
    "empty": { dtype: "F32", shape: [0], data: new Float32Array(0) },
    "empty_2d": { dtype: "U32", shape: [3, 0], data: new Uint32Array(0) },
    "after_empty": { dtype: "F32", shape: [1, 1, 1], data: new Float32Array([-0.5]) },
  };
  const metadata = { "seedlab.seed": "7", "note": "ünïcødé ✓", "empty": "" };
  const bytes = encodeSafetensors(tensors, metadata);
  const got = decodeSafetensors(bytes);
  assertEquals(Object.keys(got.tensors), Object.keys(tensors));
  assertEquals(got.metadata, metadata);
  for (const [name, t] of Object.entries(tensors)) {
    const g = got.tensors[name];
    assertEquals(g.dtype, t.dtype, name);
    assertEquals(g.shape, t.shape, name);
    assertEquals(g.data.constructor, t.data.constructor, name);
    assertEquals(bitsOf(g), bitsOf(t), name);
  }
  // The data section is 8-byte aligned and laid out in the order given.
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assertEquals(headerLen % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  assertEquals(header["tok_emb.weight"].data_offsets, [40, 88]);
  assertEquals(header["empty"].data_offsets, [112, 112]);
  assertEquals(bytes.length, 8 + headerLen + 116);
});

Deno.test("safetensors encodes a tiny file byte for byte", () => {
  const bytes = encodeSafetensors(
    {
      w: { dtype: "F32", shape: [2], data: new Float32Array([1.5, -2]) },
      n: { dtype: "U32", shape: [], data: new Uint32Array([7]) },
    },
    { k: "v" },
  );
  const json = '{"__metadata__":{"k":"v"},' +
    '"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"n":{"dtype":"U32","shape":[],"data_offsets":[8,12]}}';
  assertEquals(json.length, 132);
  const expected = [
    // u64 little-endian header length: 132 rounded up to 136 = 0x88
    ...[0x88, 0, 0, 0, 0, 0, 0, 0],
    ...[...json].map((c) => c.charCodeAt(0)),
    ...[0x20, 0x20, 0x20, 0x20], // four spaces of padding
    ...[0x00, 0x00, 0xc0, 0x3f], // 1.5f = 0x3fc00000, little-endian
    ...[0x00, 0x00, 0x00, 0xc0], // -2f = 0xc0000000
    ...[0x07, 0x00, 0x00, 0x00], // 7u
  ];
  assertEquals([...bytes], expected);
  assertEquals(bytes.length, 8 + 136 + 12);
});

Deno.test("safetensors without metadata writes no __metadata__ and decodes to {}", () => {
  const bytes = encodeSafetensors({ x: { dtype: "U32", shape: [1], data: new Uint32Array([1]) } });
  assert(!new TextDecoder().decode(bytes).includes("__metadata__"));
  assertEquals(decodeSafetensors(bytes).metadata, {});
  assertEquals(Object.keys(decodeSafetensors(encodeSafetensors({})).tensors), []);
});

Deno.test("safetensors decodes files other writers produce", () => {
  // Metadata last, no padding, tensors stored out of header order, and a data section that
  // starts at an odd address inside a larger buffer.
  const data = new Uint8Array([0x05, 0, 0, 0, 0, 0, 0x80, 0x3f]);
  const file = rawFile(
    {
      b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
      a: { dtype: "U32", shape: [1], data_offsets: [0, 4] },
      __metadata__: { format: "pt" },
    },
    data,
    false,
  );
  const shifted = new Uint8Array(file.length + 3);
  shifted.set(file, 3);
  const got = decodeSafetensors(shifted.subarray(3));
  assertEquals(Object.keys(got.tensors), ["b", "a"]);
  assertEquals([...got.tensors.a.data], [5]);
  assertEquals([...got.tensors.b.data], [1]);
  assertEquals(got.metadata, { format: "pt" });
});

Deno.test("safetensors keeps names like __proto__ as plain keys", () => {
  const u32 = (v: number): SafeTensor => ({ dtype: "U32", shape: [1], data: new Uint32Array([v]) });
  const bytes = encodeSafetensors({
    // Computed, because a literal "__proto__" key would set the prototype instead.
    ["__proto__"]: u32(9),
    "constructor": u32(8),
  });
  const got = decodeSafetensors(bytes);
  assertEquals(Object.keys(got.tensors), ["__proto__", "constructor"]);
  assert(Object.hasOwn(got.tensors, "__proto__"));
  assertEquals(Object.getPrototypeOf(got.tensors), Object.prototype);
  assertEquals([...got.tensors["__proto__"].data], [9]);
});

Deno.test("safetensors rejects a truncated header", () => {
  assertDecodeError(new Uint8Array(0), /truncated header: file is 0 bytes/);
  assertDecodeError(new Uint8Array(5), /truncated header: file is 5 bytes/);
  const good = encodeSafetensors({ x: { dtype: "F32", shape: [2], data: new Float32Array(2) } });
  assertDecodeError(
    good.subarray(0, 20),
    /truncated header: header length \d+ exceeds the 12 bytes/,
  );
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 1n << 63n, true);
  assertDecodeError(huge, /truncated header: header length 9223372036854775808 exceeds/);
});

Deno.test("safetensors rejects a header that is not a JSON object of tensors", () => {
  const withHeader = (text: string | Uint8Array) => {
    const json = typeof text === "string" ? new TextEncoder().encode(text) : text;
    const out = new Uint8Array(8 + json.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    return out;
  };
  assertDecodeError(withHeader('{"x": {"dtype": "F32",'), /header is not valid JSON/);
  assertDecodeError(withHeader("[1, 2]"), /header is not a JSON object/);
  assertDecodeError(withHeader("null    "), /header is not a JSON object/);
  assertDecodeError(withHeader(new Uint8Array([0x7b, 0xff, 0x7d])), /not valid UTF-8/);
  assertDecodeError(rawFile({ x: 3 }, 0), /tensor x: header entry is not an object/);
  assertDecodeError(
    rawFile({ x: { shape: [0], data_offsets: [0, 0] } }, 0),
    /tensor x: dtype missing/,
  );
  assertDecodeError(
    rawFile({ x: { dtype: "F32", shape: [0], data_offsets: [0, 0], extra: 1 } }, 0),
    /tensor x: unexpected header field "extra"/,
  );
  assertDecodeError(rawFile({ __metadata__: [] }, 0), /__metadata__ is not an object/);
  assertDecodeError(rawFile({ __metadata__: { n: 1 } }, 0), /metadata n: value is not a string/);
});

Deno.test("safetensors rejects unknown and unsupported dtypes", () => {
  const entry = (dtype: string) => rawFile({ x: { dtype, shape: [1], data_offsets: [0, 8] } }, 8);
  assertDecodeError(entry("F33"), /tensor x: unknown dtype F33/);
  assertDecodeError(entry("toString"), /tensor x: unknown dtype toString/);
  assertDecodeError(
    entry("I64"),
    /tensor x: dtype I64 is not supported \(seedlab reads F32, F16, BF16 and U32\)/,
  );
  assertDecodeError(entry("F64"), /dtype F64 is not supported/);
});

Deno.test("safetensors reads F16 and BF16 and toFloat32 widens them exactly", () => {
  // Bit patterns written by hand: 1, -2, 0.5 + 2^-11 (needs the 10-bit fraction), smallest
  // subnormal 2^-24, +Inf, and for BF16 1, -2, 3.140625, 2^-133 (subnormal).
  const half = new Uint16Array([0x3c00, 0xc000, 0x3801, 0x0001, 0x7c00]);
  const brain = new Uint16Array([0x3f80, 0xc000, 0x4049, 0x0001]);
  const bytes = encodeSafetensors({
    h: { dtype: "F16", shape: [5], data: half },
    b: { dtype: "BF16", shape: [2, 2], data: brain },
  });
  const { tensors } = decodeSafetensors(bytes);
  assertEquals(tensors.h.dtype, "F16");
  assertEquals([...tensors.h.data], [...half]);
  assertEquals([...toFloat32(tensors.h)], [1, -2, 0.5 + 2 ** -11, 2 ** -24, Infinity]);
  assertEquals([...toFloat32(tensors.b)], [1, -2, 3.140625, Math.fround(2 ** -133)]);
  assert(Number.isNaN(halfToNumber(0x7e00)));
  assertThrows(
    () => toFloat32({ dtype: "U32", shape: [1], data: new Uint32Array(1) }),
    /holds integers/,
  );
});

Deno.test("safetensors rejects bad shapes and offsets", () => {
  const one = (shape: unknown, offsets: unknown, dataLen: number) =>
    rawFile({ x: { dtype: "F32", shape, data_offsets: offsets } }, dataLen);
  assertDecodeError(one([-1], [0, 4], 4), /tensor x: shape \[-1\] is not a list of sizes/);
  assertDecodeError(one([1.5], [0, 4], 4), /tensor x: shape \[1.5\] is not a list of sizes/);
  assertDecodeError(one("2", [0, 4], 4), /tensor x: shape "2" is not a list of sizes/);
  assertDecodeError(one([1], [4, 0], 4), /data_offsets \[4,0\] is not a \[begin, end\] pair/);
  assertDecodeError(one([1], [0], 4), /data_offsets \[0\] is not a \[begin, end\] pair/);
  assertDecodeError(one([1], [0, "4"], 4), /is not a \[begin, end\] pair/);
  assertDecodeError(
    one([30], [0, 120], 40),
    /tensor x: data_offsets \[0, 120\] outside the 40-byte data section/,
  );
  assertDecodeError(
    one([3], [0, 8], 8),
    /tensor x: data_offsets \[0, 8\] span 8 bytes, shape \[3\] of F32 needs 12/,
  );
});

Deno.test("safetensors rejects overlaps, gaps and trailing bytes in the data section", () => {
  const two = (a: [number, number], b: [number, number], dataLen: number) =>
    rawFile({
      a: { dtype: "F32", shape: [(a[1] - a[0]) / 4], data_offsets: a },
      b: { dtype: "F32", shape: [(b[1] - b[0]) / 4], data_offsets: b },
    }, dataLen);
  assertDecodeError(
    two([0, 8], [4, 12], 12),
    /tensor b: data_offsets \[4, 12\] overlap the previous tensor, which ends at 8/,
  );
  assertDecodeError(
    two([0, 8], [0, 8], 8),
    /data_offsets \[0, 8\] overlap the previous tensor, which ends at 8/,
  );
  assertDecodeError(
    two([0, 4], [8, 12], 12),
    /tensor b: data_offsets \[8, 12\] leave a gap: the previous tensor ends at 4/,
  );
  assertDecodeError(two([4, 8], [8, 12], 12), /tensor a: .* leave a gap: .* ends at 0/);
  assertDecodeError(
    two([0, 4], [4, 8], 16),
    /data section is 16 bytes but the tensors cover only 8 \(8 trailing bytes\)/,
  );
  // A file cut short inside its data section.
  const good = encodeSafetensors({
    a: { dtype: "F32", shape: [4], data: new Float32Array(4) },
    b: { dtype: "F32", shape: [4], data: new Float32Array(4) },
  });
  assertDecodeError(
    good.subarray(0, good.length - 3),
    /tensor b: data_offsets \[16, 32\] outside the 29-byte data section/,
  );
});

Deno.test("safetensors encoder refuses inconsistent tensors", () => {
  assertThrows(
    () => encodeSafetensors({ x: { dtype: "F32", shape: [2, 3], data: new Float32Array(5) } }),
    /tensor x: shape \[2, 3\] needs 6 elements, data has 5/,
  );
  assertThrows(
    () =>
      encodeSafetensors({
        x: { dtype: "U32", shape: [1], data: new Float32Array(1) } as unknown as SafeTensor,
      }),
    /tensor x: dtype U32 does not match its data array/,
  );
  assertThrows(
    () => encodeSafetensors({ x: { dtype: "F32", shape: [0.5], data: new Float32Array(0) } }),
    /non-integer dimension/,
  );
  assertThrows(
    () =>
      encodeSafetensors({ __metadata__: { dtype: "F32", shape: [], data: new Float32Array(1) } }),
    /reserved/,
  );
});

Deno.test("safetensors save/load goes through the file system; bad files are UsageErrors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "seedlab-safetensors-" });
  try {
    const path = join(dir, "sub", "model.safetensors");
    const tensors: Record<string, SafeTensor> = {
      w: { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    };
    await saveSafetensors(path, tensors, { a: "b" });
    const got = await loadSafetensors(path);
    assertEquals(got.metadata, { a: "b" });
    assertEquals([...got.tensors.w.data], [1, 2, 3, 4]);
    assertEquals((await Array.fromAsync(Deno.readDir(join(dir, "sub")))).length, 1);

    const missing = join(dir, "nope.safetensors");
    await assertRejects(loadSafetensors(missing), (e: unknown) => {
      assert(e instanceof UsageError);
      assert(e.message.includes(missing) && e.message.includes("not found"), e.message);
      return true;
    });

    const corrupt = join(dir, "corrupt.safetensors");
    await Deno.writeFile(corrupt, (await Deno.readFile(path)).subarray(0, 30));
    await assertRejects(loadSafetensors(corrupt), (e: unknown) => {
      assert(e instanceof UsageError);
      assert(e.message.startsWith(corrupt), e.message);
      assert(e.message.includes("truncated header"), e.message);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
