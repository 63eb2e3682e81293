import { deepStrictEqual, equal, notEqual, ok, rejects, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { z } from "zod";
import { canonicalJson, formatSets, listConfigKeys, resolveConfig } from "../harness/config.ts";
import { UsageError } from "../harness/errors.ts";

const Schema = z.object({
  train: z.object({
    steps: z.number().int().positive().default(10000),
    lr: z.number().positive().default(1e-3),
    optimizer: z.enum(["adamw", "sgd"]).default("adamw"),
    compile: z.boolean().default(false),
    warmup: z.int().nonnegative().optional(),
    clip: z.number().positive().nullable().default(null),
  }).prefault({}),
  model: z.object({
    nEmbd: z.number().multipleOf(1).positive().default(32),
    dropout: z.number().min(0).max(1).default(0),
    heads: z.union([z.literal(1), z.literal(2), z.literal(4)]).default(4),
    sizes: z.array(z.number().int()).default([1, 2]),
  }).prefault({}),
  data: z.string().min(1).default("mobydick"),
});

const DEFAULTS = {
  train: { steps: 10000, lr: 0.001, optimizer: "adamw", compile: false, clip: null },
  model: { nEmbd: 32, dropout: 0, heads: 4, sizes: [1, 2] },
  data: "mobydick",
};

const KNOWN = "train.steps, train.lr, train.optimizer, train.compile, train.warmup, train.clip, " +
  "model.nEmbd, model.dropout, model.heads, model.sizes, data";

const hex = (s: string) => createHash("sha256").update(s).digest("hex");

function usage(message: string | RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    ok(e instanceof UsageError, `expected a UsageError, got ${e}`);
    if (typeof message === "string") equal(e.message, message);
    else ok(message.test(e.message), `message '${e.message}' does not match ${message}`);
    return true;
  };
}

const sets = (...s: string[]) => resolveConfig(Schema, { sets: s });

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("resolveConfig: defaults, hashed as canonical JSON", async () => {
  const r = await resolveConfig(Schema, {});
  deepStrictEqual(r.config, DEFAULTS);
  deepStrictEqual(r.overrides, {});
  // Keys sorted at every level, written out by hand so the test does not reuse canonicalJson.
  const canonical = '{"data":"mobydick",' +
    '"model":{"dropout":0,"heads":4,"nEmbd":32,"sizes":[1,2]},' +
    '"train":{"clip":null,"compile":false,"lr":0.001,"optimizer":"adamw","steps":10000}}';
  equal(canonicalJson(r.config), canonical);
  equal(r.sha256, hex(canonical));
  equal((await resolveConfig(Schema)).sha256, r.sha256, "opts may be omitted");
});

Deno.test("resolveConfig: --set values are parsed as their key's type", async () => {
  const r = await sets(
    "train.steps=3000",
    "train.lr=1e-2",
    "train.optimizer=sgd",
    "train.compile=true",
    "train.warmup=100",
    "train.clip=0.5",
    "model.nEmbd=64",
    "model.dropout=.2",
    "model.heads=2",
    "model.sizes=[4, 8]",
    "data=../some=file.txt",
  );
  deepStrictEqual(r.config, {
    train: { steps: 3000, lr: 0.01, optimizer: "sgd", compile: true, warmup: 100, clip: 0.5 },
    model: { nEmbd: 64, dropout: 0.2, heads: 2, sizes: [4, 8] },
    data: "../some=file.txt",
  });
  deepStrictEqual(r.overrides, {
    "train.steps": 3000,
    "train.lr": 0.01,
    "train.optimizer": "sgd",
    "train.compile": true,
    "train.warmup": 100,
    "train.clip": 0.5,
    "model.nEmbd": 64,
    "model.dropout": 0.2,
    "model.heads": 2,
    "model.sizes": [4, 8],
    "data": "../some=file.txt",
  });
  equal(typeof r.overrides["model.heads"], "number", "literal choices keep their type");
  notEqual(r.sha256, (await sets()).sha256);
});

Deno.test("resolveConfig: more --set spellings; the last occurrence wins", async () => {
  const r = await sets(
    "train.steps=1e3",
    "train.lr=+5E-4",
    "train.compile=FALSE",
    "train.clip=0.1",
    "train.clip=null",
    " train.steps =2000",
  );
  equal(r.config.train.steps, 2000);
  equal(r.config.train.lr, 0.0005);
  equal(r.config.train.compile, false);
  equal(r.config.train.clip, null);
  deepStrictEqual(Object.entries(r.overrides), [
    ["train.lr", 0.0005],
    ["train.compile", false],
    ["train.clip", null],
    ["train.steps", 2000],
  ]);
});

Deno.test("resolveConfig: setting a default explicitly gives the same config and sha256", async () => {
  const plain = await sets();
  const explicit = await sets("train.steps=10000", "data=mobydick", "model.sizes=[1,2]");
  deepStrictEqual(explicit.config, plain.config);
  equal(explicit.sha256, plain.sha256);
  deepStrictEqual(explicit.overrides, {
    "train.steps": 10000,
    "data": "mobydick",
    "model.sizes": [1, 2],
  });
});

Deno.test("resolveConfig: unknown keys and sections", async () => {
  await rejects(
    sets("train.nope=1"),
    usage(`unknown config key 'train.nope'; known keys: ${KNOWN}`),
  );
  await rejects(
    sets("train.step=1"),
    usage(`unknown config key 'train.step'; did you mean train.steps?; known keys: ${KNOWN}`),
  );
  await rejects(
    sets("train=1"),
    usage(
      "'train' is a config section, not a key; set one of: train.steps, train.lr, " +
        "train.optimizer, train.compile, train.warmup, train.clip",
    ),
  );
  await rejects(sets("steps=1"), usage(/unknown config key 'steps'/));
  await rejects(sets("train.steps.x=1"), usage(/unknown config key 'train\.steps\.x'/));
  await rejects(
    sets("train.steps"),
    usage("--set expects dotted.key=value (e.g. train.lr=1e-2), got 'train.steps'"),
  );
  await rejects(sets("=5"), usage(/--set expects dotted\.key=value/));
});

Deno.test("resolveConfig: values that do not parse as the key's type", async () => {
  const cases: Array<[string, string]> = [
    ["train.lr=abc", "train.lr expects a number, got 'abc'"],
    ["train.lr=", "train.lr expects a number, got ''"],
    ["train.lr=0x10", "train.lr expects a number, got '0x10'"],
    ["train.lr=Infinity", "train.lr expects a number, got 'Infinity'"],
    ["train.lr=1,5", "train.lr expects a number, got '1,5'"],
    ["train.lr=null", "train.lr expects a number, got 'null'"],
    ["train.steps=1.5", "train.steps expects an integer, got '1.5'"],
    ["train.steps=ten", "train.steps expects an integer, got 'ten'"],
    ["train.warmup=2.5", "train.warmup expects an integer, got '2.5'"],
    ["model.nEmbd=3.5", "model.nEmbd expects an integer, got '3.5'"],
    ["train.compile=yes", "train.compile expects a boolean (true or false), got 'yes'"],
    ["train.compile=1", "train.compile expects a boolean (true or false), got '1'"],
    ["train.optimizer=adam", "train.optimizer expects one of adamw, sgd, got 'adam'"],
    ["model.heads=3", "model.heads expects one of 1, 2, 4, got '3'"],
    ["train.clip=abc", "train.clip expects a number, got 'abc'"],
  ];
  for (const [set, message] of cases) await rejects(sets(set), usage(message));
});

Deno.test("resolveConfig: values that parse but break the schema name the key and zod's message", async () => {
  await rejects(
    sets("train.steps=-5"),
    usage(
      "invalid config: train.steps: Too small: expected number to be >0 (from --set train.steps=-5)",
    ),
  );
  await rejects(
    sets("model.dropout=2"),
    usage(/^invalid config: model\.dropout: Too big: .*<=1 \(from --set model\.dropout=2\)$/),
  );
  await rejects(
    sets("data="),
    usage(/^invalid config: data: Too small: .*>=1 characters \(from --set data=\)$/),
  );
  await rejects(
    sets("model.sizes=[1.5]"),
    usage(/^invalid config: model\.sizes\.0: Invalid input: expected int/),
  );
  await rejects(
    sets("model.sizes=oops"),
    usage(/^invalid config: model\.sizes: Invalid input: expected array/),
  );
  await rejects(
    sets("train.steps=0", "train.lr=-1"),
    usage(
      /train\.steps: Too small.*\(from --set train\.steps=0\); train\.lr: Too small.*\(from --set train\.lr=-1\)$/,
    ),
  );
});

Deno.test("resolveConfig: a config file, then --set on top", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "cfg.json");
    await Deno.writeTextFile(file, JSON.stringify({ train: { lr: 0.5, steps: 7 }, data: "x.txt" }));
    const r = await resolveConfig(Schema, { file, sets: ["train.steps=9"] });
    deepStrictEqual(r.config, {
      ...DEFAULTS,
      train: { ...DEFAULTS.train, lr: 0.5, steps: 9 },
      data: "x.txt",
    });
    deepStrictEqual(r.overrides, { "train.steps": 9 }, "only --set values are overrides");

    // Same values in another key order: same hash.
    const reordered = join(dir, "reordered.json");
    await Deno.writeTextFile(reordered, '{"data":"x.txt","train":{"steps":9,"lr":0.5}}');
    equal((await resolveConfig(Schema, { file: reordered })).sha256, r.sha256);
  });
});

Deno.test("resolveConfig: bad config files are UsageErrors naming the file", async () => {
  await withTempDir(async (dir) => {
    const write = async (name: string, text: string) => {
      const path = join(dir, name);
      await Deno.writeTextFile(path, text);
      return path;
    };
    const missing = join(dir, "missing.json");
    await rejects(
      resolveConfig(Schema, { file: missing }),
      usage(`config file ${missing} not found`),
    );
    const broken = await write("broken.json", "{ train: ");
    await rejects(
      resolveConfig(Schema, { file: broken }),
      usage(new RegExp(`config file ${broken} is not valid JSON`)),
    );
    const list = await write("list.json", "[1]");
    await rejects(resolveConfig(Schema, { file: list }), usage(/must hold a JSON object/));
    const typo = await write("typo.json", '{"train":{"lr":0.1,"nope":1}}');
    await rejects(
      resolveConfig(Schema, { file: typo }),
      usage(`config file ${typo}: unknown config key 'train.nope'; known keys: ${KNOWN}`),
    );
    const topTypo = await write("top.json", '{"dta":"x"}');
    await rejects(
      resolveConfig(Schema, { file: topTypo }),
      usage(/unknown config key 'dta'; did you mean data\?/),
    );
    const invalid = await write("invalid.json", '{"train":{"steps":-1}}');
    await rejects(
      resolveConfig(Schema, { file: invalid }),
      usage(
        `invalid config: train.steps: Too small: expected number to be >0 (from config file ${invalid})`,
      ),
    );
    const wrongType = await write("wrong.json", '{"train":{"lr":"fast"}}');
    await rejects(
      resolveConfig(Schema, { file: wrongType }),
      usage(
        /^invalid config: train\.lr: Invalid input: expected number, received string \(from config file/,
      ),
    );
    const notSection = await write("section.json", '{"train":5}');
    await rejects(
      resolveConfig(Schema, { file: notSection }),
      usage(/train: Invalid input: expected object/),
    );
    await rejects(
      resolveConfig(Schema, { file: notSection, sets: ["train.lr=1"] }),
      usage(`config file ${notSection}: 'train' must be an object`),
    );
    // A --set fixes what the file got wrong: the file is input, not a constraint.
    equal(
      (await resolveConfig(Schema, { file: invalid, sets: ["train.steps=3"] })).config.train.steps,
      3,
    );
  });
});

Deno.test("listConfigKeys: every leaf with its type and effective default", () => {
  deepStrictEqual(listConfigKeys(Schema), [
    { key: "train.steps", type: "integer", default: 10000 },
    { key: "train.lr", type: "number", default: 0.001 },
    { key: "train.optimizer", type: "adamw|sgd", default: "adamw" },
    { key: "train.compile", type: "boolean", default: false },
    { key: "train.warmup", type: "integer", default: undefined },
    { key: "train.clip", type: "number|null", default: null },
    { key: "model.nEmbd", type: "integer", default: 32 },
    { key: "model.dropout", type: "number", default: 0 },
    { key: "model.heads", type: "1|2|4", default: 4 },
    { key: "model.sizes", type: "array", default: [1, 2] },
    { key: "data", type: "string", default: "mobydick" },
  ]);
});

Deno.test("introspection: optional/readonly/catch/pipe wrappers, loose sections, required keys", async () => {
  const Exotic = z.object({
    opt: z.object({ depth: z.number().int().default(2), name: z.string() }).optional(),
    ro: z.object({ k: z.number().readonly().default(1) }).readonly().prefault({}),
    caught: z.number().int().catch(5),
    tag: z.string().transform((s) => s.toUpperCase()),
    loose: z.looseObject({ a: z.boolean().default(true) }).prefault({}),
    nul: z.enum(["x", "y"]).nullable().optional(),
    // The outer default wins, as in zod's own parse.
    nested: z.number().default(1).default(2),
  });
  deepStrictEqual(listConfigKeys(Exotic), [
    { key: "opt.depth", type: "integer", default: 2 },
    { key: "opt.name", type: "string", default: undefined },
    { key: "ro.k", type: "number", default: 1 },
    { key: "caught", type: "integer", default: undefined },
    { key: "tag", type: "string", default: undefined },
    { key: "loose.a", type: "boolean", default: true },
    { key: "nul", type: "x|y|null", default: undefined },
    { key: "nested", type: "number", default: 2 },
  ]);
  await rejects(
    resolveConfig(Exotic, {}),
    usage(/^invalid config: tag: Invalid input: expected string, received undefined$/),
  );
  const r = await resolveConfig(Exotic, {
    sets: ["tag=abc", "opt.name=n", "ro.k=3", "caught=7", "nul=null"],
  });
  deepStrictEqual(r.config, {
    opt: { depth: 2, name: "n" },
    ro: { k: 3 },
    caught: 7,
    tag: "ABC",
    loose: { a: true },
    nul: null,
    nested: 2,
  });
  await rejects(
    resolveConfig(Exotic, { sets: ["tag=a", "opt.depth=1.5"] }),
    usage("opt.depth expects an integer, got '1.5'"),
  );
  await rejects(
    resolveConfig(Exotic, { sets: ["tag=a", "opt.depth=3"] }),
    usage(/^invalid config: opt\.name: Invalid input: expected string, received undefined$/),
  );
  await withTempDir(async (dir) => {
    const file = join(dir, "loose.json");
    await Deno.writeTextFile(file, '{"tag":"t","loose":{"extra":1}}');
    const loose = await resolveConfig(Exotic, { file });
    deepStrictEqual(loose.config.loose, { a: true, extra: 1 }, "loose sections keep unknown keys");
  });
  throws(() => listConfigKeys(z.array(z.number()) as never), TypeError);
});

Deno.test("canonicalJson: keys sorted recursively, arrays kept in order", () => {
  equal(
    canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null }, u: undefined }),
    '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
  );
  equal(canonicalJson({ b: 1, a: 2 }), canonicalJson({ a: 2, b: 1 }));
});

Deno.test("formatSets: overrides round-trip to the same config and sha256", async () => {
  const r = await sets("model.sizes=[4, 8]", "train.clip=null", "data=a b=c", "train.lr=0.25");
  deepStrictEqual(formatSets(r.overrides), [
    "model.sizes=[4,8]",
    "train.clip=null",
    "data=a b=c",
    "train.lr=0.25",
  ]);
  const again = await sets(...formatSets(r.overrides));
  deepStrictEqual(again.overrides, r.overrides);
  equal(again.sha256, r.sha256);
});
