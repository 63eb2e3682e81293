/**
 * Argument parsing shared by every command: `--help` prints the command's usage (exit 0), and
 * node's parseArgs errors become one-line UsageErrors (exit 2) that name the option.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { HelpRequested, UsageError } from "./errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** What parseArgs's error codes mean, in the words a user reads. */
export function describeParseError(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: string }).code;
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? "";
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option '${quoted.split(" ")[0]}'`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument '${quoted}'`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      const option = quoted.split(" ")[0];
      return message.includes("argument missing")
        ? `option ${option} needs a value`
        : `option ${option} takes no value`;
    }
    default:
      return message;
  }
}

/**
 * Parses `args` strictly with `options` (plus `--help`/`-h`). `--help` anywhere before a `--`
 * throws HelpRequested with `usage`; a bad option throws a UsageError ending with `usage`.
 */
export function parseCommandArgs<T extends Options>(
  args: string[],
  options: T,
  usage: string,
  allowPositionals = true,
) {
  const end = args.indexOf("--");
  const head = end < 0 ? args : args.slice(0, end);
  if (head.includes("--help") || head.includes("-h")) throw new HelpRequested(usage);
  try {
    return parseArgs({ args, options, allowPositionals, strict: true, tokens: true });
  } catch (e) {
    throw new UsageError(`${describeParseError(e)}\n${usage}`);
  }
}
