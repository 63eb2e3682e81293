/**
 * Writing what a run produced under the plan output_policy.ts made before it trained: the
 * checkpoint and the result as one pair, a summary line, and, when a write fails (full disk,
 * a directory made read-only mid-run), a rescue copy of what was computed.
 */
import { basename, join } from "node:path";
import { type Checkpoint, saveCheckpoint } from "./checkpoint.ts";
import { ExitCode } from "./errors.ts";
import type { OutputPlan } from "./output_policy.ts";
import type { CurvePoint, RunResult } from "./result_schema.ts";
import { writeResult } from "./results_io.ts";

type WritePlan = Extract<OutputPlan, { mode: "write" }>;

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** The one line a run ends with: status, final losses (or bounds), steps and speed. */
export function summaryLine(result: RunResult): string {
  const head = `${result.experiment} seed ${result.seed}: ${result.status}`;
  if (result.data === null) {
    const bounds = Object.entries(result.final).map(([k, v]) =>
      `${k} ${v === null ? "—" : v.toExponential(2)}`
    );
    return [head, ...bounds].join("  ");
  }
  const fmt = (x: number | null | undefined) => x == null ? "—" : x.toFixed(4);
  return `${head}  train ${fmt(result.final.train)}  val ${fmt(result.final.val)}  ` +
    `${result.steps} steps  ${result.throughput.stepsPerSec.toFixed(0)} steps/s` +
    (result.reason ? `  (${result.reason})` : "");
}

/**
 * Writes one run's checkpoints and result to the places its plan allows. The first file it
 * writes removes the other file of a stale pair, so a result and the checkpoint beside it always
 * come from the same run. A failed end-of-run write sends both files to a rescue directory.
 */
export class RunWriter {
  #wroteCheckpoint = false;
  #failed = false;
  #rescueDir?: string;

  constructor(readonly plan: WritePlan, readonly say: (line: string) => void) {}

  /** A periodic (`final` false) or end-of-run checkpoint. */
  async checkpoint(ckpt: Checkpoint, final: boolean): Promise<void> {
    const path = this.plan.checkpointPath;
    if (this.#failed) {
      await this.#rescue("checkpoint", basename(path), (p) => saveCheckpoint(p, ckpt));
      return;
    }
    try {
      if (!this.#wroteCheckpoint) await removeIfExists(this.plan.resultPath);
      await saveCheckpoint(path, ckpt);
      this.#wroteCheckpoint = true;
      this.say(`checkpoint: step ${ckpt.step} → ${path}`);
    } catch (e) {
      console.error(`error: could not write the checkpoint to ${path}: ${errorText(e)}`);
      if (!final) {
        console.error("training continues; the checkpoint is tried again at the next save");
        return;
      }
      this.#failed = true;
      // An earlier checkpoint of this run would not match the result: better none at all.
      if (this.#wroteCheckpoint) await removeIfExists(path).catch(() => {});
      await this.#rescue("checkpoint", basename(path), (p) => saveCheckpoint(p, ckpt));
    }
  }

  /** Writes the result; false when it had to go to the rescue directory (or nowhere). */
  async result(result: RunResult): Promise<boolean> {
    const path = this.plan.resultPath;
    if (!this.#failed) {
      try {
        if (!this.#wroteCheckpoint) await removeIfExists(this.plan.checkpointPath);
        await writeResult(path, result);
        return true;
      } catch (e) {
        console.error(`error: could not write the result to ${path}: ${errorText(e)}`);
      }
    }
    await this.#rescue("result", basename(path), (p) => writeResult(p, result));
    return false;
  }

  async #rescue(what: string, name: string, write: (path: string) => Promise<void>) {
    try {
      this.#rescueDir ??= await Deno.makeTempDir({ prefix: "seedlab-rescue-" });
      const path = join(this.#rescueDir, name);
      await write(path);
      console.error(`saved the ${what} to ${path} instead`);
    } catch (e) {
      console.error(`could not save the ${what} anywhere (${errorText(e)})`);
    }
  }
}

/** The first curve point where two results differ (step, or either train/val loss), or null. */
export function firstCurveDifference(
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

/**
 * Finishes a run under its plan: writes it, or compares it with the stored ok result it must
 * reproduce. Prints one line (with `quiet`, the summary and the outcome together) and returns
 * the run's exit code.
 */
export async function finishRun(
  plan: OutputPlan,
  result: RunResult,
  writer: RunWriter | undefined,
  quiet: boolean,
): Promise<number> {
  const summary = quiet ? `${summaryLine(result)}  → ` : "";
  const statusCode = result.status === "ok" ? ExitCode.ok : ExitCode.failure;
  if (plan.mode === "refuse") {
    console.error(plan.reason);
    return ExitCode.failure;
  }
  if (plan.mode === "reproduce") {
    const path = plan.resultPath;
    const existing = plan.existing;
    if (result.status === "ok" && existing.paramsSha256 === result.paramsSha256) {
      const differs = firstCurveDifference(existing, result);
      console.log(
        summary +
          (differs === null
            ? `reproduced ${path} bit for bit (params sha256 ${result.paramsSha256.slice(0, 16)}…)`
            // A resumed run evaluates on its own schedule; its weights are what must match.
            : `reproduced the parameters of ${path} (params sha256 ` +
              `${result.paramsSha256.slice(0, 16)}…); the loss curve differs from step ` +
              `${differs.step}, so the stored result is kept`),
      );
      return ExitCode.ok;
    }
    if (quiet) console.log(`${summary}not written`);
    console.error(
      `refusing to overwrite ${path}: it holds a different ${existing.status} run ` +
        `(params sha256 ${existing.paramsSha256.slice(0, 12)}… vs ` +
        `${result.paramsSha256.slice(0, 12) || "none"}…, status ${result.status}); this run's ` +
        "result and checkpoint were not written. Move it away or pass --out DIR.",
    );
    return ExitCode.failure;
  }
  if (plan.replaces && !quiet) {
    console.log(`replacing the ${plan.replaces.status} result at ${plan.resultPath}`);
  }
  const written = await writer!.result(result);
  if (!written) {
    if (quiet) console.log(`${summary}not written`);
    return ExitCode.failure;
  }
  console.log(`${summary}wrote ${plan.resultPath}`);
  return statusCode;
}
