/**
 * `deno task export CKPT [--out FILE]`: a seedlab checkpoint's parameters as a plain safetensors
 * state dict under the lecture's PyTorch names (plus the buffers the PyTorch module keeps), so
 * `model.load_state_dict(safetensors.torch.load_file(FILE))` loads it. AdamW moments, counters
 * and seedlab's metadata are left out.
 */
import { resolve } from "node:path";
import { experiments } from "../experiments/mod.ts";
import type { LanguageModelExperiment } from "../experiments/types.ts";
import { loadCheckpoint } from "./checkpoint.ts";
import { parseCommandArgs } from "./cli.ts";
import { ExitCode, UsageError } from "./errors.ts";
import { checkOutputFile } from "./output_policy.ts";
import { userPath } from "./paths.ts";
import { saveSafetensors } from "./safetensors.ts";
import { toStateDict } from "./state_dict.ts";

const USAGE = "usage: deno task export CKPT [--out FILE]\n" +
  "  CKPT: a seedlab checkpoint (results/<experiment>/<run-id>.safetensors)\n" +
  "  FILE: default CKPT with .safetensors replaced by .torch.safetensors";

/** Where export writes by default: `x.safetensors` → `x.torch.safetensors`. */
export function defaultExportPath(checkpoint: string): string {
  return checkpoint.replace(/(\.safetensors)?$/, ".torch.safetensors");
}

/** Runs `deno task export`; returns the exit code (usage errors throw). */
export async function runExport(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, {
    out: { type: "string", short: "o" },
  }, USAGE);
  if (parsed.positionals.length !== 1) {
    throw new UsageError(`give exactly one checkpoint\n${USAGE}`);
  }
  const path = userPath(parsed.positionals[0]);
  const out = parsed.values.out === undefined
    ? defaultExportPath(path)
    : userPath(parsed.values.out);
  if (resolve(out) === resolve(path)) {
    throw new UsageError(`--out ${out} is the checkpoint itself; choose another file`);
  }
  const ckpt = await loadCheckpoint(path);
  await checkOutputFile(out, "--out");
  const registered = experiments.get(ckpt.experiment);
  const experiment = registered?.kind === "language-model"
    ? registered as LanguageModelExperiment
    : undefined;
  const tensors = toStateDict(experiment, ckpt.params);
  try {
    // safetensors.torch.save_file writes this tag too; Hugging Face's loaders check it.
    await saveSafetensors(out, tensors, { format: "pt" });
  } catch (e) {
    console.error(`error: could not write ${out}: ${(e as Error).message}`);
    return ExitCode.failure;
  }
  const names = Object.keys(tensors);
  const buffers = names.length - Object.keys(ckpt.params).length;
  console.log(
    `wrote ${out}: ${Object.keys(ckpt.params).length} parameter(s)` +
      (buffers > 0 ? ` and ${buffers} buffer(s)` : "") +
      ` of '${ckpt.experiment}' at step ${ckpt.step}` +
      (experiment ? "" : " (not a registered experiment: names kept as they are)"),
  );
  console.log(`load it with: model.load_state_dict(safetensors.torch.load_file("${out}"))`);
  return ExitCode.ok;
}
