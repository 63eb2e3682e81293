/**
 * Walks an experiment's zod config schema (zod 4 `_zod.def`): every settable leaf key with the
 * kind of value it takes, every section, and the keys with their defaults for help output.
 */
import type { z } from "zod";

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

export interface Leaf {
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
export interface Tree {
  leaves: Map<string, Leaf>;
  sections: Map<string, Section>;
}

function rootSection(schema: AnySchema): Section {
  const root = asSection(unwrap(schema).core);
  if (!root) throw new TypeError("a config schema must be a zod object");
  return root;
}

export function buildTree(schema: AnySchema): Tree {
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

export function getPath(obj: unknown, key: string): unknown {
  let cur = obj;
  for (const part of key.split(".")) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
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
