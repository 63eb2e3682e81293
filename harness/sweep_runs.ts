/**
 * Running a sweep under the output policy: the (config × seed) runs of `--set key=a,b` and
 * `--shard i/n` are each planned (write, reproduce or refuse) before the first one trains, and
 * announced as they start.
 */
import type { OutputPlan } from "./output_policy.ts";
import { planRuns } from "./output_policy.ts";
import { sweepLabels, type SweepRun } from "./sweep.ts";

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

/** The line `exp` prints (exit 0) when `--shard` leaves nothing to run. */
export function emptyShardLine(shard: string, configs: number, seeds: number): string {
  const of = configs === 1
    ? plural(seeds, "seed")
    : `${plural(configs * seeds, "run")} (${configs} configs × ${plural(seeds, "seed")})`;
  return `shard ${shard} of ${of} is empty; nothing to run`;
}

/** What planSweepRuns needs to know of the runs. */
export interface SweepIdentity {
  experiment: string;
  configs: readonly { sha256: string }[];
  runs: readonly SweepRun[];
  /** The corpus sha256 of config `index`; undefined for experiments without data. */
  dataSha256: (index: number) => string | undefined;
  initParamsSha256?: string;
  forcedGraph?: boolean;
}

/**
 * Plans every run of the sweep (one planRuns per config, over the seeds this shard holds of it)
 * before anything trains; refusals and reproduction notes are printed now. Returns the plan of
 * a run.
 */
export async function planSweepRuns(
  outDir: string,
  sweep: SweepIdentity,
  quiet: boolean,
): Promise<(run: SweepRun) => OutputPlan | undefined> {
  const plans = new Map<number, Map<number, OutputPlan>>();
  for (const [index, { sha256 }] of sweep.configs.entries()) {
    const seeds = sweep.runs.filter((r) => r.config === index).map((r) => r.seed);
    if (seeds.length === 0) continue;
    plans.set(
      index,
      await planRuns(outDir, {
        experiment: sweep.experiment,
        seeds,
        configSha256: sha256,
        dataSha256: sweep.dataSha256(index),
        initParamsSha256: sweep.initParamsSha256,
        forcedGraph: sweep.forcedGraph,
      }, quiet),
    );
  }
  return (run) => plans.get(run.config)?.get(run.seed);
}

/**
 * Prints the sweep's header now and returns what announces run `i` as it starts; silent without
 * a sweep and with `--quiet` (one line per run).
 */
export function sweepAnnouncer(
  configs: readonly { config: unknown }[],
  runs: readonly SweepRun[],
  options: { seeds: readonly number[]; shard?: string; quiet: boolean },
): (i: number) => void {
  if (configs.length < 2 || options.quiet) return () => {};
  console.log(
    `sweep: ${configs.length} configs × ${plural(options.seeds.length, "seed")}` +
      (options.shard ? `, shard ${options.shard}: ${plural(runs.length, "run")}` : ""),
  );
  const labels = sweepLabels(configs);
  return (i) => {
    const { config, seed } = runs[i];
    console.log(`sweep run ${i + 1}/${runs.length}: ${labels[config]}, seed ${seed}`);
  };
}
