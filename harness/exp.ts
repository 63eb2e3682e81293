/**
 * `deno task exp NAME`: resolve the config, load the data, train (or check) once per run of
 * (config × seed), and write one result per run. Usage errors are reported before anything runs or is written.
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
import { checkInitCompatible, type Checkpoint, loadCheckpoint } from "./checkpoint.ts";
import { formatSets, listConfigKeys, resolveConfig } from "./config.ts";
import { loadCorpus, tokenize, type TokenizedCorpus } from "./data.ts";
import { captureEnv, checkBackendEnv } from "./env.ts";
import { ExitCode, UsageError } from "./errors.ts";
import { createProgress } from "./progress.ts";
import type { EnvInfo, InitFrom, RunResult } from "./result_schema.ts";
import { SCHEMA_VERSION } from "./result_schema.ts";
import { runId } from "./results_io.ts";
import { finishRun, RunWriter, summaryLine } from "./run_output.ts";
import { watchStopSignals } from "./signals.ts";
import { expandSweep, resolveSweep, sweepRuns } from "./sweep.ts";
import { describeInit, type InitWeights, loadInitFrom, matchInitWeights } from "./state_dict.ts";
import { emptyShardLine, planSweepRuns, sweepAnnouncer } from "./sweep_runs.ts";
import { trainLanguageModel, type TrainState } from "./train.ts";
import { createRunProfile } from "./profile.ts";
import { checkStepLimit, explainSizeLimit, isSizeLimit, languageModelProbe } from "./limits.ts";
import { everyKey, prepareVerification, reportVerification } from "./verify.ts";
import { importExperiment } from "./experiment_file.ts";
import { type ExpArgs, parseExpArgs } from "./exp_args.ts";

export { parseExpArgs };

/** Runs the `exp` command; returns the process exit code. */
export async function runExp(argv: string[]): Promise<number> {
  return (await runExperiment(parseExpArgs(argv))).exit;
}

/** What `runExperiment` did: the exit code `exp` returns, and the result of every run made. */
export interface ExperimentOutcome {
  exit: number;
  results: RunResult[];
}

/**
 * Runs an experiment as `exp` does with the same options, typed (check.ts calls it); the
 * results are written as `exp` writes them and also returned. Usage errors throw UsageError.
 */
export async function runExperiment(options: ExpArgs): Promise<ExperimentOutcome> {
  const args = { ...options, seeds: [...options.seeds], sets: [...options.sets] };
  const results: RunResult[] = [];
  const experiment = experiments.get(args.name) ?? await importExperiment(args.name);

  let verifyAgainst: RunResult | undefined;
  let initWeights: InitWeights | undefined;
  let initRecord: InitFrom | undefined;
  if (args.verify) {
    ({ stored: verifyAgainst, init: initWeights } = await prepareVerification(
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
  if (args.initFrom) {
    ({ weights: initWeights, record: initRecord } = await loadInitFrom(args.initFrom));
  }

  // One resolved config per combination of a `--set a=1,2` sweep (one without a sweep).
  const configs = await resolveSweep(
    experiment.schema as never,
    verifyAgainst || resume ? [args.sets] : expandSweep(args.sets),
    args.configFile,
  );
  if (verifyAgainst && configs[0].sha256 !== verifyAgainst.configSha256) {
    // The run used a --config file, or a default changed since: set every key as stored.
    configs[0] = await resolveConfig(experiment.schema as never, {
      sets: formatSets(everyKey(experiment.schema, verifyAgainst.config)),
    });
  }
  if (verifyAgainst && configs[0].sha256 !== verifyAgainst.configSha256) {
    throw new UsageError(
      `${args.verify}: its config no longer resolves to the same thing (sha ` +
        `${configs[0].sha256.slice(0, 12)} vs ${verifyAgainst.configSha256.slice(0, 12)}); ` +
        "the experiment's config schema changed since it was written",
    );
  }
  const runs = sweepRuns(configs.length, args.seeds, args.shard);
  if (runs.length === 0) {
    console.log(emptyShardLine(args.shard!, configs.length, args.seeds.length));
    return { exit: ExitCode.ok, results };
  }

  const corpora: TokenizedCorpus[] = [];
  const texts = new Map<string, Awaited<ReturnType<typeof loadCorpus>>>();
  if (experiment.kind === "language-model") {
    for (const { config } of configs) {
      const lm = config as LanguageModelConfig;
      if (resume && resume.step > lm.train.steps) {
        throw new UsageError(
          `${args.resume} is at step ${resume.step}, beyond train.steps=${lm.train.steps}; ` +
            "pass --set train.steps=N with N at least that",
        );
      }
      if (!texts.has(lm.data)) texts.set(lm.data, await loadCorpus(lm.data));
      corpora.push(tokenize(texts.get(lm.data)!, lm.train.blockSize + 1));
    }
    const storedData = verifyAgainst?.data;
    if (storedData && storedData.sha256 !== corpora[0].info.sha256) {
      throw new UsageError(
        `${args.verify} was trained on data ${storedData.name} with sha256 ` +
          `${storedData.sha256.slice(0, 12)}…; ${
            (configs[0].config as LanguageModelConfig).data
          } now has sha256 ` +
          `${corpora[0].info.sha256.slice(0, 12)}…, so it cannot be re-run on the same data`,
      );
    }
  } else if (resume || initWeights || args.saveEvery !== undefined) {
    throw new UsageError(
      `'${experiment.name}' trains nothing: --resume, --init-from and --save-every do not apply`,
    );
  }

  checkBackendEnv();
  const gpu = await getGpu();
  for (const { config } of corpora.length > 0 ? configs : []) {
    checkStepLimit(config as unknown as LanguageModelConfig, gpu);
  }
  const env = await captureEnv(gpu.adapter);
  // A verification re-runs the path its result was forced onto.
  const forcedGraph = args.graph || verifyAgainst?.forcedGraph === true;
  // Decided before anything trains: where each run may write, or that it may not run at all.
  const planOf = verifyAgainst ? () => undefined : await planSweepRuns(args.out, {
    experiment: experiment.name,
    configs,
    runs,
    dataSha256: (index) => corpora[index]?.info.sha256,
    initParamsSha256: initRecord?.paramsSha256,
    forcedGraph,
  }, args.quiet);
  if (resume && !args.quiet) {
    console.log(
      `resuming ${args.resume} from step ${resume.step} to train.steps=` +
        `${(configs[0].config as unknown as LanguageModelConfig).train.steps}`,
    );
  }
  const announce = sweepAnnouncer(configs, runs, args);
  const progress = createProgress(args.quiet);
  const stop = watchStopSignals((signal) =>
    progress.line(`interrupt: finishing the current chunk and writing the result… (${signal})`)
  );
  let exit: number = ExitCode.ok;
  try {
    for (const [i, run] of runs.entries()) {
      if (stop.requested()) break;
      const { config: index, seed } = run;
      const plan = planOf(run);
      if (plan?.mode === "refuse") {
        exit = exit === ExitCode.ok ? ExitCode.failure : exit;
        continue;
      }
      announce(i);
      const writer = plan?.mode === "write"
        ? new RunWriter(plan, (line) => progress.line(line))
        : undefined;
      const resolved = configs[index];
      const config = resolved.config as Record<string, unknown>;
      const common = {
        gpu,
        env,
        seed,
        config,
        configSha256: resolved.sha256,
        overrides: resolved.overrides,
        initFrom: initRecord,
        forcedGraph,
        interrupted: () => stop.requested(),
      };
      let result: RunResult;
      try {
        result = experiment.kind === "check"
          ? await runCheck(experiment, common)
          : await runLanguageModel(experiment, {
            ...common,
            corpus: corpora[index],
            quiet: args.quiet,
            saveEvery: args.saveEvery,
            resume,
            initWeights,
            // A verification re-run or a reproduction check writes no checkpoint.
            writer,
            profile: args.profile,
          });
      } catch (e) {
        // Sizes are found too large while the run is built, before it trains or writes.
        if (!isSizeLimit(e)) throw e;
        const corpus = corpora[index];
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
      results.push(result);
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
  return { exit, results };
}

interface CommonRun {
  gpu: Gpu;
  env: EnvInfo;
  seed: number;
  config: Record<string, unknown>;
  configSha256: string;
  overrides: Record<string, unknown>;
  initFrom?: InitFrom;
  /** `--graph`: the autograd graph even where the model has a fused step. */
  forcedGraph: boolean;
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
    runId: runId(run.configSha256, run.seed, run.initFrom?.paramsSha256, run.forcedGraph),
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
    ...(run.forcedGraph ? { forcedGraph: true as const } : {}),
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
  /** `--init-from` weights: a seedlab checkpoint or a PyTorch state dict. */
  initWeights?: InitWeights;
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
  const init = run.initWeights ? matchInitWeights(experiment, params, run.initWeights) : undefined;
  if (run.resume) checkInitCompatible(shapes, run.resume);
  const progress = createProgress(run.quiet);
  if (!run.quiet) {
    progress.line(
      `${experiment.name} seed ${run.seed}: ${store.count} parameters, data ${run.corpus.info.name} ` +
        `(${run.corpus.info.characters} chars, vocab ${run.corpus.vocab.length}), ` +
        `adapter ${run.gpu.adapter.description}`,
    );
    if (init) progress.line(describeInit(run.initWeights!, init));
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
    fused: !run.forcedGraph,
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
    initParams: init?.params,
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
