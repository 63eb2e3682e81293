/**
 * `deno task exp NAME`: resolve the config, load the data, train (or check) once per seed, and
 * write one result per run. Usage errors are reported before anything runs or is written.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { getGpu, type Gpu } from "../kernels/device.ts";
import { experiments } from "../experiments/mod.ts";
import type {
  CheckExperiment,
  Experiment,
  LanguageModelConfig,
  LanguageModelExperiment,
} from "../experiments/types.ts";
import { ParamStore } from "../nn/params.ts";
import {
  checkInitCompatible,
  type Checkpoint,
  loadCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
import { formatSets, listConfigKeys, resolveConfig } from "./config.ts";
import { loadCorpus, tokenize, type TokenizedCorpus } from "./data.ts";
import { captureEnv } from "./env.ts";
import { ExitCode, UsageError } from "./errors.ts";
import { createProgress } from "./progress.ts";
import { type CurvePoint, type EnvInfo, type RunResult, SCHEMA_VERSION } from "./result_schema.ts";
import { readResult, resultPath, runId, writeResult } from "./results_io.ts";
import { applyShard, parseSeeds } from "./seeds.ts";
import { trainLanguageModel, type TrainState } from "./train.ts";
import { createRunProfile } from "./profile.ts";

const USAGE = `usage: deno task exp NAME [--seed N | --seeds A..B|a,b,c] [--shard i/n]
       [--set key=value]... [--config FILE] [--data mobydick|tinyshakespeare|FILE]
       [--out DIR] [--quiet] [--verify RESULT.json] [--resume CKPT] [--init-from CKPT]
       [--save-every N] [--profile] [--graph]`;

const DEFAULT_SEED = 1337;

interface ExpArgs {
  name: string;
  seeds: number[];
  sets: string[];
  configFile?: string;
  out: string;
  quiet: boolean;
  verify?: string;
  resume?: string;
  initFrom?: string;
  saveEvery?: number;
  /** --profile: per-kernel device times and the host-time breakdown after each run. */
  profile: boolean;
  /** --graph: train through the autograd graph even where the model has a fused step. */
  graph: boolean;
}

/** Whether an `exp` name is a module path (`examples/char_mlp.ts`) rather than a registered name. */
function isExperimentFile(name: string): boolean {
  return /\.(ts|mts|js|mjs)$/.test(name);
}

function looksLikeExperiment(value: unknown): value is Experiment {
  if (value === null || typeof value !== "object") return false;
  const e = value as Record<string, unknown>;
  return (e.kind === "language-model" || e.kind === "check") && typeof e.name === "string" &&
    typeof e.schema === "object";
}

/** Loads the one experiment a module file exports, so a new model can be tried before it is registered. */
async function importExperiment(path: string): Promise<Experiment> {
  const url = pathToFileURL(resolve(path)).href;
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
  } catch (e) {
    throw new UsageError(`cannot load experiment file ${path}: ${(e as Error).message}`);
  }
  const found = Object.values(mod).filter(looksLikeExperiment);
  if (found.length !== 1) {
    throw new UsageError(
      `${path} must export exactly one experiment (an object with kind, name and schema); ` +
        `it exports ${found.length}`,
    );
  }
  const experiment = found[0];
  if (experiments.has(experiment.name)) {
    throw new UsageError(
      `${path} exports an experiment named '${experiment.name}', which is already registered`,
    );
  }
  return experiment;
}

/** Every settable key of the experiment's schema with its value in a stored config. */
function everyKey(
  experiment: Experiment,
  config: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key } of listConfigKeys(experiment.schema as never)) {
    let value: unknown = config;
    for (const part of key.split(".")) {
      value = value !== null && typeof value === "object"
        ? (value as Record<string, unknown>)[part]
        : undefined;
    }
    if (value !== undefined) out[key] = value;
  }
  return out;
}

function knownExperiments(): string {
  return [...experiments.keys()].join(", ");
}

/** Parses `exp` arguments; every problem is a UsageError (exit 2). */
export function parseExpArgs(args: string[]): ExpArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        seed: { type: "string" },
        seeds: { type: "string" },
        shard: { type: "string" },
        set: { type: "string", multiple: true },
        config: { type: "string" },
        data: { type: "string" },
        out: { type: "string" },
        quiet: { type: "boolean" },
        verify: { type: "string" },
        resume: { type: "string" },
        "init-from": { type: "string" },
        "save-every": { type: "string" },
        profile: { type: "boolean" },
        graph: { type: "boolean" },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  const name = positionals[0];
  if (!name) throw new UsageError(`no experiment given; known: ${knownExperiments()}\n${USAGE}`);
  if (positionals.length > 1) {
    throw new UsageError(`unexpected arguments: ${positionals.slice(1).join(" ")}\n${USAGE}`);
  }
  if (!experiments.has(name) && !isExperimentFile(name)) {
    throw new UsageError(
      `unknown experiment '${name}'; known experiments: ${knownExperiments()} ` +
        "(or give the path of a .ts file that exports one)",
    );
  }
  if (values.seed !== undefined && values.seeds !== undefined) {
    throw new UsageError("give --seed or --seeds, not both");
  }
  let seeds = parseSeeds(values.seeds ?? values.seed ?? String(DEFAULT_SEED));
  if (values.shard !== undefined) seeds = applyShard(seeds, values.shard);
  const sets = [...(values.set ?? [])];
  if (values.data !== undefined) sets.push(`data=${values.data}`);
  let saveEvery: number | undefined;
  if (values["save-every"] !== undefined) {
    saveEvery = Number(values["save-every"]);
    if (!Number.isInteger(saveEvery) || saveEvery <= 0) {
      throw new UsageError(
        `--save-every expects a positive integer, got '${values["save-every"]}'`,
      );
    }
  }
  if (values.resume !== undefined && values["init-from"] !== undefined) {
    throw new UsageError("give --resume or --init-from, not both");
  }
  if (
    values.verify !== undefined &&
    (values.resume !== undefined || values["init-from"] !== undefined)
  ) {
    throw new UsageError(
      "--verify re-runs a result from scratch; it takes no --resume or --init-from",
    );
  }
  const chosen = (names: string[]) =>
    names.filter((n) => values[n as keyof typeof values] !== undefined).map((n) => `--${n}`);
  const verifyConflicts = chosen(["seed", "seeds", "shard", "set", "config", "data"]);
  if (values.verify !== undefined && verifyConflicts.length > 0) {
    throw new UsageError(
      `--verify takes the config and seed from the result; drop ${verifyConflicts.join(", ")}`,
    );
  }
  const resumeConflicts = chosen(["seed", "seeds", "shard"]);
  if (values.resume !== undefined && resumeConflicts.length > 0) {
    throw new UsageError(
      `--resume continues the checkpoint's seed; drop ${resumeConflicts.join(", ")}`,
    );
  }
  return {
    name,
    seeds,
    sets,
    configFile: values.config,
    out: values.out ?? "results",
    quiet: values.quiet ?? false,
    verify: values.verify,
    resume: values.resume,
    initFrom: values["init-from"],
    saveEvery,
    profile: values.profile ?? false,
    graph: values.graph ?? false,
  };
}

/** Runs the `exp` command; returns the process exit code. */
export async function runExp(argv: string[]): Promise<number> {
  const args = parseExpArgs(argv);
  const experiment = experiments.get(args.name) ?? await importExperiment(args.name);

  let verifyAgainst: RunResult | undefined;
  if (args.verify) {
    verifyAgainst = await readResult(args.verify);
    if (verifyAgainst.experiment !== experiment.name) {
      throw new UsageError(
        `${args.verify} is a result of '${verifyAgainst.experiment}', not '${experiment.name}'`,
      );
    }
    args.seeds = [verifyAgainst.seed];
    args.sets = formatSets(verifyAgainst.overrides);
  }
  let resume: Checkpoint | undefined;
  if (args.resume) {
    resume = await loadCheckpoint(args.resume);
    if (resume.experiment !== experiment.name) {
      throw new UsageError(`${args.resume} is a checkpoint of '${resume.experiment}'`);
    }
    args.seeds = [resume.seed];
    // The checkpoint's own overrides first, so `--set train.steps=N` alone continues the same
    // config; later --set values win.
    args.sets = [...formatSets(resume.overrides ?? {}), ...args.sets];
  }
  const initFrom = args.initFrom ? await loadCheckpoint(args.initFrom) : undefined;

  let resolved = await resolveConfig(experiment.schema as never, {
    file: args.configFile,
    sets: args.sets,
  });
  if (verifyAgainst && resolved.sha256 !== verifyAgainst.configSha256) {
    // The run used a --config file, or a default changed since: set every key as stored.
    resolved = await resolveConfig(experiment.schema as never, {
      sets: formatSets(everyKey(experiment, verifyAgainst.config)),
    });
  }
  const config = resolved.config as Record<string, unknown>;
  if (verifyAgainst && resolved.sha256 !== verifyAgainst.configSha256) {
    throw new UsageError(
      `${args.verify}: its config no longer resolves to the same thing (sha ` +
        `${resolved.sha256.slice(0, 12)} vs ${verifyAgainst.configSha256.slice(0, 12)}); ` +
        "the experiment's config schema changed since it was written",
    );
  }

  let corpus: TokenizedCorpus | undefined;
  if (experiment.kind === "language-model") {
    const lm = config as unknown as LanguageModelConfig;
    if (resume && resume.step > lm.train.steps) {
      throw new UsageError(
        `${args.resume} is at step ${resume.step}, beyond train.steps=${lm.train.steps}; ` +
          "pass --set train.steps=N with N at least that",
      );
    }
    corpus = tokenize(await loadCorpus(lm.data), lm.train.blockSize + 1);
  } else if (resume || initFrom || args.saveEvery !== undefined) {
    throw new UsageError(
      `'${experiment.name}' trains nothing: --resume, --init-from and --save-every do not apply`,
    );
  }

  const gpu = await getGpu();
  const env = await captureEnv(gpu.adapter);
  const progress = createProgress(args.quiet);
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) Deno.exit(ExitCode.interrupted);
    interrupted = true;
    progress.line("interrupt: finishing the current chunk and writing the result…");
  };
  Deno.addSignalListener("SIGINT", onSigint);
  let exit: number = ExitCode.ok;
  try {
    for (const seed of args.seeds) {
      if (interrupted) break;
      const common = {
        gpu,
        env,
        seed,
        config,
        configSha256: resolved.sha256,
        overrides: resolved.overrides,
        interrupted: () => interrupted,
      };
      const result = experiment.kind === "check"
        ? await runCheck(experiment, common)
        : await runLanguageModel(experiment, {
          ...common,
          corpus: corpus!,
          quiet: args.quiet,
          outDir: args.out,
          saveEvery: args.saveEvery,
          resume,
          initFrom,
          // A verification re-run must not replace the checkpoint of the run it checks.
          writeCheckpoints: !verifyAgainst,
          profile: args.profile,
          // A verification re-runs the path its result ran.
          graph: args.graph || verifyAgainst?.path === "graph",
        });
      const code = verifyAgainst
        ? reportVerification(verifyAgainst, result)
        : await saveResult(result, args.out);
      if (result.status === "interrupted") exit = ExitCode.interrupted;
      else if (code !== ExitCode.ok && exit === ExitCode.ok) exit = code;
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
  return exit;
}

interface CommonRun {
  gpu: Gpu;
  env: EnvInfo;
  seed: number;
  config: Record<string, unknown>;
  configSha256: string;
  overrides: Record<string, unknown>;
  interrupted: () => boolean;
}

function baseResult(
  experiment: Experiment,
  run: CommonRun,
  startedAt: Date,
): Omit<RunResult, "status" | "steps" | "curve" | "final" | "throughput" | "sample"> {
  return {
    schemaVersion: SCHEMA_VERSION,
    experiment: experiment.name,
    runId: runId(run.configSha256, run.seed),
    seed: run.seed,
    config: run.config,
    configSha256: run.configSha256,
    overrides: run.overrides,
    data: null,
    env: run.env,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    wallMs: Date.now() - startedAt.getTime(),
    paramsSha256: "",
  };
}

async function runCheck(experiment: CheckExperiment, run: CommonRun): Promise<RunResult> {
  const startedAt = new Date();
  const outcome = await experiment.run(run.gpu, run.config, run.seed);
  const status = outcome.failures.length > 0 ? "failed" : "ok";
  const result: RunResult = {
    ...baseResult(experiment, run, startedAt),
    status,
    reason: outcome.failures.length > 0 ? outcome.failures.join("; ") : undefined,
    steps: 0,
    curve: [],
    final: outcome.final,
    throughput: { stepsPerSec: 0, tokensPerSec: 0 },
    sample: "",
  };
  const summary = Object.entries(outcome.final).map(([k, v]) => `${k} ${v.toExponential(2)}`);
  console.log(`${experiment.name} seed ${run.seed}: ${status}  ${summary.join("  ")}`);
  for (const f of outcome.failures) console.error(`  bound exceeded: ${f}`);
  return result;
}

interface LanguageModelRun extends CommonRun {
  corpus: TokenizedCorpus;
  quiet: boolean;
  outDir: string;
  saveEvery?: number;
  resume?: Checkpoint;
  initFrom?: Checkpoint;
  writeCheckpoints: boolean;
  profile: boolean;
  graph: boolean;
}

function toMap(record: Record<string, { data: Float32Array }>): Map<string, Float32Array> {
  return new Map(Object.entries(record).map(([k, v]) => [k, v.data]));
}

async function runLanguageModel(
  experiment: LanguageModelExperiment,
  run: LanguageModelRun,
): Promise<RunResult> {
  const startedAt = new Date();
  const config = run.config as unknown as LanguageModelConfig;
  const store = new ParamStore(run.gpu);
  const model = experiment.createModel(store, config, run.corpus.vocab.length);
  const params = store.finalize();
  const shapes = Object.fromEntries(params.map((p) => [p.name, { shape: p.shape }]));
  if (run.initFrom) checkInitCompatible(shapes, run.initFrom);
  if (run.resume) checkInitCompatible(shapes, run.resume);
  const id = runId(run.configSha256, run.seed);
  const ckptPath = resultPath(run.outDir, experiment.name, id).replace(/\.json$/, ".safetensors");
  const progress = createProgress(run.quiet);
  if (!run.quiet) {
    progress.line(
      `${experiment.name} seed ${run.seed}: ${store.count} parameters, data ${run.corpus.info.name} ` +
        `(${run.corpus.info.characters} chars, vocab ${run.corpus.vocab.length}), ` +
        `adapter ${run.gpu.adapter.description}`,
    );
  }
  const resumeState: TrainState | undefined = run.resume
    ? {
      step: run.resume.step,
      params: toMap(run.resume.params),
      adamM: toMap(run.resume.adamM),
      adamV: toMap(run.resume.adamV),
      counters: run.resume.counters,
      curve: run.resume.curve ?? [],
    }
    : undefined;
  const profile = run.profile ? createRunProfile(run.gpu) : undefined;
  const outcome = await trainLanguageModel({
    submitter: profile?.submitter,
    fused: !run.graph,
    gpu: run.gpu,
    config,
    seed: run.seed,
    model,
    store,
    trainTokens: run.corpus.train,
    valTokens: run.corpus.val,
    progress,
    interrupted: run.interrupted,
    resume: resumeState,
    initParams: run.initFrom ? toMap(run.initFrom.params) : undefined,
    saveEvery: run.saveEvery,
    onCheckpoint: !run.writeCheckpoints ? undefined : async (state) => {
      const shaped = (m: Map<string, Float32Array>) =>
        Object.fromEntries(params.map((p) => [p.name, { shape: p.shape, data: m.get(p.name)! }]));
      await saveCheckpoint(ckptPath, {
        experiment: experiment.name,
        configSha256: run.configSha256,
        seed: run.seed,
        step: state.step,
        params: shaped(state.params),
        adamM: shaped(state.adamM),
        adamV: shaped(state.adamV),
        counters: state.counters,
        curve: state.curve,
        overrides: run.overrides,
      });
      progress.line(`checkpoint: step ${state.step} → ${ckptPath}`);
    },
  });
  const sample = run.corpus.decode(outcome.sample);
  const tokensPerStep = config.train.batchSize * config.train.blockSize;
  const stepsPerSec = outcome.trainMs > 0 ? outcome.stepsTrained / (outcome.trainMs / 1000) : 0;
  if (!run.quiet && sample) progress.line(`--- sample ---\n${sample}\n--------------`);
  const fmt = (x: number | null) => x === null ? "—" : x.toFixed(4);
  console.log(
    `${experiment.name} seed ${run.seed}: ${outcome.status}  train ${fmt(outcome.final.train)}  ` +
      `val ${fmt(outcome.final.val)}  ${outcome.steps} steps  ${stepsPerSec.toFixed(0)} steps/s` +
      (outcome.reason ? `  (${outcome.reason})` : ""),
  );
  if (profile) console.log(`\n${await profile.report(outcome)}\n`);
  return {
    ...baseResult(experiment, run, startedAt),
    status: outcome.status,
    reason: outcome.reason,
    data: run.corpus.info,
    steps: outcome.steps,
    curve: outcome.curve,
    final: outcome.final,
    throughput: { stepsPerSec, tokensPerSec: stepsPerSec * tokensPerStep },
    sample,
    paramsSha256: outcome.paramsSha256,
    path: outcome.path,
  };
}

/** Writes a result unless that would silently replace a different one. */
async function saveResult(result: RunResult, outDir: string): Promise<number> {
  const path = resultPath(outDir, result.experiment, result.runId);
  let existing: RunResult | undefined;
  try {
    existing = await readResult(path);
  } catch (e) {
    if (!(await exists(path))) existing = undefined;
    else throw e;
  }
  if (existing && existing.status === "ok") {
    if (result.status === "ok" && existing.paramsSha256 === result.paramsSha256) {
      const differs = firstCurveDifference(existing, result);
      console.log(
        differs === null
          ? `reproduced ${path} bit for bit (params sha256 ${result.paramsSha256.slice(0, 16)}…)`
          // A resumed run evaluates on its own schedule; its weights are what must match.
          : `reproduced the parameters of ${path} (params sha256 ` +
            `${result.paramsSha256.slice(0, 16)}…); the loss curve differs from step ` +
            `${differs.step}, so the stored result is kept`,
      );
      return ExitCode.ok;
    }
    console.error(
      `refusing to overwrite ${path}: it holds a different ${existing.status} run ` +
        `(params sha256 ${existing.paramsSha256.slice(0, 12)}… vs ` +
        `${result.paramsSha256.slice(0, 12) || "none"}…). Move it away or pass --out DIR.`,
    );
    return ExitCode.failure;
  }
  if (existing) console.log(`replacing the ${existing.status} result at ${path}`);
  await writeResult(path, result);
  console.log(`wrote ${path}`);
  return result.status === "ok" ? ExitCode.ok : ExitCode.failure;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Compares a re-run with the stored result bit for bit. */
function reportVerification(stored: RunResult, fresh: RunResult): number {
  const differs = firstCurveDifference(stored, fresh);
  if (differs) {
    const { a, b } = differs;
    console.error(
      `verify: the curve differs first at step ${differs.step}: stored train ${a?.train} ` +
        `val ${a?.val}, re-run train ${b?.train} val ${b?.val}`,
    );
    return ExitCode.failure;
  }
  for (const key of Object.keys(stored.final)) {
    if (stored.final[key] !== fresh.final[key]) {
      console.error(`verify: final.${key} differs: ${stored.final[key]} vs ${fresh.final[key]}`);
      return ExitCode.failure;
    }
  }
  if (stored.paramsSha256 !== fresh.paramsSha256) {
    console.error(
      `verify: params sha256 differs: stored ${stored.paramsSha256}, re-run ${fresh.paramsSha256}`,
    );
    return ExitCode.failure;
  }
  console.log(`verified: ${stored.runId} reproduces bit for bit (curve, final, params sha256)`);
  return ExitCode.ok;
}

/** The first curve point where two results differ (step, or either train/val loss), or null. */
function firstCurveDifference(
  stored: RunResult,
  fresh: RunResult,
): { step: number; a?: CurvePoint; b?: CurvePoint } | null {
  for (let i = 0; i < Math.max(stored.curve.length, fresh.curve.length); i++) {
    const a = stored.curve[i], b = fresh.curve[i];
    if (!a || !b || a.step !== b.step || a.train !== b.train || a.val !== b.val) {
      return { step: Math.min(a?.step ?? Infinity, b?.step ?? Infinity), a, b };
    }
  }
  return null;
}
