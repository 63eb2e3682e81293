/**
 * The safetensors file format, written by hand (it is small): an 8-byte little-endian u64
 * header length N, N bytes of UTF-8 JSON header padded with spaces to a multiple of 8, then
 * the raw little-endian tensor bytes. The header maps each tensor name to
 * `{ dtype, shape, data_offsets: [begin, end] }` with offsets relative to the start of the
 * data section, plus an optional `"__metadata__"` map of string to string.
 *
 * seedlab stores F32 and U32 tensors; F16 and BF16 (what PyTorch users often save) are read
 * and written as raw 16-bit words, for `toFloat32` to widen. Other safetensors dtypes are
 * recognised on read so the error can say "unsupported" rather than "unknown".
 */
import { writeFileAtomic } from "./atomic.ts";
import { requireRegularFile } from "./paths.ts";
import { UsageError } from "./errors.ts";

/** A tensor as stored in a safetensors file: dtype, shape and its elements in row-major order. */
export type SafeTensor =
  | { dtype: "F32"; shape: number[]; data: Float32Array }
  | { dtype: "U32"; shape: number[]; data: Uint32Array }
  | { dtype: "F16" | "BF16"; shape: number[]; data: Uint16Array };

/** The contents of a safetensors file. */
export interface SafetensorsFile {
  tensors: Record<string, SafeTensor>;
  metadata: Record<string, string>;
}

const METADATA_KEY = "__metadata__";

// Every dtype of the safetensors specification, with its element size in bytes, so a file
// written by another tool fails with "unsupported" rather than "unknown".
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

// Typed arrays use the host's byte order; the format is little-endian. Every host Deno
// supports today is little-endian, but swapping is cheap insurance against a silent mix-up.
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function swap16InPlace(bytes: Uint8Array): void {
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    const a = bytes[i];
    bytes[i] = bytes[i + 1];
    bytes[i + 1] = a;
  }
}

function swapInPlace(bytes: Uint8Array, width: number): void {
  if (width === 2) swap16InPlace(bytes);
  else swap32InPlace(bytes);
}

function swap32InPlace(bytes: Uint8Array): void {
  for (let i = 0; i + 3 < bytes.length; i += 4) {
    const a = bytes[i], b = bytes[i + 1];
    bytes[i] = bytes[i + 3];
    bytes[i + 1] = bytes[i + 2];
    bytes[i + 2] = b;
    bytes[i + 3] = a;
  }
}

const READABLE = new Set(["F32", "U32", "F16", "BF16"]);

function shapeSize(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function isDim(d: unknown): d is number {
  return typeof d === "number" && Number.isSafeInteger(d) && d >= 0;
}

/** Serialises tensors (in insertion order) and string metadata into safetensors bytes. */
export function encodeSafetensors(
  tensors: Record<string, SafeTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  // The reference implementation writes __metadata__ first; readers do not care, but
  // matching it keeps files byte-comparable with other writers.
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new Error(`metadata ${k}: value must be a string`);
    }
    header[METADATA_KEY] = { ...metadata };
  }
  const entries = Object.entries(tensors);
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === METADATA_KEY) throw new Error(`tensor name ${METADATA_KEY} is reserved`);
    if (!t.shape.every((d) => isDim(d))) {
      throw new Error(`tensor ${name}: shape [${t.shape.join(", ")}] has a non-integer dimension`);
    }
    const okType = t.dtype === "F32"
      ? t.data instanceof Float32Array
      : t.dtype === "U32"
      ? t.data instanceof Uint32Array
      : (t.dtype === "F16" || t.dtype === "BF16") && t.data instanceof Uint16Array;
    if (!okType) throw new Error(`tensor ${name}: dtype ${t.dtype} does not match its data array`);
    if (t.data.length !== shapeSize(t.shape)) {
      throw new Error(
        `tensor ${name}: shape [${t.shape.join(", ")}] needs ${shapeSize(t.shape)} elements, ` +
          `data has ${t.data.length}`,
      );
    }
    const end = offset + t.data.byteLength;
    // defineProperty so a tensor named "__proto__" becomes a key instead of a prototype.
    Object.defineProperty(header, name, {
      value: { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, end] },
      enumerable: true,
      writable: true,
      configurable: true,
    });
    offset = end;
  }

  const json = new TextEncoder().encode(JSON.stringify(header));
  // Padding keeps the data section 8-byte aligned so readers can map it as typed arrays.
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const [, t] of entries) {
    // Copy bytes, not numbers: reading a Float32Array element into a JS number may
    // canonicalise NaN payloads, and the round trip must be bit-exact.
    const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(raw, pos);
    if (!HOST_LITTLE_ENDIAN) {
      swapInPlace(out.subarray(pos, pos + raw.length), t.data.BYTES_PER_ELEMENT);
    }
    pos += raw.length;
  }
  return out;
}

interface HeaderEntry {
  name: string;
  dtype: SafeTensor["dtype"];
  shape: number[];
  begin: number;
  end: number;
}

function parseEntry(name: string, value: unknown, dataLen: number): HeaderEntry {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`tensor ${name}: header entry is not an object`);
  }
  const e = value as Record<string, unknown>;
  for (const key of Object.keys(e)) {
    if (key !== "dtype" && key !== "shape" && key !== "data_offsets") {
      throw new Error(`tensor ${name}: unexpected header field "${key}"`);
    }
  }
  const { dtype, shape, data_offsets: offsets } = e;
  if (typeof dtype !== "string") throw new Error(`tensor ${name}: dtype missing or not a string`);
  if (!Object.hasOwn(DTYPE_BYTES, dtype)) throw new Error(`tensor ${name}: unknown dtype ${dtype}`);
  if (!READABLE.has(dtype)) {
    throw new Error(
      `tensor ${name}: dtype ${dtype} is not supported (seedlab reads F32, F16, BF16 and U32)`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isDim)) {
    throw new Error(`tensor ${name}: shape ${JSON.stringify(shape)} is not a list of sizes`);
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isDim) ||
    offsets[0] > offsets[1]
  ) {
    throw new Error(
      `tensor ${name}: data_offsets ${JSON.stringify(offsets)} is not a [begin, end] pair`,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataLen) {
    throw new Error(
      `tensor ${name}: data_offsets [${begin}, ${end}] outside the ${dataLen}-byte data section`,
    );
  }
  const want = shapeSize(shape) * DTYPE_BYTES[dtype];
  if (end - begin !== want) {
    throw new Error(
      `tensor ${name}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, ` +
        `shape [${shape.join(", ")}] of ${dtype} needs ${want}`,
    );
  }
  return { name, dtype: dtype as SafeTensor["dtype"], shape: [...shape], begin, end };
}

/** Parses and validates safetensors bytes; throws an Error saying what is wrong. */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (bytes.length < 8) {
    throw new Error(
      `truncated header: file is ${bytes.length} bytes, shorter than the 8-byte length prefix`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLenBig = view.getBigUint64(0, true);
  if (headerLenBig > BigInt(bytes.length - 8)) {
    throw new Error(
      `truncated header: header length ${headerLenBig} exceeds the ${
        bytes.length - 8
      } bytes after the length prefix`,
    );
  }
  const headerLen = Number(headerLenBig);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    throw new Error("header is not valid UTF-8");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error("header is not a JSON object");
  }

  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const metadata: [string, string][] = [];
  const entries: HeaderEntry[] = [];
  for (const [name, value] of Object.entries(parsed)) {
    if (name === METADATA_KEY) {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw new Error(`${METADATA_KEY} is not an object`);
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== "string") throw new Error(`metadata ${k}: value is not a string`);
        metadata.push([k, v]);
      }
    } else {
      entries.push(parseEntry(name, value, dataLen));
    }
  }

  // Sorted by (begin, end) the tensors must tile the data section exactly: no gaps, no
  // overlaps, no trailing bytes. Empty tensors sort before a non-empty one at the same offset.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const e of sorted) {
    if (e.begin < expected) {
      throw new Error(
        `tensor ${e.name}: data_offsets [${e.begin}, ${e.end}] overlap the previous tensor, ` +
          `which ends at ${expected}`,
      );
    }
    if (e.begin > expected) {
      throw new Error(
        `tensor ${e.name}: data_offsets [${e.begin}, ${e.end}] leave a gap: ` +
          `the previous tensor ends at ${expected}`,
      );
    }
    expected = e.end;
  }
  if (expected !== dataLen) {
    throw new Error(
      `data section is ${dataLen} bytes but the tensors cover only ${expected} ` +
        `(${dataLen - expected} trailing bytes)`,
    );
  }

  const tensors = entries.map(({ name, dtype, shape, begin, end }): [string, SafeTensor] => {
    // slice() copies into a fresh, aligned buffer: the data section of an arbitrary
    // Uint8Array need not start at a multiple of 4.
    const raw = bytes.slice(dataStart + begin, dataStart + end);
    if (!HOST_LITTLE_ENDIAN) swapInPlace(raw, DTYPE_BYTES[dtype]);
    switch (dtype) {
      case "F32":
        return [name, { dtype, shape, data: new Float32Array(raw.buffer) }];
      case "U32":
        return [name, { dtype, shape, data: new Uint32Array(raw.buffer) }];
      default:
        return [name, { dtype, shape, data: new Uint16Array(raw.buffer) }];
    }
  });
  // fromEntries defines own properties, so names like "__proto__" stay plain keys.
  return { tensors: Object.fromEntries(tensors), metadata: Object.fromEntries(metadata) };
}

/** IEEE 754 binary16 bits → the number they encode (exact: every half is a float). */
export function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/**
 * A floating-point tensor's elements as F32: F32 as stored, F16 and BF16 widened exactly
 * (BF16 is the top half of an F32's bits). Throws for an integer dtype.
 */
export function toFloat32(t: SafeTensor): Float32Array {
  switch (t.dtype) {
    case "F32":
      return t.data;
    case "BF16": {
      const out = new Uint32Array(t.data.length);
      for (let i = 0; i < t.data.length; i++) out[i] = t.data[i] << 16;
      return new Float32Array(out.buffer);
    }
    case "F16":
      return Float32Array.from(t.data, halfToNumber);
    default:
      throw new Error(`a ${t.dtype} tensor holds integers, not floats`);
  }
}

/** Writes a safetensors file atomically (temporary file + fsync + rename). */
export async function saveSafetensors(
  path: string,
  tensors: Record<string, SafeTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** Reads a safetensors file; a missing or corrupt file is a UsageError naming the path. */
export async function loadSafetensors(path: string): Promise<SafetensorsFile> {
  await requireRegularFile(path, "checkpoint");
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`${path}: file not found`);
    throw new UsageError(`${path}: cannot read (${(e as Error).message})`);
  }
  try {
    return decodeSafetensors(bytes);
  } catch (e) {
    throw new UsageError(`${path}: not a valid safetensors file: ${(e as Error).message}`);
  }
}
