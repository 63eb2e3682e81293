import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import type { AdapterSummary } from "../kernels/device.ts";
import { captureEnv, codeSha256 } from "../harness/env.ts";
import { EnvInfo } from "../harness/result_schema.ts";

const ADAPTER: AdapterSummary = {
  vendor: "mesa",
  architecture: "llvm",
  device: "llvmpipe",
  description: "llvmpipe (LLVM 15.0.6, 256 bits)",
  backend: "vulkan",
  isFallbackAdapter: false,
};

async function git(cwd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", {
    args: ["-c", "user.name=t", "-c", "user.email=t@example.com", ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

async function hasGit(): Promise<boolean> {
  try {
    return (await new Deno.Command("git", { args: ["--version"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
}

Deno.test("captureEnv: versions, platform and adapter; schema-valid", async () => {
  const extra = { ...ADAPTER, limits: { maxBufferSize: 1 } } as AdapterSummary;
  const env = await captureEnv(extra);
  equal(env.deno, Deno.version.deno);
  equal(env.v8, Deno.version.v8);
  equal(env.typescript, Deno.version.typescript);
  equal(env.os, Deno.build.os);
  equal(env.arch, Deno.build.arch);
  deepStrictEqual(env.adapter, ADAPTER, "only the schema's adapter fields are copied");
  match(env.deno, /^\d+\.\d+\.\d+/);
  ok(EnvInfo.safeParse(env).success);
  // By default git is asked about the project root, wherever the test runs from.
  const root = new URL("..", import.meta.url).pathname;
  const expected = await git(root, "rev-parse", "HEAD").catch(() => null);
  equal(env.git.commit, expected);
});

Deno.test({
  name: "captureEnv: commit and dirty flag from a git repository",
  ignore: !(await hasGit()),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await git(dir, "init", "-q");
      await Deno.writeTextFile(join(dir, "a.txt"), "one\n");
      await git(dir, "add", "a.txt");
      await git(dir, "commit", "-q", "-m", "first");
      const head = await git(dir, "rev-parse", "HEAD");
      match(head, /^[0-9a-f]{40}$/);

      let env = await captureEnv(ADAPTER, { cwd: dir });
      deepStrictEqual(env.git, { commit: head, dirty: false });

      // Untracked files do not make the tree dirty; a modified tracked file does.
      await Deno.writeTextFile(join(dir, "untracked.txt"), "x\n");
      env = await captureEnv(ADAPTER, { cwd: dir });
      deepStrictEqual(env.git, { commit: head, dirty: false });

      await Deno.writeTextFile(join(dir, "a.txt"), "two\n");
      env = await captureEnv(ADAPTER, { cwd: dir });
      deepStrictEqual(env.git, { commit: head, dirty: true });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "captureEnv: a repository without commits has no commit but a known dirty flag",
  ignore: !(await hasGit()),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await git(dir, "init", "-q");
      const env = await captureEnv(ADAPTER, { cwd: dir });
      deepStrictEqual(env.git, { commit: null, dirty: false });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("captureEnv: null commit and dirty flag outside a repository or without git", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missingGit = await captureEnv(ADAPTER, { git: join(dir, "no-such-git") });
    deepStrictEqual(missingGit.git, { commit: null, dirty: null });
    // Only meaningful when the temp dir does not itself sit inside a work tree.
    if (await hasGit()) {
      const inRepo = await git(dir, "rev-parse", "--is-inside-work-tree").catch(() => "false");
      if (inRepo !== "true") {
        const notRepo = await captureEnv(ADAPTER, { cwd: dir });
        deepStrictEqual(notRepo.git, { commit: null, dirty: null });
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("codeSha256: the source that computes, by path and bytes; null without any", async () => {
  const dir = await Deno.makeTempDir();
  try {
    equal(await codeSha256(dir), null);
    await Deno.mkdir(join(dir, "kernels", "sub"), { recursive: true });
    await Deno.writeTextFile(join(dir, "kernels", "a.wgsl"), "fn main() {}\n");
    await Deno.writeTextFile(join(dir, "kernels", "sub", "b.ts"), "export const b = 1;\n");
    await Deno.writeTextFile(join(dir, "deno.lock"), "{}\n");
    const first = await codeSha256(dir);
    match(first ?? "", /^[0-9a-f]{64}$/);
    equal(await codeSha256(dir), first, "deterministic");

    // Files outside the code folders, or of other kinds, do not count.
    await Deno.writeTextFile(join(dir, "README.md"), "# notes\n");
    await Deno.writeTextFile(join(dir, "kernels", "notes.txt"), "scratch\n");
    equal(await codeSha256(dir), first);

    // A changed byte or a renamed file does.
    await Deno.writeTextFile(join(dir, "kernels", "sub", "b.ts"), "export const b = 2;\n");
    const changed = await codeSha256(dir);
    ok(changed !== first);
    await Deno.rename(join(dir, "kernels", "sub", "b.ts"), join(dir, "kernels", "sub", "c.ts"));
    ok((await codeSha256(dir)) !== changed);

    // captureEnv records it for the project.
    const env = await captureEnv(ADAPTER);
    equal(env.codeSha256, await codeSha256());
    match(env.codeSha256 ?? "", /^[0-9a-f]{64}$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
