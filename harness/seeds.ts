/** Seed lists from the command line (`--seeds 0..4`) and CI sharding (`--shard 1/3`). */
import { UsageError } from "./errors.ts";

/** The largest seed: seeds feed Philox as one 32-bit key word. */
export const MAX_SEED = 0xffff_ffff;

/** More seeds than this is almost certainly a typo (`0..10000000`), not an experiment. */
export const MAX_SEED_COUNT = 100_000;

const HELP = "expected a seed (5), an inclusive range (0..4) or a list (1,3,7)";

function parseSeed(text: string, spec: string, option: string): number {
  const t = text.trim();
  if (/^-\d+$/.test(t)) {
    throw new UsageError(`${option} '${spec}': seeds are non-negative; got ${t}`);
  }
  if (!/^\d+$/.test(t)) {
    throw new UsageError(`${option} '${spec}': '${t}' is not a non-negative integer; ${HELP}`);
  }
  const n = Number(t);
  if (n > MAX_SEED) {
    throw new UsageError(`${option} '${spec}': seed ${t} exceeds 2^32-1 (${MAX_SEED})`);
  }
  return n;
}

/**
 * Parses "5", "0..4" (inclusive) or "1,3,7"; list items may also be ranges ("0..2,9").
 * Order is kept as written; duplicates are rejected because two runs would share a run id.
 * `option` names the flag in messages (`--seed` or `--seeds`).
 */
export function parseSeeds(spec: string, option = "--seeds"): number[] {
  if (spec.trim() === "") throw new UsageError(`${option} is empty; ${HELP}`);
  const seeds: number[] = [];
  for (const item of spec.split(",")) {
    const range = item.split("..");
    if (range.length === 1) {
      seeds.push(parseSeed(item, spec, option));
    } else if (range.length === 2) {
      const lo = parseSeed(range[0], spec, option);
      const hi = parseSeed(range[1], spec, option);
      if (lo > hi) {
        throw new UsageError(
          `${option} '${spec}': range ${lo}..${hi} is descending; write ${hi}..${lo}`,
        );
      }
      // Checked before the loop so a huge range fails fast instead of exhausting memory.
      if (seeds.length + (hi - lo + 1) > MAX_SEED_COUNT) {
        throw new UsageError(`${option} '${spec}': more than ${MAX_SEED_COUNT} seeds`);
      }
      for (let s = lo; s <= hi; s++) seeds.push(s);
    } else {
      throw new UsageError(`${option} '${spec}': '${item.trim()}' is not a seed or range; ${HELP}`);
    }
    if (seeds.length > MAX_SEED_COUNT) {
      throw new UsageError(`${option} '${spec}': more than ${MAX_SEED_COUNT} seeds`);
    }
  }
  const seen = new Set<number>();
  for (const s of seeds) {
    if (seen.has(s)) throw new UsageError(`${option} '${spec}': seed ${s} is listed twice`);
    seen.add(s);
  }
  return seeds;
}

/**
 * Keeps shard `i` of `n` ("i/n", 0-based): the seeds (or runs of a sweep) at positions j with
 * j % n == i.
 * Strided rather than contiguous so shards stay balanced; the n shards are disjoint and
 * together hold every seed. A shard may be empty when n exceeds the number of seeds.
 */
export function applyShard<T>(seeds: readonly T[], shard: string): T[] {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(shard);
  if (!m) throw new UsageError(`--shard '${shard}': expected i/n, e.g. 0/4 (0-based i < n)`);
  const i = Number(m[1]);
  const n = Number(m[2]);
  if (n < 1) throw new UsageError(`--shard '${shard}': the shard count n must be at least 1`);
  if (i >= n) {
    throw new UsageError(`--shard '${shard}': shard index ${i} must be below ${n} (0-based)`);
  }
  return seeds.filter((_, j) => j % n === i);
}
