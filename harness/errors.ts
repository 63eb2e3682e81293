/** Error kinds the CLI maps to exit codes. */

/** Bad input from the user (arguments, config, data path): exit 2, no result written. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** `--help` on a command: main prints the usage on stdout and exits 0. */
export class HelpRequested extends Error {
  constructor(readonly usage: string) {
    super("help requested");
    this.name = "HelpRequested";
  }
}

/** Exit codes of every seedlab command. */
export const ExitCode = {
  ok: 0,
  /** A run failed, diverged or regressed, or a verification did not match. */
  failure: 1,
  usage: 2,
  noAdapter: 3,
  /** SIGINT (Ctrl-C): 128 + 2, as shells report it. */
  interrupted: 130,
  /** SIGTERM (a scheduler's time limit): 128 + 15. */
  terminated: 143,
} as const;
