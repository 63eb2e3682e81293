/**
 * Crash safety of writeFileAtomic: a child process rewrites one large file in a loop and is
 * killed with SIGKILL at arbitrary moments; the file must always hold one complete version.
 *
 * A kill between creating the temporary file and renaming it leaves `<path>.tmp-<pid>-<n>`
 * behind. Nothing cleans these up (the writer that owned it is dead); they are never read in
 * place of the target and a later write is unaffected by them, which the second test checks.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { writeFileAtomic } from "../harness/atomic.ts";

const SIZE = 4 * 1024 * 1024;
const KILLS = 10;

// Two contents that differ in every byte, so a file mixing them matches neither.
function content(which: "A" | "B", size: number): Uint8Array {
  return new Uint8Array(size).fill(which.charCodeAt(0));
}

const CHILD = `
import { writeFileAtomic } from ${
  JSON.stringify(new URL("../harness/atomic.ts", import.meta.url).href)
};
const [target, sizeArg] = Deno.args;
const size = Number(sizeArg);
const a = new Uint8Array(size).fill(0x41);
const b = new Uint8Array(size).fill(0x42);
const out = Deno.stdout;
const line = (s) => out.writeSync(new TextEncoder().encode(s + "\\n"));
line("ready");
for (let i = 0; ; i++) {
  await writeFileAtomic(target, i % 2 === 0 ? a : b);
  line("wrote " + i);
}
`;

// A fixed-seed generator for the kill delays: the schedule is the same on every run, even
// though where each kill lands inside a write depends on the machine's speed.
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

// Collects a child's stdout as it arrives, so the test can wait for a line.
function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const done = stream.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (text += chunk) }),
  );
  return { text: () => text, done };
}

async function waitFor(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const start = performance.now();
  while (!pred()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test("writeFileAtomic leaves a complete file when its writer is SIGKILLed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "seedlab-atomic-" });
  try {
    const script = join(dir, "writer.js");
    await Deno.writeTextFile(script, CHILD);
    const target = join(dir, "out", "big.bin");
    const a = content("A", SIZE);
    const b = content("B", SIZE);
    const random = lcg(20240601);
    let everCompleted = false;
    let roundsWithWrites = 0;
    const seen = { A: 0, B: 0 };

    for (let round = 0; round < KILLS; round++) {
      const child = new Deno.Command(Deno.execPath(), {
        // --no-config: the writer needs nothing from the project's deno.json or lockfile.
        args: ["run", "-A", "--no-config", script, target, String(SIZE)],
        cwd: dir,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const out = collect(child.stdout);
      const err = collect(child.stderr);
      // Start the clock once the writer runs, so kills land among writes, not during startup.
      await waitFor(() => out.text().includes("ready") || err.text().length > 0, "writer start");
      assertEquals(err.text(), "", "writer failed to start");
      await new Promise((r) => setTimeout(r, 20 + Math.floor(random() * 180)));
      child.kill("SIGKILL");
      const status = await child.status;
      await Promise.all([out.done, err.done]);
      assertEquals(status.signal, "SIGKILL", `writer exited on its own: ${err.text()}`);

      const writes = out.text().split("\n").filter((l) => l.startsWith("wrote ")).length;
      if (writes > 0) roundsWithWrites++;
      everCompleted ||= writes > 0;
      const got = await readIfExists(target);
      if (got === undefined) {
        assert(!everCompleted, `round ${round}: target vanished after a completed write`);
        continue;
      }
      const isA = sameBytes(got, a);
      const isB = !isA && sameBytes(got, b);
      assert(isA || isB, `round ${round}: target is ${got.length} bytes, neither A nor B`);
      seen[isA ? "A" : "B"]++;
    }
    // Kills mid-write leave temporary files, and nothing else, beside the target.
    for await (const e of Deno.readDir(join(dir, "out"))) {
      assert(e.name === "big.bin" || e.name.startsWith("big.bin.tmp-"), e.name);
    }
    // Guard against a test that passes because no write ever happened.
    assert(roundsWithWrites >= KILLS / 2, `only ${roundsWithWrites} rounds completed a write`);
    assert(seen.A + seen.B >= KILLS / 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic is unaffected by leftover .tmp-* files of killed writers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "seedlab-atomic-" });
  try {
    const target = join(dir, "result.json");
    // Leftovers named exactly as this process would name its next temporary files (same pid,
    // low counters, as after pid reuse), plus one of another pid.
    const leftovers = [
      ...Array.from({ length: 32 }, (_, n) => `${target}.tmp-${Deno.pid}-${n}`),
      `${target}.tmp-999999-0`,
    ];
    for (const path of leftovers) await Deno.writeTextFile(path, "half a fi");
    await writeFileAtomic(target, '{"v":1}');
    assertEquals(await Deno.readTextFile(target), '{"v":1}');
    await writeFileAtomic(target, '{"v":2}');
    assertEquals(await Deno.readTextFile(target), '{"v":2}');
    // The writes never touch leftovers they did not create themselves.
    const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    assert(names.includes("result.json"));
    assert(names.includes("result.json.tmp-999999-0"));
    assertEquals(await Deno.readTextFile(`${target}.tmp-999999-0`), "half a fi");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
