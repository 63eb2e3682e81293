/** Progress output: one updating line on a TTY, plain lines otherwise, nothing when quiet. */

/** Receives training progress. */
export interface Progress {
  /** Called after each readback with the latest minibatch loss. */
  step(step: number, total: number, loss: number, stepsPerSec: number): void;
  /** A line that stays (eval results, notices). */
  line(text: string): void;
  /** Ends the updating line, if any. */
  done(): void;
}

/** Chooses the reporter for the current terminal. */
export function createProgress(quiet: boolean): Progress {
  if (quiet) return { step() {}, line() {}, done() {} };
  const encoder = new TextEncoder();
  if (!Deno.stdout.isTerminal()) {
    return {
      step() {},
      line: (text) => console.log(text),
      done() {},
    };
  }
  let open = false;
  return {
    step(step, total, loss, rate) {
      const eta = rate > 0 ? (total - step) / rate : 0;
      const text = `step ${step}/${total}  loss ${loss.toFixed(4)}  ${rate.toFixed(0)} steps/s  ` +
        `ETA ${eta.toFixed(1)}s`;
      Deno.stdout.writeSync(encoder.encode(`\r\x1b[2K${text}`));
      open = true;
    },
    line(text) {
      if (open) Deno.stdout.writeSync(encoder.encode("\r\x1b[2K"));
      open = false;
      console.log(text);
    },
    done() {
      if (open) Deno.stdout.writeSync(encoder.encode("\r\x1b[2K"));
      open = false;
    },
  };
}
