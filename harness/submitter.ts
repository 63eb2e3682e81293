/**
 * How the training loop hands recorded plans to the device: a PlanSubmitter encodes replays
 * into one command buffer; --profile swaps in one that times them (harness/profile.ts).
 */
import type { Gpu } from "../kernels/device.ts";
import type { Plan } from "../kernels/program.ts";

/** Encodes replays of plans into one command buffer and submits it. */
export interface PlanSubmitter {
  /**
   * Submits each plan `times` times, in order, as one submission; `then` may append commands
   * (a readback copy) to the same command buffer.
   */
  submit(
    replays: readonly Replay[],
    then?: (encoder: GPUCommandEncoder) => void,
  ): void;
}

/** A plan to replay `times` times; `role` marks the training step (what --profile measures). */
export interface Replay {
  plan: Plan;
  times: number;
  role?: "step";
}

/** The default submitter: every replay in one compute pass of one command buffer. */
export function plainSubmitter(gpu: Gpu): PlanSubmitter {
  return {
    submit(replays, then) {
      const encoder = gpu.device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      for (const { plan, times } of replays) {
        for (let i = 0; i < times; i++) plan.encodeInto(pass);
      }
      pass.end();
      then?.(encoder);
      gpu.device.queue.submit([encoder.finish()]);
    },
  };
}
