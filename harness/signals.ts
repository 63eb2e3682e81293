/**
 * Graceful stops: Ctrl-C (SIGINT) and a scheduler's time limit (SIGTERM, sent by Slurm,
 * Kubernetes and CI runners) both ask the run to finish its chunk and write an `interrupted`
 * result and checkpoint; the exit code then says which signal it was. A second signal exits
 * at once.
 */
import { ExitCode } from "./errors.ts";

const SIGNALS = [
  { signal: "SIGINT", code: ExitCode.interrupted },
  { signal: "SIGTERM", code: ExitCode.terminated },
] as const;

/** Whether a stop was asked for, and by which signal. */
export interface StopRequest {
  /** True once SIGINT or SIGTERM arrived. */
  requested(): boolean;
  /** The signal's exit code (130 or 143); 130 when none arrived. */
  exitCode(): number;
  /** The signal's name, for messages. */
  signal(): string | undefined;
  /** Removes the listeners. */
  dispose(): void;
}

/** Listens for SIGINT and SIGTERM; `onFirst` is told about the first one. */
export function watchStopSignals(onFirst: (signal: string) => void): StopRequest {
  let received: (typeof SIGNALS)[number] | undefined;
  const listeners: { signal: Deno.Signal; listener: () => void }[] = [];
  for (const entry of SIGNALS) {
    const listener = () => {
      if (received) Deno.exit(entry.code);
      received = entry;
      onFirst(entry.signal);
    };
    try {
      Deno.addSignalListener(entry.signal, listener);
      listeners.push({ signal: entry.signal, listener });
    } catch {
      // Windows has no SIGTERM listener; Ctrl-C still works there.
    }
  }
  return {
    requested: () => received !== undefined,
    exitCode: () => received?.code ?? ExitCode.interrupted,
    signal: () => received?.signal,
    dispose() {
      for (const { signal, listener } of listeners) Deno.removeSignalListener(signal, listener);
    },
  };
}
