import { deepStrictEqual, equal, throws } from "node:assert/strict";
import { UsageError } from "../harness/errors.ts";
import { applyShard, MAX_SEED, parseSeeds } from "../harness/seeds.ts";

function usage(fn: () => unknown, pattern: RegExp): void {
  throws(fn, (e: unknown) => e instanceof UsageError && pattern.test(e.message));
}

Deno.test("parseSeeds: single seed, inclusive range, list", () => {
  deepStrictEqual(parseSeeds("5"), [5]);
  deepStrictEqual(parseSeeds("0"), [0]);
  deepStrictEqual(parseSeeds("0..4"), [0, 1, 2, 3, 4]);
  deepStrictEqual(parseSeeds("7..7"), [7]);
  deepStrictEqual(parseSeeds("1,3,7"), [1, 3, 7]);
  deepStrictEqual(parseSeeds(" 1 , 3 "), [1, 3]);
  deepStrictEqual(parseSeeds("0..2,9"), [0, 1, 2, 9]);
  deepStrictEqual(parseSeeds("7,1"), [7, 1], "order as written");
  deepStrictEqual(parseSeeds(String(MAX_SEED)), [4294967295]);
  deepStrictEqual(parseSeeds("4294967294..4294967295"), [4294967294, 4294967295]);
});

Deno.test("parseSeeds: rejects malformed specs with a UsageError", () => {
  usage(() => parseSeeds("5..1"), /descending.*1\.\.5/);
  usage(() => parseSeeds("-1"), /non-negative; got -1/);
  usage(() => parseSeeds("-2..3"), /non-negative/);
  usage(() => parseSeeds("1.5"), /'1\.5' is not a non-negative integer/);
  usage(() => parseSeeds("1e3"), /not a non-negative integer/);
  usage(() => parseSeeds("4294967296"), /exceeds 2\^32-1/);
  usage(() => parseSeeds("0..4294967296"), /exceeds/);
  usage(() => parseSeeds(""), /empty/);
  usage(() => parseSeeds("1,,2"), /'' is not a non-negative integer/);
  usage(() => parseSeeds("1..2..3"), /not a seed or range/);
  usage(() => parseSeeds("abc"), /'abc'/);
  usage(() => parseSeeds("1,2,1"), /seed 1 is listed twice/);
  usage(() => parseSeeds("0..3,2"), /seed 2 is listed twice/);
  usage(() => parseSeeds("0..4294967295"), /more than 100000 seeds/);
});

Deno.test("applyShard: strided, disjoint shards whose union is every seed", () => {
  const seeds = parseSeeds("10..19");
  deepStrictEqual(applyShard(seeds, "0/3"), [10, 13, 16, 19]);
  deepStrictEqual(applyShard(seeds, "1/3"), [11, 14, 17]);
  deepStrictEqual(applyShard(seeds, "2/3"), [12, 15, 18]);
  deepStrictEqual(applyShard(seeds, "0/1"), seeds);
  for (const n of [1, 2, 3, 4, 7, 10, 13]) {
    const all = Array.from({ length: n }, (_, i) => applyShard(seeds, `${i}/${n}`)).flat();
    equal(all.length, seeds.length, `n=${n}: no seed twice`);
    deepStrictEqual(all.toSorted((a, b) => a - b), seeds, `n=${n}: union is all seeds`);
  }
  deepStrictEqual(applyShard([1, 2], "3/4"), [], "more shards than seeds leaves some empty");
});

Deno.test("applyShard: rejects malformed shards", () => {
  usage(() => applyShard([1], "3/3"), /index 3 must be below 3/);
  usage(() => applyShard([1], "0/0"), /at least 1/);
  usage(() => applyShard([1], "1"), /expected i\/n/);
  usage(() => applyShard([1], "-1/2"), /expected i\/n/);
  usage(() => applyShard([1], "a/b"), /expected i\/n/);
  usage(() => applyShard([1], "1/2/3"), /expected i\/n/);
});
