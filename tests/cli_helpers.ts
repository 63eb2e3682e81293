/**
 * Helpers for the CLI tests (tests/cli_*_test.ts): run `harness/main.ts` in a child Deno
 * process exactly as `deno task …` does, and read what it wrote.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readResult } from "../harness/results_io.ts";
import type { RunResult } from "../harness/result_schema.ts";

/** The project root (the directory holding deno.json). */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A tiny training config: two eval intervals, a few eval batches, a short sample. */
/** Faster still: 20 steps, two eval batches, a 5-token sample. */
export const SMALL = [
  "--set",
  "train.steps=20",
  "--set",
  "eval.interval=10",
  "--set",
  "eval.iters=2",
  "--set",
  "sample.tokens=5",
];

export const TINY = [
  "--set",
  "train.steps=50",
  "--set",
  "eval.interval=25",
  "--set",
  "eval.iters=5",
  "--set",
  "sample.tokens=20",
];

/** What a finished child process left behind. */
export interface CliOutput {
  code: number;
  stdout: string;
  stderr: string;
}

function childCommand(
  args: string[],
  stdout: "piped" | "null" = "piped",
  env: Record<string, string> = {},
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "harness", "main.ts"), ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout,
    stderr: "piped",
  });
}

/** Runs `seedlab ARGS…` (e.g. `["exp", "bigram", …]`) to completion. */
export function seedlab(...args: string[]): Promise<CliOutput> {
  return seedlabWithEnv({}, ...args);
}

/** Runs `seedlab ARGS…` with extra environment variables. */
export async function seedlabWithEnv(
  env: Record<string, string>,
  ...args: string[]
): Promise<CliOutput> {
  const out = await childCommand(args, "piped", env).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** Asserts the exit code, showing the child's output when it differs. */
export function assertExit(out: CliOutput, code: number): void {
  assert.equal(
    out.code,
    code,
    `expected exit ${code}, got ${out.code}\n--- stdout ---\n${out.stdout}\n--- stderr ---\n${out.stderr}`,
  );
}

/** A running child whose stdout is collected as it arrives, so a test can wait for a line. */
export interface LiveChild {
  child: Deno.ChildProcess;
  stdout(): string;
  /** Resolves once stdout matches `pattern`; rejects after `timeoutMs` or if the child exits. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Waits for the exit and returns everything the child printed. */
  finish(): Promise<CliOutput>;
}

/** Starts `seedlab ARGS…` without waiting for it. */
export function spawnSeedlab(...args: string[]): LiveChild {
  const child = childCommand(args).spawn();
  let out = "";
  let exited = false;
  const stdoutDone = child.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (out += chunk) }),
  );
  const stderrText = new Response(child.stderr).text();
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  return {
    child,
    stdout: () => out,
    async waitFor(pattern, timeoutMs = 60_000) {
      const start = performance.now();
      for (;;) {
        const m = out.match(pattern);
        if (m) return m;
        if (exited) throw new Error(`child exited before printing ${pattern}:\n${out}`);
        if (performance.now() - start > timeoutMs) {
          throw new Error(`timed out waiting for ${pattern}:\n${out}`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async finish() {
      const s = await status;
      await stdoutDone;
      return { code: s.code, stdout: out, stderr: await stderrText };
    },
  };
}

/** Creates a temporary directory, runs `fn` in it and removes it. */
export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "seedlab-cli-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** File names in a directory, sorted; [] when it does not exist. */
export async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return names.sort();
}

/** Every result (`*.json`) under `<out>/<experiment>/`, validated, sorted by file name. */
export async function readResults(out: string, experiment: string): Promise<RunResult[]> {
  const dir = join(out, experiment);
  const files = (await listDir(dir)).filter((n) => n.endsWith(".json"));
  return await Promise.all(files.map((f) => readResult(join(dir, f))));
}

/** The path that `wrote PATH` in a child's stdout names (the last one). */
export function writtenPath(stdout: string): string {
  const all = [...stdout.matchAll(/(?:^|→ )wrote (.+\.json)$/gm)];
  assert.ok(all.length > 0, `no "wrote" line in:\n${stdout}`);
  return all[all.length - 1][1];
}
