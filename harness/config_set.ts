/**
 * `--set dotted.key=value` values: parsed as the type their key expects, and written back
 * (formatSets) so that they resolve to the same values.
 */
import { UsageError } from "./errors.ts";
import type { Leaf } from "./config_schema.ts";

// A plain decimal, as people write numbers: no hex, no "Infinity", no empty string (which
// Number() would all accept).
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function parseValue(leaf: Leaf, raw: string): unknown {
  if (leaf.nullable && raw === "null") return null;
  const v = leaf.value;
  const bad = (expected: string) => new UsageError(`${leaf.key} expects ${expected}, got '${raw}'`);
  switch (v.kind) {
    case "number": {
      const text = raw.trim();
      if (!DECIMAL.test(text)) throw bad(v.integer ? "an integer" : "a number");
      const n = Number(text);
      if (v.integer && !Number.isInteger(n)) throw bad("an integer");
      return n;
    }
    case "boolean": {
      const text = raw.trim().toLowerCase();
      if (text === "true") return true;
      if (text === "false") return false;
      throw bad("a boolean (true or false)");
    }
    case "string":
      return raw;
    case "choice": {
      const i = v.values.findIndex((c) => String(c) === raw);
      if (i < 0) throw bad(`one of ${v.values.map(String).join(", ")}`);
      return v.values[i];
    }
    case "json":
      // Structured values are written as JSON (`--set model.sizes=[64,128]`); anything that is
      // not JSON is kept as a string for the schema to judge.
      try {
        return JSON.parse(raw);
      } catch {
        return raw;
      }
  }
}

/**
 * Turns `overrides` back into `--set` strings that resolve to the same values (strings as
 * written, everything else as JSON, so `[4,8]` and `null` survive the round trip).
 */
export function formatSets(overrides: Record<string, unknown>): string[] {
  return Object.entries(overrides).map(([key, value]) =>
    `${key}=${typeof value === "string" ? quoteSetValue(value) : JSON.stringify(value)}`
  );
}

/**
 * A string as a `--set` value: as written, or as a JSON string literal when it holds a comma
 * (which would split it into a sweep) or starts with a double quote (which would be unquoted).
 */
export function quoteSetValue(value: string): string {
  return value.includes(",") || value.trimStart().startsWith('"') ? JSON.stringify(value) : value;
}

/** A `--set` value in double quotes is a JSON string literal: `"a,b"` is a,b. */
export function unquoteSetValue(raw: string): string {
  const text = raw.trim();
  if (text.length < 2 || !text.startsWith('"') || !text.endsWith('"')) return raw;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "string" ? value : raw;
  } catch {
    throw new UsageError(`--set value ${text} is not a valid double-quoted string`);
  }
}
