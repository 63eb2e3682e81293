/**
 * The README's "Writing an experiment" example: it type-checks (imported here), the README
 * shows it as it is in examples/, and `deno task exp examples/char_mlp.ts` trains it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { charMlp } from "../examples/char_mlp.ts";
import { listConfigKeys } from "../harness/config.ts";
import { assertExit, readResults, ROOT, seedlab, TINY, withTempDir } from "./cli_helpers.ts";

Deno.test("example: the README shows examples/char_mlp.ts as it is", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const section = readme.split(/^## Writing an experiment$/m)[1]?.split(/^## /m)[0];
  assert.ok(section, "README has a '## Writing an experiment' section");
  const block = section.match(/```ts\n([\s\S]*?)```/)?.[1];
  assert.ok(block, "the section has a ts code block");
  const source = await Deno.readTextFile(join(ROOT, "examples", "char_mlp.ts"));
  // The README leaves out the file's header comment only.
  assert.equal(block, source.slice(source.indexOf("import ")));
});

Deno.test("example: a model file runs from the command line without being registered", async () => {
  assert.equal(charMlp.name, "char_mlp");
  const keys = listConfigKeys(charMlp.schema as never).map((k) => k.key);
  assert.ok(keys.includes("model.hidden") && keys.includes("train.lr"));
  await withTempDir(async (out) => {
    const r = await seedlab(
      "exp",
      "examples/char_mlp.ts",
      ...TINY,
      "--set",
      "model.hidden=16",
      "--out",
      out,
    );
    assertExit(r, 0);
    const [result] = await readResults(out, "char_mlp");
    assert.equal(result.status, "ok");
    assert.equal(result.experiment, "char_mlp");
    assert.equal((result.config as { model: { hidden: number } }).model.hidden, 16);
    // Loss falls from about ln(vocab) at step 0.
    assert.ok(result.curve[0].val! > 4 && result.final.val! < result.curve[0].val!);

    const ok = await seedlab(
      "exp",
      "examples/char_mlp.ts",
      "--verify",
      join(out, "char_mlp", `${result.runId}.json`),
    );
    assertExit(ok, 0);

    const bad = await seedlab("exp", "examples/char_mlp.ts", ...TINY, "--set", "model.width=3");
    assertExit(bad, 2);
    assert.match(bad.stderr, /unknown config key 'model\.width'.*model\.hidden/);
  });
});

Deno.test("example: files that are not experiments are usage errors", async () => {
  await withTempDir(async (dir) => {
    const missing = await seedlab("exp", join(dir, "nope.ts"));
    assertExit(missing, 2);
    assert.match(missing.stderr, /cannot load experiment file .*nope\.ts/);
    const empty = join(dir, "empty.ts");
    await Deno.writeTextFile(empty, "export const answer = 42;\n");
    const none = await seedlab("exp", empty);
    assertExit(none, 2);
    assert.match(none.stderr, /empty\.ts must export exactly one experiment .*it exports 0/);
  });
});
