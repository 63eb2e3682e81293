/** Workgroup-count helpers shared by the dispatchers. */

/** Largest workgroup count per dimension that every WebGPU device supports. */
export const MAX_GROUPS_PER_DIM = 65535;

/**
 * Workgroup counts covering `n` invocations of `workgroupSize`, folded into y when x would
 * exceed the per-dimension limit. Kernels recover the flat index as
 * `gid.x + gid.y * nwg.x * WG` and must bounds-check it.
 */
export function grid1d(n: number, workgroupSize: number): [number, number] {
  const groups = Math.max(1, Math.ceil(n / workgroupSize));
  if (groups <= MAX_GROUPS_PER_DIM) return [groups, 1];
  return [MAX_GROUPS_PER_DIM, Math.ceil(groups / MAX_GROUPS_PER_DIM)];
}
