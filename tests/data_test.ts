import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join, relative, resolve } from "node:path";
import {
  type Corpus,
  defaultCacheDir,
  loadCorpus,
  loadRemoteText,
  MOBY_DICK_SOURCE,
  type RemoteText,
  TINY_SHAKESPEARE,
  tokenize,
} from "../harness/data.ts";
import { UsageError } from "../harness/errors.ts";
import { DataInfo } from "../harness/result_schema.ts";

const sha = (s: string | Uint8Array) =>
  createHash("sha256").update(typeof s === "string" ? new TextEncoder().encode(s) : s).digest(
    "hex",
  );

function corpus(text: string, name = "t.txt"): Corpus {
  return { name, source: `/data/${name}`, text, sha256: sha(text) };
}

function isUsage(pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    ok(e instanceof UsageError, `expected a UsageError, got ${e}`);
    ok(pattern.test(e.message), `message '${e.message}' does not match ${pattern}`);
    return true;
  };
}

/** A fetch that must not be called; proves a code path stays offline. */
const noFetch = () => Promise.reject(new Error("fetch must not be called"));

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("tokenize: sorted char vocab, uint32 tokens, 90/10 split, codec", () => {
  const t = tokenize(corpus("hello world"), 1);
  deepStrictEqual(t.vocab, [" ", "d", "e", "h", "l", "o", "r", "w"]);
  // "hello world" = h e l l o ␠ w o r l d
  deepStrictEqual([...t.train], [3, 2, 4, 4, 5, 0, 7, 5, 6]); // floor(0.9 * 11) = 9
  deepStrictEqual([...t.val], [4, 1]);
  ok(t.train instanceof Uint32Array && t.val instanceof Uint32Array);
  equal(t.train.buffer.byteLength, 9 * 4, "train owns its buffer");
  equal(t.val.buffer.byteLength, 2 * 4, "val owns its buffer");
  deepStrictEqual(t.info, {
    name: "t.txt",
    source: "/data/t.txt",
    sha256: sha("hello world"),
    characters: 11,
    vocabSize: 8,
    trainTokens: 9,
    valTokens: 2,
  });
  ok(DataInfo.safeParse(t.info).success);
  deepStrictEqual([...t.encode("low")], [4, 5, 7]);
  equal(t.decode(t.encode("hello world")), "hello world");
  equal(t.decode([...t.train, ...t.val]), "hello world");
  equal(t.decode(new Uint32Array([3, 2])), "he");
  throws(() => t.encode("hex"), isUsage(/character "x" \(U\+0078\) is not in the vocabulary/));
  throws(() => t.decode([8]), RangeError);
  throws(() => t.decode([-1]), RangeError);
  throws(() => t.decode([0.5]), RangeError);
});

Deno.test("tokenize: astral characters are one token, vocab in code point order", () => {
  // U+1F600 (astral, UTF-16 D83D DE00) must sort after U+FF01 by code point, although its
  // first UTF-16 unit sorts before.
  const text = "b😀a！😀b";
  const t = tokenize(corpus(text), 0);
  deepStrictEqual(t.vocab, ["a", "b", "！", "😀"]);
  equal(t.info.characters, 6);
  deepStrictEqual([...t.train, ...t.val], [1, 3, 0, 2, 3, 1]);
  equal(t.train.length, 5);
  equal(t.decode(t.encode("😀！")), "😀！");
});

Deno.test("tokenize: the split sizes follow floor(0.9 n)", () => {
  for (const n of [1, 2, 9, 10, 11, 19, 20, 1000, 1001]) {
    const t = tokenize(corpus("ab".repeat(n).slice(0, n)), 0);
    equal(t.train.length, Math.floor(0.9 * n), `n=${n}`);
    equal(t.train.length + t.val.length, n);
  }
});

Deno.test("tokenize: empty or too-small corpora are UsageErrors naming the file and sizes", () => {
  throws(() => tokenize(corpus(""), 1), isUsage(/'t\.txt' \(\/data\/t\.txt\) is empty/));
  // 100 chars → 90 train, 10 val; block size 10 needs 11 per split.
  const small = corpus("x".repeat(100), "small.txt");
  throws(
    () => tokenize(small, 11),
    isUsage(
      /'small\.txt' \(\/data\/small\.txt\) is too small: 100 characters .* 90 train and 10 val tokens.* at least 11/,
    ),
  );
  equal(tokenize(small, 10).val.length, 10, "exactly minTokens is enough");
  throws(() => tokenize(small, -1), RangeError);
});

Deno.test("loadCorpus: mobydick is embedded and works offline", async () => {
  const c = await loadCorpus("mobydick", { fetch: noFetch });
  equal(c.name, "mobydick");
  equal(c.source, MOBY_DICK_SOURCE);
  equal(c.text.length, 1213006);
  equal(new Set(c.text).size, 89);
  ok(c.text.startsWith("CONTENTS\n"), JSON.stringify(c.text.slice(0, 20)));
  equal(c.text.indexOf("Call me Ishmael."), 26236);
  equal(c.sha256, sha(c.text));
  const t = tokenize(c, 257);
  equal(t.info.vocabSize, 89);
  equal(t.info.trainTokens, Math.floor(0.9 * t.info.characters));
});

Deno.test("loadCorpus: a UTF-8 file by path", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "poem.txt");
    const bytes = new TextEncoder().encode("ünïcödé text\n");
    await Deno.writeFile(path, bytes);
    const c = await loadCorpus(path);
    deepStrictEqual(c, {
      name: "poem.txt",
      source: resolve(path),
      text: "ünïcödé text\n",
      sha256: sha(bytes),
    });

    // A relative path resolves against the working directory.
    const rel = await loadCorpus(relative(Deno.cwd(), path));
    equal(rel.source, path);
    equal(rel.name, "poem.txt");
  });
});

Deno.test("loadCorpus: missing, directory and non-UTF-8 files are UsageErrors", async () => {
  await withTempDir(async (dir) => {
    const missing = join(dir, "nope.txt");
    await rejects(loadCorpus(missing), isUsage(new RegExp(`'${missing}' not found`)));
    await rejects(loadCorpus(dir), isUsage(/is a directory/));
    const latin1 = join(dir, "latin1.txt");
    await Deno.writeFile(latin1, new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0a])); // "café" in Latin-1
    await rejects(loadCorpus(latin1), isUsage(/latin1\.txt.* is not valid UTF-8/));
  });
});

Deno.test("loadRemoteText: downloads once, verifies, caches, then reads the cache", async () => {
  await withTempDir(async (dir) => {
    const content = "First Citizen:\nBefore we proceed any further, hear me speak.\n";
    const remote: RemoteText = {
      name: "fake",
      url: "https://example.invalid/fake.txt",
      sha256: sha(content),
      fileName: "fake.txt",
    };
    const requested: string[] = [];
    const fetchOnce = (url: string) => {
      requested.push(url);
      return Promise.resolve(new Response(content));
    };
    const cacheDir = join(dir, "cache", "nested");
    const first = await loadRemoteText(remote, { cacheDir, sharedDir: null, fetch: fetchOnce });
    deepStrictEqual(first, {
      name: "fake",
      source: remote.url,
      text: content,
      sha256: remote.sha256,
    });
    deepStrictEqual(requested, [remote.url]);
    equal(await Deno.readTextFile(join(cacheDir, "fake.txt")), content);

    const second = await loadRemoteText(remote, { cacheDir, sharedDir: null, fetch: noFetch });
    deepStrictEqual(second, first);
  });
});

Deno.test("loadRemoteText: a shared copy is used before downloading, and verified", async () => {
  await withTempDir(async (dir) => {
    const content = "shared copy\n";
    const remote: RemoteText = {
      name: "fake",
      url: "https://example.invalid/fake.txt",
      sha256: sha(content),
      fileName: "fake.txt",
    };
    const sharedDir = join(dir, "shared");
    await Deno.mkdir(sharedDir);
    await Deno.writeTextFile(join(sharedDir, "fake.txt"), content);
    const cacheDir = join(dir, "cache");
    const c = await loadRemoteText(remote, { cacheDir, sharedDir, fetch: noFetch });
    equal(c.text, content);
    await rejects(Deno.stat(cacheDir), Deno.errors.NotFound, "a shared copy is not duplicated");

    await Deno.writeTextFile(join(sharedDir, "fake.txt"), "tampered\n");
    await rejects(
      loadRemoteText(remote, { cacheDir, sharedDir, fetch: noFetch }),
      isUsage(/shared\/fake\.txt: sha256 [0-9a-f]{64} does not match fake's/),
    );
  });
});

Deno.test("loadCorpus tinyshakespeare: a corrupt cached copy is a sha256 error", async () => {
  await withTempDir(async (cacheDir) => {
    await Deno.writeTextFile(join(cacheDir, "tinyshakespeare.txt"), "not shakespeare\n");
    await rejects(
      loadCorpus("tinyshakespeare", { cacheDir, sharedDir: null, fetch: noFetch }),
      isUsage(
        new RegExp(
          `tinyshakespeare\\.txt: sha256 ${sha("not shakespeare\n")} does not match ` +
            `tinyshakespeare's ${TINY_SHAKESPEARE.sha256}; delete it`,
        ),
      ),
    );
  });
});

Deno.test("loadCorpus tinyshakespeare: a download with the wrong content is not cached", async () => {
  await withTempDir(async (cacheDir) => {
    const requested: string[] = [];
    const wrong = (url: string) => {
      requested.push(url);
      return Promise.resolve(new Response("<html>captive portal</html>"));
    };
    await rejects(
      loadCorpus("tinyshakespeare", { cacheDir, sharedDir: null, fetch: wrong }),
      isUsage(/sha256 [0-9a-f]{64} does not match tinyshakespeare's 86c4e6aa.*not cached/),
    );
    deepStrictEqual(requested, [TINY_SHAKESPEARE.url]);
    deepStrictEqual([...Deno.readDirSync(cacheDir)], [], "nothing cached");
  });
});

Deno.test("loadCorpus tinyshakespeare: offline or HTTP errors say to pass --data FILE", async () => {
  await withTempDir(async (dir) => {
    const cacheDir = join(dir, "cache");
    const offline = () => Promise.reject(new TypeError("error sending request: dns error"));
    await rejects(
      loadCorpus("tinyshakespeare", { cacheDir, sharedDir: null, fetch: offline }),
      isUsage(
        /downloading tinyshakespeare from https:\/\/raw\.githubusercontent\.com\/karpathy\/char-rnn\/.* failed \(error sending request: dns error\); pass --data FILE .*--data \.\.\/shared\/data\/tinyshakespeare\.txt/,
      ),
    );
    const notFound = () => Promise.resolve(new Response("gone", { status: 404 }));
    await rejects(
      loadCorpus("tinyshakespeare", { cacheDir, sharedDir: null, fetch: notFound }),
      isUsage(/failed \(HTTP 404\); pass --data FILE/),
    );
    await rejects(Deno.stat(cacheDir), Deno.errors.NotFound, "nothing written");
  });
});

Deno.test("defaultCacheDir: SEEDLAB_CACHE, then XDG_CACHE_HOME, then HOME", () => {
  const saved = ["SEEDLAB_CACHE", "XDG_CACHE_HOME", "HOME"].map((k) => [k, Deno.env.get(k)]);
  try {
    Deno.env.set("SEEDLAB_CACHE", "/c/seedlab-cache");
    Deno.env.set("XDG_CACHE_HOME", "/x");
    Deno.env.set("HOME", "/h");
    equal(defaultCacheDir(), "/c/seedlab-cache");
    Deno.env.delete("SEEDLAB_CACHE");
    equal(defaultCacheDir(), "/x/seedlab");
    Deno.env.delete("XDG_CACHE_HOME");
    equal(defaultCacheDir(), "/h/.cache/seedlab");
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k!) : Deno.env.set(k!, v);
  }
});

// Runs only where this machine has the shared copy; the suite never needs it.
const SHARED = new URL("../../shared/data/tinyshakespeare.txt", import.meta.url);
const hasShared = await Deno.stat(SHARED).then(() => true, () => false);

Deno.test({
  name: "loadCorpus tinyshakespeare: the shared copy verifies and matches the lecture",
  ignore: !hasShared,
  fn: async () => {
    await withTempDir(async (cacheDir) => {
      const c = await loadCorpus("tinyshakespeare", { cacheDir, fetch: noFetch });
      equal(c.sha256, TINY_SHAKESPEARE.sha256);
      equal(c.source, TINY_SHAKESPEARE.url);
      const t = tokenize(c, 9);
      equal(t.info.characters, 1115394);
      equal(t.info.vocabSize, 65);
      equal(t.info.trainTokens, 1003854);
      equal(t.info.valTokens, 111540);
      equal(t.vocab.join(""), "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
      // The lecture's first encoded characters: "First Citizen" → [18, 47, 56, 57, 58, 1, 15, ...].
      deepStrictEqual([...t.train.subarray(0, 7)], [18, 47, 56, 57, 58, 1, 15]);
    });
  },
});
