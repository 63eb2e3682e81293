/**
 * Per-adapter tuning: launch shapes measured on one kind of adapter, kept in one table so that
 * another kind gets its own row instead of inheriting numbers chosen for llvmpipe. Only values
 * that change speed belong here; none may change what a kernel computes on a given adapter.
 */
import type { AdapterSummary } from "./device.ts";

/** Launch shapes the fused kernels read at record time. */
export interface KernelTuning {
  /**
   * Workgroups of kernels/fused_bigram.ts's `update`, which strides over the parameter arena.
   * Each element is updated on its own, so the count changes speed, never the bits.
   */
  updateWorkgroups: number;
  /** Invocations per workgroup of kernels/fused_attention_head.ts's `sequence` kernel. */
  sequenceWorkgroupSize: number;
}

/** The kinds of adapter the table tells apart. */
export type AdapterKind = "cpu" | "gpu";

const TUNING: Record<AdapterKind, KernelTuning> = {
  cpu: {
    // llvmpipe pays per workgroup launched, so one workgroup per core of the 2-core machines
    // seedlab is measured on rather than one per 256 elements.
    updateWorkgroups: 2,
    // One 8-wide SIMD row: llvmpipe runs a workgroup's rows as coroutines on one thread and
    // switches them at every barrier. CPU time per step of the sequence kernel at the default
    // shape: 8 → 1.36 ms, 16 → 1.44, 32 → 1.70, 64 → 1.96, 128 → 2.63.
    sequenceWorkgroupSize: 8,
  },
  gpu: {
    // Enough workgroups to give every multiprocessor of a current GPU some (not measured yet).
    updateWorkgroups: 512,
    // Not measured on a GPU yet: the llvmpipe value, which the loop-limit checks were sized for.
    sequenceWorkgroupSize: 8,
  },
};

/** Software rasterisers run compute shaders on CPU cores; everything else counts as a GPU. */
export function adapterKind(adapter: AdapterSummary): AdapterKind {
  return adapter.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(adapter.description)
    ? "cpu"
    : "gpu";
}

/** The tuning row for `adapter`. */
export function tuningFor(adapter: AdapterSummary): KernelTuning {
  return TUNING[adapterKind(adapter)];
}
