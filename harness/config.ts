/**
 * Config resolution: an experiment's zod schema (with defaults) ← a JSON config file ←
 * `--set dotted.key=value` overrides, validated as a whole and hashed canonically.
 *
 * The schema is introspected (zod 4 `_zod.def`) so each `--set` value is parsed as the type its
 * key expects, and a wrong key or value is a UsageError that names the key and what it takes.
 */
import { createHash } from "node:crypto";
import type { z } from "zod";
import { UsageError } from "./errors.ts";
import { requireRegularFile } from "./paths.ts";

/** A config after defaults, file and overrides, with its canonical hash. */
export interface ResolvedConfig<T> {
  config: T;
  /** The parsed `--set` values keyed by dotted path, in the order given (last one wins). */
  overrides: Record<string, unknown>;
  /** Hex sha256 of the canonical JSON of `config`. */
  sha256: string;
}

/** Where resolveConfig reads its inputs. */
export interface ResolveConfigOptions {
  /** A JSON config file with the schema's nesting. */
  file?: string;
  /** `dotted.key=value` strings, applied after the file. */
  sets?: readonly string[];
}

/** One settable key, for help output. */
export interface ConfigKey {
  key: string;
  /** "integer", "number", "boolean", "string", "a|b" for enums and literals, or zod's type name. */
  type: string;
  default: unknown;
}

type AnySchema = z.core.$ZodType;

/** How a `--set` string becomes a value. */
type ValueKind =
  | { kind: "number"; integer: boolean }
  | { kind: "boolean" }
  | { kind: "string" }
  | { kind: "choice"; values: readonly z.core.util.Primitive[] }
  // Arrays, records, unions of mixed types…: the value is read as JSON (or kept as a string).
  | { kind: "json"; typeName: string };

interface Leaf {
  key: string;
  value: ValueKind;
  nullable: boolean;
  /** The innermost wrapper default, used when the schema cannot be parsed from `{}`. */
  fallbackDefault: unknown;
}

interface Section {
  shape: Record<string, AnySchema>;
  /** Whether unknown keys are allowed (loose objects). */
  open: boolean;
}

interface Unwrapped {
  core: AnySchema;
  nullable: boolean;
  defaultValue: unknown;
}

/** Peels wrappers that do not change what a value looks like on the command line. */
function unwrap(schema: AnySchema): Unwrapped {
  let s = schema;
  let nullable = false;
  let defaultValue: unknown = undefined;
  let sawDefault = false;
  for (;;) {
    const def = s._zod.def;
    switch (def.type) {
      case "default":
      case "prefault": {
        const d = def as z.core.$ZodDefaultDef | z.core.$ZodPrefaultDef;
        // The outermost default wins, as it does when zod parses.
        if (!sawDefault) {
          defaultValue = d.defaultValue;
          sawDefault = true;
        }
        s = d.innerType;
        break;
      }
      case "nullable":
        nullable = true;
        s = (def as z.core.$ZodNullableDef).innerType;
        break;
      case "optional":
      case "nonoptional":
      case "readonly":
      case "catch":
        s = (def as
          | z.core.$ZodOptionalDef
          | z.core.$ZodNonOptionalDef
          | z.core.$ZodReadonlyDef
          | z.core.$ZodCatchDef).innerType;
        break;
      case "pipe":
        // A --set value is input, so it is parsed as the pipe's input type.
        s = (def as z.core.$ZodPipeDef).in;
        break;
      default:
        return { core: s, nullable, defaultValue };
    }
  }
}

function asSection(schema: AnySchema): Section | null {
  const def = schema._zod.def;
  if (def.type !== "object") return null;
  const o = def as z.core.$ZodObjectDef;
  const catchall = o.catchall?._zod.def.type;
  return { shape: o.shape, open: catchall !== undefined && catchall !== "never" };
}

function isInteger(schema: AnySchema): boolean {
  const def = schema._zod.def as z.core.$ZodNumberDef & { format?: string };
  if (def.format?.includes("int")) return true; // z.int(), z.int32()…
  return (def.checks ?? []).some((c) => {
    const cd = c._zod.def as { check: string; format?: string; value?: unknown };
    if (cd.check === "number_format") return cd.format?.includes("int") ?? false;
    // .multipleOf(1) / .step(2) only admit integers.
    return cd.check === "multiple_of" && Number.isSafeInteger(cd.value);
  });
}

/** The literal values a schema admits, or null when it admits more than finitely many. */
function choices(schema: AnySchema): z.core.util.Primitive[] | null {
  const def = schema._zod.def;
  if (def.type === "enum") return Object.values((def as z.core.$ZodEnumDef).entries);
  if (def.type === "literal") {
    return [...(def as z.core.$ZodLiteralDef<z.core.util.Literal>).values];
  }
  if (def.type === "union") {
    const all: z.core.util.Primitive[] = [];
    for (const option of (def as z.core.$ZodUnionDef).options) {
      const c = choices(unwrap(option).core);
      if (c === null) return null;
      all.push(...c);
    }
    return all;
  }
  return null;
}

function valueKind(schema: AnySchema): ValueKind {
  const type = schema._zod.def.type;
  if (type === "number") return { kind: "number", integer: isInteger(schema) };
  if (type === "boolean") return { kind: "boolean" };
  if (type === "string") return { kind: "string" };
  const values = choices(schema);
  if (values !== null) return { kind: "choice", values };
  return { kind: "json", typeName: type };
}

/** The config tree: every leaf key and every section (by dotted prefix; "" is the root). */
interface Tree {
  leaves: Map<string, Leaf>;
  sections: Map<string, Section>;
}

function rootSection(schema: AnySchema): Section {
  const root = asSection(unwrap(schema).core);
  if (!root) throw new TypeError("a config schema must be a zod object");
  return root;
}

function buildTree(schema: AnySchema): Tree {
  const tree: Tree = { leaves: new Map(), sections: new Map() };
  const walk = (section: Section, prefix: string) => {
    tree.sections.set(prefix, section);
    for (const [name, child] of Object.entries(section.shape)) {
      const key = prefix === "" ? name : `${prefix}.${name}`;
      const u = unwrap(child);
      const nested = asSection(u.core);
      if (nested) {
        walk(nested, key);
      } else {
        tree.leaves.set(key, {
          key,
          value: valueKind(u.core),
          nullable: u.nullable,
          fallbackDefault: u.defaultValue,
        });
      }
    }
  };
  walk(rootSection(schema), "");
  return tree;
}

function typeName(leaf: Leaf): string {
  const v = leaf.value;
  const base = v.kind === "number"
    ? (v.integer ? "integer" : "number")
    : v.kind === "choice"
    ? v.values.map(String).join("|")
    : v.kind === "json"
    ? v.typeName
    : v.kind;
  return leaf.nullable ? `${base}|null` : base;
}

function getPath(obj: unknown, key: string): unknown {
  let cur = obj;
  for (const part of key.split(".")) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** The settable keys of a config schema with their types and effective defaults. */
export function listConfigKeys(schema: z.ZodObject): ConfigKey[] {
  const tree = buildTree(schema);
  // Parsing {} gives the effective defaults (prefault sections fill in their fields); when some
  // key has no default, fall back to each leaf's own wrapper default.
  const parsed = schema.safeParse({});
  return [...tree.leaves.values()].map((leaf) => ({
    key: leaf.key,
    type: typeName(leaf),
    default: parsed.success ? getPath(parsed.data, leaf.key) : leaf.fallbackDefault,
  }));
}

/** JSON with object keys sorted recursively, so equal configs hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (!isPlainObject(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = v[k];
    return sorted;
  });
}

// A plain decimal, as people write numbers: no hex, no "Infinity", no empty string (which
// Number() would all accept).
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseValue(leaf: Leaf, raw: string): unknown {
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

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length];
}

function unknownKey(tree: Tree, key: string, where: string): UsageError {
  const known = [...tree.leaves.keys()];
  const section = tree.sections.get(key);
  if (section && key !== "") {
    const inside = known.filter((k) => k.startsWith(`${key}.`));
    return new UsageError(
      `${where}'${key}' is a config section, not a key; set one of: ${inside.join(", ")}`,
    );
  }
  const close = known.filter((k) => editDistance(k, key) <= 2);
  const hint = close.length > 0 ? `; did you mean ${close.join(" or ")}?` : "";
  return new UsageError(
    `${where}unknown config key '${key}'${hint}; known keys: ${known.join(", ")}`,
  );
}

/** Rejects keys the schema does not know, so a typo in a file is not silently ignored. */
function checkFileKeys(tree: Tree, obj: Record<string, unknown>, prefix: string, file: string) {
  const section = tree.sections.get(prefix)!;
  if (section.open) return;
  for (const [name, value] of Object.entries(obj)) {
    const key = prefix === "" ? name : `${prefix}.${name}`;
    if (!(name in section.shape)) throw unknownKey(tree, key, `config file ${file}: `);
    if (tree.sections.has(key) && isPlainObject(value)) checkFileKeys(tree, value, key, file);
  }
}

async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  await requireRegularFile(file, "config file");
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`config file ${file} not found`);
    throw new UsageError(
      `cannot read config file ${file}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(
      `config file ${file} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (!isPlainObject(json)) {
    throw new UsageError(`config file ${file} must hold a JSON object, like {"train": {...}}`);
  }
  return json;
}

function setPath(obj: Record<string, unknown>, key: string, value: unknown, file?: string): void {
  const parts = key.split(".");
  let cur = obj;
  for (let i = 0; i < parts.length - 1; i++) {
    const next = cur[parts[i]];
    if (next === undefined) {
      cur = cur[parts[i]] = {};
    } else if (isPlainObject(next)) {
      cur = next;
    } else {
      // Only a config file can put a non-object where a section belongs.
      const section = parts.slice(0, i + 1).join(".");
      throw new UsageError(`config file ${file}: '${section}' must be an object`);
    }
  }
  cur[parts[parts.length - 1]] = value;
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
function unquoteSetValue(raw: string): string {
  const text = raw.trim();
  if (text.length < 2 || !text.startsWith('"') || !text.endsWith('"')) return raw;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "string" ? value : raw;
  } catch {
    throw new UsageError(`--set value ${text} is not a valid double-quoted string`);
  }
}

/**
 * Resolves a config: schema defaults ← the JSON file ← `--set` overrides, validated by the
 * schema. Unknown keys, unparsable values and schema violations are UsageErrors naming the key.
 */
export async function resolveConfig<S extends z.ZodObject>(
  schema: S,
  opts: ResolveConfigOptions = {},
): Promise<ResolvedConfig<z.output<S>>> {
  const tree = buildTree(schema);
  const input: Record<string, unknown> = opts.file ? await readConfigFile(opts.file) : {};
  if (opts.file) checkFileKeys(tree, input, "", opts.file);

  const overrides: Record<string, unknown> = {};
  const setBy = new Map<string, string>();
  for (const set of opts.sets ?? []) {
    const eq = set.indexOf("=");
    const key = eq < 0 ? "" : set.slice(0, eq).trim();
    if (key === "") {
      throw new UsageError(`--set expects dotted.key=value (e.g. train.lr=1e-2), got '${set}'`);
    }
    const leaf = tree.leaves.get(key);
    if (!leaf) throw unknownKey(tree, key, "");
    const value = parseValue(leaf, unquoteSetValue(set.slice(eq + 1)));
    // Re-inserted so the record keeps the order of the last occurrence of each key.
    delete overrides[key];
    overrides[key] = value;
    setBy.set(key, set);
    setPath(input, key, value, opts.file);
  }

  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 5).map((issue) => {
      const key = issue.path.map(String).join(".");
      const from = setBy.has(key)
        ? ` (from --set ${setBy.get(key)})`
        : opts.file && getPath(input, key) !== undefined
        ? ` (from config file ${opts.file})`
        : "";
      return `${key || "(config)"}: ${issue.message}${from}`;
    });
    const more = parsed.error.issues.length - problems.length;
    throw new UsageError(
      `invalid config: ${problems.join("; ")}${more > 0 ? `; and ${more} more` : ""}`,
    );
  }
  const config = parsed.data;
  const sha256 = createHash("sha256").update(canonicalJson(config)).digest("hex");
  return { config, overrides, sha256 };
}
