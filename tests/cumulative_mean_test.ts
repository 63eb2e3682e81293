import { ok, throws } from "node:assert/strict";
import { cumulativeMean, cumulativeMeanReference } from "../kernels/cumulative_mean.ts";
import { getGpu } from "../kernels/device.ts";
import { philoxWords, unitFloat } from "../kernels/philox.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import { createTensor, readF32, ShapeError } from "../kernels/tensor.ts";

/** Uniform [-1, 1) test data from the project's own generator. */
function rand(n: number, seed: number): Float32Array {
  return Float32Array.from(philoxWords(n, [seed, 0x7e57]), (w) => 2 * unitFloat(w) - 1);
}

/** Largest absolute difference relative to the largest magnitude of the expected values. */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0, mag = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    mag = Math.max(mag, Math.abs(want[i]));
  }
  return diff / Math.max(mag, 1e-30);
}

Deno.test("cumulativeMean matches the lecture's xbow loop", async () => {
  const gpu = await getGpu();
  // [4, 8, 2] is the lecture's toy example; the others cover vec4 channels and long rows.
  const shapes = [[4, 8, 2], [2, 16, 8], [3, 7, 5], [1, 200, 4], [1, 1, 1]];
  const runs = shapes.map((shape, i) => {
    const hx = rand(shape[0] * shape[1] * shape[2], i + 1);
    return {
      shape,
      x: createTensor(gpu, shape, "f32", "x", hx),
      out: createTensor(gpu, shape, "f32", "xbow"),
      want: cumulativeMeanReference(hx, shape[0], shape[1], shape[2]),
    };
  });
  await runOnce(gpu, (rec) => {
    for (const r of runs) cumulativeMean(rec, r.x, r.out);
  });
  for (const r of runs) {
    const err = relErr(await readF32(r.out), r.want);
    ok(err < 1e-5, `cumulativeMean ${JSON.stringify(r.shape)}: ${err}`);
  }
});

Deno.test("cumulativeMean rejects tensors that are not [B, T, C] or differ", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const t = (s: number[], name: string) => createTensor(gpu, s, "f32", name);
  throws(
    () => cumulativeMean(rec, t([8, 2], "x"), t([8, 2], "out")),
    (e: unknown) =>
      e instanceof ShapeError && /cumulativeMean/.test(e.message) && /\[8, 2\]/.test(e.message),
  );
  throws(
    () => cumulativeMean(rec, t([4, 8, 2], "x"), t([4, 2, 8], "out")),
    (e: unknown) =>
      e instanceof ShapeError && /\[4, 8, 2\]/.test(e.message) && /\[4, 2, 8\]/.test(e.message),
  );
  await rec.finish();
});
