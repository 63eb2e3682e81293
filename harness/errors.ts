/** Error kinds the CLI maps to exit codes. */

/** Bad input from the user (arguments, config, data path): exit 2, no result written. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Exit codes of every seedlab command. */
export const ExitCode = {
  ok: 0,
  /** A run failed, diverged or regressed, or a verification did not match. */
  failure: 1,
  usage: 2,
  noAdapter: 3,
  interrupted: 130,
} as const;
