/** The software and hardware a run used, recorded in every result. */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { AdapterSummary } from "../kernels/device.ts";
import { UsageError } from "./errors.ts";
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

/** What decides a run's numbers: the code folders and the files that pin dependencies. */
const CODE_DIRS = ["kernels", "nn", "experiments", "harness"];
const CODE_FILES = ["mod.ts", "deno.json", "deno.lock"];
const CODE_EXT = /\.(ts|wgsl|json)$/;

async function codeFiles(root: string, dir: string): Promise<string[]> {
  const files: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(join(root, dir)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  for (const e of entries) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory) files.push(...await codeFiles(root, rel));
    else if (e.isFile && CODE_EXT.test(e.name)) files.push(rel);
  }
  return files;
}

/**
 * sha256 over the source that computes a run (kernels/, nn/, experiments/, harness/, mod.ts,
 * deno.json, deno.lock): path and bytes of each file in sorted order. Unlike the git commit it
 * also tells uncommitted trees apart, so `check` reuses a stored run only when the code that
 * produced it is the code on disk now. Null when none of those files exist under `root`.
 */
export async function codeSha256(root: string = PROJECT_ROOT): Promise<string | null> {
  const files = [...CODE_FILES];
  for (const dir of CODE_DIRS) files.push(...await codeFiles(root, dir));
  // Code-unit order, not locale order, so every machine hashes the same sequence.
  files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const hash = createHash("sha256");
  let found = 0;
  for (const rel of files) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(join(root, rel));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    found++;
    // Length-prefixed so no two file sets can produce the same byte stream.
    hash.update(`${rel}\0${bytes.length}\0`).update(bytes);
  }
  return found > 0 ? hash.digest("hex") : null;
}

/** Captures Deno/V8/TypeScript versions, OS, arch, the adapter and the git commit + dirty flag. */
export async function captureEnv(
  adapter: AdapterSummary,
  opts: CaptureEnvOptions = {},
): Promise<EnvInfo> {
  const cwd = opts.cwd ?? PROJECT_ROOT;
  const bin = opts.git ?? "git";
  const [head, status, code] = await Promise.all([
    git(bin, cwd, ["rev-parse", "HEAD"]),
    // Untracked files (results/, scratch notes) do not change what the code computes.
    git(bin, cwd, ["status", "--porcelain", "--untracked-files=no"]),
    codeSha256(cwd),
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
    codeSha256: code,
  };
}

/** The backends wgpu can use on each OS, by the names DENO_WEBGPU_BACKEND takes. */
const BACKENDS: Record<string, string[]> = {
  linux: ["vulkan", "gl"],
  windows: ["dx12", "vulkan", "gl"],
  darwin: ["metal"],
};

/** wgpu's other spellings of the same backends. */
const BACKEND_ALIASES: Record<string, string> = {
  vk: "vulkan",
  gles: "gl",
  opengl: "gl",
  mtl: "metal",
  d3d12: "dx12",
};

/**
 * Rejects a DENO_WEBGPU_BACKEND this OS cannot have (wgpu would silently find no adapter and
 * the user would be told to install drivers): a UsageError naming the valid values.
 */
export function checkBackendEnv(): void {
  const value = Deno.env.get("DENO_WEBGPU_BACKEND");
  if (value === undefined || value.trim() === "") return;
  const valid = BACKENDS[Deno.build.os] ?? Object.values(BACKENDS).flat();
  const bad = value.split(",").map((v) => v.trim().toLowerCase()).filter((v) =>
    !valid.includes(BACKEND_ALIASES[v] ?? v)
  );
  if (bad.length > 0) {
    throw new UsageError(
      `DENO_WEBGPU_BACKEND=${value}: '${bad.join("', '")}' is not a WebGPU backend on ` +
        `${Deno.build.os}; valid: ${valid.join(", ")} (or leave it unset to let wgpu choose)`,
    );
  }
}
