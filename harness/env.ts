/** The software and hardware a run used, recorded in every result. */
import { fileURLToPath } from "node:url";
import type { AdapterSummary } from "../kernels/device.ts";
import type { EnvInfo } from "./result_schema.ts";

/** Where `git` runs by default: the project root (the directory holding deno.json). */
const PROJECT_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Overrides for tests: another directory to ask git about, or another git binary. */
export interface CaptureEnvOptions {
  cwd?: string;
  git?: string;
}

/** Runs git and returns its trimmed stdout, or null when git is missing or fails. */
async function git(bin: string, cwd: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(bin, {
      args,
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    // Not installed, not permitted, or cwd gone: the commit is unknown, not an error.
    return null;
  }
}

/** Captures Deno/V8/TypeScript versions, OS, arch, the adapter and the git commit + dirty flag. */
export async function captureEnv(
  adapter: AdapterSummary,
  opts: CaptureEnvOptions = {},
): Promise<EnvInfo> {
  const cwd = opts.cwd ?? PROJECT_ROOT;
  const bin = opts.git ?? "git";
  const [head, status] = await Promise.all([
    git(bin, cwd, ["rev-parse", "HEAD"]),
    // Untracked files (results/, scratch notes) do not change what the code computes.
    git(bin, cwd, ["status", "--porcelain", "--untracked-files=no"]),
  ]);
  return {
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    os: Deno.build.os,
    arch: Deno.build.arch,
    // Copied field by field so extra adapter properties never leak into results.
    adapter: {
      vendor: adapter.vendor,
      architecture: adapter.architecture,
      device: adapter.device,
      description: adapter.description,
      backend: adapter.backend,
      isFallbackAdapter: adapter.isFallbackAdapter,
    },
    git: {
      commit: head && /^[0-9a-f]{40,64}$/.test(head) ? head : null,
      dirty: status === null ? null : status.length > 0,
    },
  };
}
