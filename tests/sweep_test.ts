/** Grid sweeps: `--set key=a,b` lists, their cartesian product, quoting, and sharding the grid. */
import assert from "node:assert/strict";
import { z } from "zod";
import { formatSets, resolveConfig } from "../harness/config.ts";
import { UsageError } from "../harness/errors.ts";
import { expandSweep, resolveSweep, splitSetValues, sweepRuns } from "../harness/sweep.ts";

Deno.test("sweep: list values split at top-level commas only", () => {
  assert.deepEqual(splitSetValues("1e-3,3e-3,1e-2"), ["1e-3", "3e-3", "1e-2"]);
  assert.deepEqual(splitSetValues("0.01"), ["0.01"]);
  // JSON values keep their commas; so does a double-quoted value.
  assert.deepEqual(splitSetValues("[64,128],[32,32]"), ["[64,128]", "[32,32]"]);
  assert.deepEqual(splitSetValues('{"a":1,"b":[2,3]}'), ['{"a":1,"b":[2,3]}']);
  assert.deepEqual(splitSetValues('"a,b.txt",mobydick'), ['"a,b.txt"', "mobydick"]);
  assert.deepEqual(splitSetValues('"say \\"hi, there\\"",x'), ['"say \\"hi, there\\""', "x"]);
  // A quote inside a plain value is just a character.
  assert.deepEqual(splitSetValues('it"s,fine'), ['it"s', "fine"]);
  assert.throws(() => splitSetValues('"open,end'), /a double quote is not closed/);
});

Deno.test("sweep: several list keys run their cartesian product, first key slowest", () => {
  const combos = expandSweep(["train.lr=1,2", "train.steps=10", "model.nEmbd=8,16,32"]);
  assert.equal(combos.length, 6);
  assert.deepEqual(combos[0], ["train.lr=1", "train.steps=10", "model.nEmbd=8"]);
  assert.deepEqual(combos[1], ["train.lr=1", "train.steps=10", "model.nEmbd=16"]);
  assert.deepEqual(combos[5], ["train.lr=2", "train.steps=10", "model.nEmbd=32"]);
  // Without a list it is the sets as given.
  assert.deepEqual(expandSweep(["a=1", "b=x"]), [["a=1", "b=x"]]);
  assert.throws(() => expandSweep(["train.lr=1,,2"]), UsageError);
  assert.throws(() => expandSweep(["train.lr=1,2,1"]), /value 1 is listed twice/);
});

const schema = z.object({
  train: z.object({
    lr: z.number().positive().default(1e-3),
    steps: z.number().int().positive().default(100),
  }).prefault({}),
  data: z.string().default("mobydick"),
  sizes: z.array(z.number()).default([4]),
});

Deno.test("sweep: quoted values keep their commas and formatSets quotes them back", async () => {
  const [withComma] = await resolveSweep(schema, expandSweep(['data="a,b.txt"']));
  assert.equal(withComma.config.data, "a,b.txt");
  const sets = formatSets(withComma.overrides);
  assert.deepEqual(sets, ['data="a,b.txt"']);
  assert.deepEqual(expandSweep(sets), [sets], "a formatted set is never a sweep");
  assert.equal((await resolveConfig(schema, { sets })).config.data, "a,b.txt");
  const [json] = await resolveSweep(schema, expandSweep(["sizes=[8,16]"]));
  assert.deepEqual(json.config.sizes, [8, 16]);
  await assert.rejects(() => resolveConfig(schema, { sets: ['data="bad\\q"'] }), UsageError);
});

Deno.test("sweep: combinations that resolve to one config run once (last one wins)", async () => {
  const configs = await resolveSweep(
    schema,
    expandSweep(["train.lr=0.1,0.2", "train.steps=5", "train.lr=0.3"]),
  );
  assert.equal(configs.length, 1);
  assert.equal(configs[0].config.train.lr, 0.3);
  const grid = await resolveSweep(schema, expandSweep(["train.lr=0.1,0.2", "train.steps=5,6"]));
  assert.deepEqual(grid.map((c) => [c.config.train.lr, c.config.train.steps]), [
    [0.1, 5],
    [0.1, 6],
    [0.2, 5],
    [0.2, 6],
  ]);
  assert.equal(new Set(grid.map((c) => c.sha256)).size, 4);
});

Deno.test("sweep: --shard slices the combined (config × seed) list into disjoint shards", () => {
  const all = sweepRuns(3, [0, 1, 2]);
  assert.equal(all.length, 9);
  assert.deepEqual(all.slice(0, 4), [
    { config: 0, seed: 0 },
    { config: 0, seed: 1 },
    { config: 0, seed: 2 },
    { config: 1, seed: 0 },
  ]);
  const shards = [0, 1, 2, 3].map((i) => sweepRuns(3, [0, 1, 2], `${i}/4`));
  assert.deepEqual(shards.map((s) => s.length), [3, 2, 2, 2]);
  const key = (r: { config: number; seed: number }) => `${r.config}:${r.seed}`;
  const union = shards.flat().map(key).sort();
  assert.deepEqual(union, all.map(key).sort(), "every run in exactly one shard");
  // One config: the shard is the same slice of the seeds as before sweeps existed.
  assert.deepEqual(sweepRuns(1, [5, 6, 7, 8], "1/2").map((r) => r.seed), [6, 8]);
  assert.deepEqual(sweepRuns(1, [5], "3/5"), []);
  assert.throws(() => sweepRuns(2, [0], "2/2"), /shard index 2 must be below 2/);
});
