/**
 * `deno task exp NAME`: resolve the config, load the data, train (or check) once per seed, and
 * write one result per run. Usage errors are reported before anything runs or is written.
 */
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
  loadInitFrom,
} from "./checkpoint.ts";
import { parseCommandArgs } from "./cli.ts";
import { formatSets, listConfigKeys, resolveConfig } from "./config.ts";
import { CORPUS_NAMES, loadCorpus, tokenize, type TokenizedCorpus } from "./data.ts";
import { captureEnv, checkBackendEnv } from "./env.ts";
import { ExitCode, UsageError } from "./errors.ts";
import { type OutputPlan, planRuns } from "./output_policy.ts";
import { userPath } from "./paths.ts";
import { createProgress } from "./progress.ts";
import type { EnvInfo, InitFrom, RunResult } from "./result_schema.ts";
import { SCHEMA_VERSION } from "./result_schema.ts";
import { runId } from "./results_io.ts";
import { finishRun, RunWriter, summaryLine } from "./run_output.ts";
import { applyShard, parseSeeds } from "./seeds.ts";
import { watchStopSignals } from "./signals.ts";
import { trainLanguageModel, type TrainState } from "./train.ts";
import { createRunProfile } from "./profile.ts";
import { checkStepLimit, explainSizeLimit, isSizeLimit, languageModelProbe } from "./limits.ts";
import { everyKey, prepareVerification, reportVerification } from "./verify.ts";
import { importExperiment, isExperimentFile } from "./experiment_file.ts";

const USAGE = `usage: deno task exp NAME [--seed N | --seeds A..B|a,b,c] [--shard i/n]
       [--set key=value]... [--config FILE] [--data mobydick|tinyshakespeare|FILE]
       [--out DIR] [--quiet] [--verify RESULT.json] [--resume CKPT] [--init-from CKPT]
       [--save-every N] [--profile] [--help]`;

const DEFAULT_SEED = 1337;

interface ExpArgs {
  name: string;
  seeds: number[];
  /** Set when --shard left no seeds: the line that says so (exit 0, nothing runs). */
  emptyShard?: string;
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
}

/** `data=FILE` with FILE resolved where the user typed it; corpus names stay names. */
function dataPathFromUser(set: string): string {
  const m = /^\s*data\s*=(.*)$/s.exec(set);
  if (!m || (CORPUS_NAMES as readonly string[]).includes(m[1]) || m[1] === "") return set;
  return `data=${userPath(m[1])}`;
}

function knownExperiments(): string {
  return [...experiments.keys()].join(", ");
}

/** Parses `exp` arguments; every problem is a UsageError (exit 2). */
export function parseExpArgs(args: string[]): ExpArgs {
  const parsed = parseCommandArgs(args, {
    seed: { type: "string" },
    seeds: { type: "string" },
    shard: { type: "string" },
    set: { type: "string", multiple: true },
    config: { type: "string" },
    data: { type: "string", multiple: true },
    out: { type: "string" },
    quiet: { type: "boolean" },
    verify: { type: "string" },
    resume: { type: "string" },
    "init-from": { type: "string" },
    "save-every": { type: "string" },
    profile: { type: "boolean" },
  }, USAGE);
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
  const seedOption = values.seed !== undefined ? "--seed" : "--seeds";
  let seeds = parseSeeds(values.seeds ?? values.seed ?? String(DEFAULT_SEED), seedOption);
  let emptyShard: string | undefined;
  if (values.shard !== undefined) {
    const all = seeds.length;
    seeds = applyShard(seeds, values.shard);
    if (seeds.length === 0) {
      emptyShard = `shard ${values.shard} of ${all} seed${all === 1 ? "" : "s"} is empty; ` +
        "nothing to run";
    }
  }
  // --data is `--set data=…`; kept in command-line order so the last one wins either way.
  const sets: string[] = [];
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== "option" || token.value === undefined) continue;
    if (token.name === "set") sets.push(token.value);
    if (token.name === "data") sets.push(`data=${token.value}`);
  }
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
  const typed = (path: string | undefined) => path === undefined ? undefined : userPath(path);
  return {
    name: isExperimentFile(name) ? userPath(name) : name,
    seeds,
    emptyShard,
    sets: sets.map(dataPathFromUser),
    configFile: typed(values.config),
    out: typed(values.out) ?? "results",
    quiet: values.quiet ?? false,
    verify: typed(values.verify),
    resume: typed(values.resume),
    initFrom: typed(values["init-from"]),
    saveEvery,
    profile: values.profile ?? false,
  };
}

/** Runs the `exp` command; returns the process exit code. */
export async function runExp(argv: string[]): Promise<number> {
  const args = parseExpArgs(argv);
  if (args.emptyShard) {
    console.log(args.emptyShard);
    return ExitCode.ok;
  }
  const experiment = experiments.get(args.name) ?? await importExperiment(args.name);

  let verifyAgainst: RunResult | undefined;
  let initFrom: Checkpoint | undefined;
  let initRecord: InitFrom | undefined;
  if (args.verify) {
    ({ stored: verifyAgainst, init: initFrom } = await prepareVerification(
      args.verify,
      experiment.name,
    ));
    initRecord = verifyAgainst.initFrom;
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
    // A run started from other weights stays that run when resumed: same run id.
    initRecord = resume.initFrom;
  }
  if (args.initFrom) ({ ckpt: initFrom, record: initRecord } = await loadInitFrom(args.initFrom));

  let resolved = await resolveConfig(experiment.schema as never, {
    file: args.configFile,
    sets: args.sets,
  });
  if (verifyAgainst && resolved.sha256 !== verifyAgainst.configSha256) {
    // The run used a --config file, or a default changed since: set every key as stored.
    resolved = await resolveConfig(experiment.schema as never, {
      sets: formatSets(everyKey(experiment.schema, verifyAgainst.config)),
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
    const storedData = verifyAgainst?.data;
    if (storedData && storedData.sha256 !== corpus.info.sha256) {
      throw new UsageError(
        `${args.verify} was trained on data ${storedData.name} with sha256 ` +
          `${storedData.sha256.slice(0, 12)}…; ${lm.data} now has sha256 ` +
          `${corpus.info.sha256.slice(0, 12)}…, so it cannot be re-run on the same data`,
      );
    }
  } else if (resume || initFrom || args.saveEvery !== undefined) {
    throw new UsageError(
      `'${experiment.name}' trains nothing: --resume, --init-from and --save-every do not apply`,
    );
  }

  checkBackendEnv();
  const gpu = await getGpu();
  if (corpus) checkStepLimit(config as unknown as LanguageModelConfig, gpu);
  const env = await captureEnv(gpu.adapter);
  // Decided before anything trains: where each run may write, or that it may not run at all.
  const plans = verifyAgainst ? new Map<number, OutputPlan>() : await planRuns(args.out, {
    experiment: experiment.name,
    seeds: args.seeds,
    configSha256: resolved.sha256,
    dataSha256: corpus?.info.sha256,
    initParamsSha256: initRecord?.paramsSha256,
  }, args.quiet);
  if (resume && !args.quiet) {
    console.log(
      `resuming ${args.resume} from step ${resume.step} to train.steps=` +
        `${(config as unknown as LanguageModelConfig).train.steps}`,
    );
  }
  const progress = createProgress(args.quiet);
  const stop = watchStopSignals((signal) =>
    progress.line(`interrupt: finishing the current chunk and writing the result… (${signal})`)
  );
  let exit: number = ExitCode.ok;
  try {
    for (const seed of args.seeds) {
      if (stop.requested()) break;
      const plan = plans.get(seed);
      if (plan?.mode === "refuse") {
        exit = exit === ExitCode.ok ? ExitCode.failure : exit;
        continue;
      }
      const writer = plan?.mode === "write"
        ? new RunWriter(plan, (line) => progress.line(line))
        : undefined;
      const common = {
        gpu,
        env,
        seed,
        config,
        configSha256: resolved.sha256,
        overrides: resolved.overrides,
        initFrom: initRecord,
        interrupted: () => stop.requested(),
      };
      let result: RunResult;
      try {
        result = experiment.kind === "check"
          ? await runCheck(experiment, common)
          : await runLanguageModel(experiment, {
            ...common,
            corpus: corpus!,
            quiet: args.quiet,
            saveEvery: args.saveEvery,
            resume,
            initParams: initFrom,
            // A verification re-run or a reproduction check writes no checkpoint.
            writer,
            profile: args.profile,
          });
      } catch (e) {
        // Sizes are found too large while the run is built, before it trains or writes.
        if (!isSizeLimit(e)) throw e;
        throw await explainSizeLimit(e, {
          config,
          overrides: resolved.overrides,
          defaults: Object.fromEntries(
            listConfigKeys(experiment.schema as never).map((k) => [k.key, k.default]),
          ),
          vocabulary: corpus && { name: corpus.info.name, size: corpus.vocab.length },
          // A check experiment computes whatever it builds: probing it could run for hours.
          fits: experiment.kind === "check" ? undefined : languageModelProbe(gpu, experiment),
        });
      }
      if (!args.quiet || verifyAgainst) console.log(summaryLine(result));
      const code = verifyAgainst
        ? reportVerification(verifyAgainst, result)
        : await finishRun(plan!, result, writer, args.quiet);
      if (result.status === "interrupted") exit = stop.exitCode();
      else if (code !== ExitCode.ok && exit === ExitCode.ok) exit = code;
    }
  } finally {
    stop.dispose();
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
  initFrom?: InitFrom;
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
    runId: runId(run.configSha256, run.seed, run.initFrom?.paramsSha256),
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
    ...(run.initFrom ? { initFrom: run.initFrom } : {}),
  };
}

async function runCheck(experiment: CheckExperiment, run: CommonRun): Promise<RunResult> {
  const startedAt = new Date();
  const outcome = await experiment.run(run.gpu, run.config, run.seed);
  const status = outcome.failures.length > 0 ? "failed" : "ok";
  for (const f of outcome.failures) console.error(`  bound exceeded: ${f}`);
  return {
    ...baseResult(experiment, run, startedAt),
    status,
    reason: outcome.failures.length > 0 ? outcome.failures.join("; ") : undefined,
    steps: 0,
    curve: [],
    final: outcome.final,
    throughput: { stepsPerSec: 0, tokensPerSec: 0 },
    sample: "",
  };
}

interface LanguageModelRun extends CommonRun {
  corpus: TokenizedCorpus;
  quiet: boolean;
  saveEvery?: number;
  resume?: Checkpoint;
  initParams?: Checkpoint;
  /** Where checkpoints go; undefined when this run writes none (verify, reproduction). */
  writer?: RunWriter;
  profile: boolean;
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
  if (run.initParams) checkInitCompatible(shapes, run.initParams);
  if (run.resume) checkInitCompatible(shapes, run.resume);
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
  const writer = run.writer;
  const outcome = await trainLanguageModel({
    submitter: profile?.submitter,
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
    initParams: run.initParams ? toMap(run.initParams.params) : undefined,
    saveEvery: run.saveEvery,
    onCheckpoint: !writer ? undefined : async (state, final) => {
      const shaped = (m: Map<string, Float32Array>) =>
        Object.fromEntries(params.map((p) => [p.name, { shape: p.shape, data: m.get(p.name)! }]));
      await writer.checkpoint({
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
        ...(run.initFrom ? { initFrom: run.initFrom } : {}),
      }, final);
    },
  });
  const sample = run.corpus.decode(outcome.sample);
  const tokensPerStep = config.train.batchSize * config.train.blockSize;
  const stepsPerSec = outcome.trainMs > 0 ? outcome.stepsTrained / (outcome.trainMs / 1000) : 0;
  if (!run.quiet && sample) progress.line(`--- sample ---\n${sample}\n--------------`);
  if (profile) console.log(`\n${await profile.report(outcome.timing)}\n`);
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
  };
}
