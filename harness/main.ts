/** The seedlab command line: `exp`, `diff`, `check`, `report`, `export`. */
import { NoAdapterError } from "../kernels/device.ts";
import { ExitCode, HelpRequested, UsageError } from "./errors.ts";

const COMMANDS: Record<string, () => Promise<(args: string[]) => Promise<number>>> = {
  exp: async () => (await import("./exp.ts")).runExp,
  diff: async () => (await import("./diff.ts")).runDiff,
  check: async () => (await import("./check.ts")).runCheck,
  report: async () => (await import("./report.ts")).runReport,
  export: async () => (await import("./export.ts")).runExport,
};

/** Runs one command and maps errors to exit codes. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  const load = command ? COMMANDS[command] : undefined;
  if (!load) {
    console.error(`usage: seedlab <${Object.keys(COMMANDS).join("|")}> ...`);
    return ExitCode.usage;
  }
  try {
    return await (await load())(rest);
  } catch (e) {
    if (e instanceof HelpRequested) {
      console.log(e.usage);
      return ExitCode.ok;
    }
    if (e instanceof UsageError) {
      console.error(`error: ${e.message}`);
      return ExitCode.usage;
    }
    if (e instanceof NoAdapterError) {
      console.error(`error: ${e.message}`);
      return ExitCode.noAdapter;
    }
    throw e;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
