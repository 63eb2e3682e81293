/** Reading and writing run results: `results/<experiment>/<run-id>.json`. */
import { createHash } from "node:crypto";
import { basename, dirname, join, resolve } from "node:path";
import type { z } from "zod";
import { writeFileAtomic } from "./atomic.ts";
import { UsageError } from "./errors.ts";
import { requireRegularFile } from "./paths.ts";
import { RunResult, SCHEMA_VERSION } from "./result_schema.ts";

/** How many zod issues an error message lists before summarising the rest. */
const MAX_ISSUES = 5;

/** A loaded result and the file it came from. */
export interface LoadedResult {
  path: string;
  result: RunResult;
}

/**
 * The run id: a hash prefix naming what ran, then the seed. For a run from scratch the prefix is
 * the config's sha256; a run started from trained weights (`--init-from`) hashes the config
 * together with those weights' sha256, so it never shares an id with a run from scratch.
 */
export function runId(
  configSha256: string,
  seed: number,
  initParamsSha256?: string,
  forcedGraph = false,
): string {
  if (!/^[0-9a-f]{8}/.test(configSha256)) {
    throw new Error(
      `runId: config sha256 must start with 8 lowercase hex digits: '${configSha256}'`,
    );
  }
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(`runId: seed must be a non-negative integer, got ${seed}`);
  }
  // Inputs beyond the config that change the outcome (initial weights, a forced graph path)
  // enter the hash; a plain run keeps the config's own digits.
  const extra = (initParamsSha256 === undefined ? "" : `\ninit ${initParamsSha256}`) +
    (forcedGraph ? "\npath graph" : "");
  const prefix = extra === ""
    ? configSha256
    : createHash("sha256").update(`${configSha256}${extra}`).digest("hex");
  return `${prefix.slice(0, 8)}-s${seed}`;
}

/** Where a run's result lives: `<outDir>/<experiment>/<runId>.json`. */
export function resultPath(outDir: string, experiment: string, runId: string): string {
  return join(outDir, experiment, `${runId}.json`);
}

/** Formats zod issues as "path: message" lines, the first few only. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  const shown = issues.slice(0, MAX_ISSUES).map((i) =>
    `${i.path.length > 0 ? i.path.map(String).join(".") : "(root)"}: ${i.message}`
  );
  const more = issues.length - shown.length;
  return shown.join("; ") + (more > 0 ? `; and ${more} more` : "");
}

// JSON.stringify writes NaN/±Infinity as null anyway; converting first lets the schema check
// exactly what will be written, so a null where a number is required fails here, not on read.
function finiteOrNull(value: unknown): unknown {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (Array.isArray(value)) return value.map(finiteOrNull);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = finiteOrNull(v);
    return out;
  }
  return value;
}

/**
 * Validates `result` against the schema (NaN/±Infinity become null first) and writes it
 * atomically; an invalid result is a bug in the caller, so it throws a plain Error.
 */
export async function writeResult(path: string, result: RunResult): Promise<void> {
  const parsed = RunResult.safeParse(finiteOrNull(result));
  if (!parsed.success) {
    throw new Error(
      `refusing to write an invalid result to ${path}: ${formatIssues(parsed.error.issues)}`,
      {
        cause: parsed.error,
      },
    );
  }
  await writeFileAtomic(path, JSON.stringify(parsed.data, null, 2) + "\n");
}

/** Reads and validates one result; anything unreadable or foreign is a UsageError naming the file. */
export async function readResult(path: string): Promise<RunResult> {
  await requireRegularFile(path, "result file");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`${path}: no such file`);
    if (e instanceof Deno.errors.IsADirectory) {
      throw new UsageError(`${path}: is a directory, not a result file`);
    }
    throw new UsageError(`${path}: cannot read: ${e instanceof Error ? e.message : String(e)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${path}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  // A version mismatch deserves its own message: every field error after it would be noise.
  if (
    json !== null && typeof json === "object" && !Array.isArray(json) && "schemaVersion" in json
  ) {
    const version = json.schemaVersion;
    if (version !== SCHEMA_VERSION) {
      throw new UsageError(
        `${path}: written with results schema version ${JSON.stringify(version)}; ` +
          `this seedlab reads version ${SCHEMA_VERSION}`,
      );
    }
  }
  const parsed = RunResult.safeParse(json);
  if (!parsed.success) {
    throw new UsageError(`${path}: not a seedlab run result: ${formatIssues(parsed.error.issues)}`);
  }
  return parsed.data;
}

// Temporary files of writeFileAtomic (`x.json.tmp-<pid>-<n>`): never results, maybe torn.
const TMP_FILE = /\.tmp-\d+-\d+$/;

function isResultFileName(name: string): boolean {
  return name.endsWith(".json") && !TMP_FILE.test(name);
}

function globToRegExp(pattern: string): RegExp {
  let source = "";
  for (const ch of pattern) {
    if (ch === "*") source += "[^/]*";
    else if (ch === "?") source += "[^/]";
    else source += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

async function listDir(dir: string): Promise<Deno.DirEntry[]> {
  const entries: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(dir)) entries.push(e);
  // Code-unit order, not locale order, so every machine lists the same sequence.
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function jsonFilesIn(dir: string): Promise<string[]> {
  return (await listDir(dir)).filter((e) => e.isFile && isResultFileName(e.name)).map((e) =>
    join(dir, e.name)
  );
}

/** The files one spec names; see loadResults for the rules. */
async function expandSpec(spec: string): Promise<string[]> {
  const name = basename(spec);
  if (/[*?]/.test(name)) {
    const dir = dirname(spec);
    if (/[*?]/.test(dir)) {
      throw new UsageError(`${spec}: wildcards are supported in the last path segment only`);
    }
    const re = globToRegExp(name);
    let entries: Deno.DirEntry[];
    try {
      entries = await listDir(dir);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new UsageError(`${spec}: no such directory ${dir}`);
      }
      throw e;
    }
    return entries.filter((e) => e.isFile && re.test(e.name) && isResultFileName(e.name))
      .map((e) => join(dir, e.name));
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(spec);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      if (/[*?]/.test(dirname(spec))) {
        throw new UsageError(`${spec}: wildcards are supported in the last path segment only`);
      }
      throw new UsageError(`${spec}: no such file or directory`);
    }
    throw e;
  }
  if (!info.isDirectory) return [spec];
  const direct = await jsonFilesIn(spec);
  if (direct.length > 0) return direct;
  // A directory of experiment folders (e.g. `results/`): one level down, never deeper.
  // `baselines/` holds committed baseline specs for `check`, not run results.
  const files: string[] = [];
  for (const e of await listDir(spec)) {
    if (e.isDirectory && e.name !== "baselines") {
      files.push(...await jsonFilesIn(join(spec, e.name)));
    }
  }
  return files;
}

/**
 * Loads results from specs, each a result file, a directory or a glob.
 * A directory yields the `*.json` files directly inside it, sorted by name; when it holds none,
 * the `*.json` files of each subdirectory one level down (except `baselines/`), so `results/`
 * loads every experiment. A glob may use `*` and `?` in its last path segment and matches
 * `*.json` files only. Temporary files of interrupted writes are skipped; a file named twice is
 * loaded once, and so is one run found in two places (same experiment, run id, status and
 * params sha256, e.g. a shard copied into a merged folder): statistics must not count it twice.
 * A spec that matches nothing is a UsageError.
 */
export async function loadResults(specs: readonly string[]): Promise<LoadedResult[]> {
  const out: LoadedResult[] = [];
  const seen = new Set<string>();
  const runs = new Map<string, string>();
  for (const spec of specs) {
    const paths = await expandSpec(spec);
    if (paths.length === 0) throw new UsageError(`${spec}: no result files found`);
    for (const path of paths) {
      const key = resolve(path);
      if (seen.has(key)) continue;
      seen.add(key);
      const result = await readResult(path);
      const run = [result.experiment, result.runId, result.status, result.paramsSha256].join("\0");
      const first = runs.get(run);
      if (first !== undefined) {
        console.error(`note: ${path} is the same run as ${first}; counted once`);
        continue;
      }
      runs.set(run, path);
      out.push({ path, result });
    }
  }
  return out;
}
