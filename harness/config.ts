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
import { buildTree, getPath, isPlainObject, type Tree } from "./config_schema.ts";
import { parseValue, unquoteSetValue } from "./config_set.ts";

export { type ConfigKey, listConfigKeys } from "./config_schema.ts";
export { formatSets, quoteSetValue } from "./config_set.ts";

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

/** JSON with object keys sorted recursively, so equal configs hash equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (!isPlainObject(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = v[k];
    return sorted;
  });
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
