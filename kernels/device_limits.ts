/**
 * Limits of the devices the kernels run on that WebGPU does not report, in one place so every
 * validator quotes the same number.
 */

/**
 * llvmpipe silently stops an invocation after this many loop iterations in total (its loop
 * counter is 16-bit), leaving the rest of the work undone with no error. Every kernel whose
 * per-invocation loop count grows with the input checks it at record time.
 */
export const MAX_LOOP_ITERATIONS = 65535;
