import { ok, throws } from "node:assert/strict";
import { cumulativeMean, cumulativeMeanReference } from "../kernels/cumulative_mean.ts";
import { getGpu } from "../kernels/device.ts";
import { Recorder, runOnce } from "../kernels/program.ts";
import { createTensor, readF32, ShapeError } from "../kernels/tensor.ts";
import { randomF32, relError } from "./support.ts";

Deno.test("cumulativeMean matches the lecture's xbow loop", async () => {
  const gpu = await getGpu();
  // [4, 8, 2] is the lecture's toy example; the others cover vec4 channels and long rows.
  const shapes = [[4, 8, 2], [2, 16, 8], [3, 7, 5], [1, 200, 4], [1, 1, 1]];
  const runs = shapes.map((shape, i) => {
    const hx = randomF32(shape[0] * shape[1] * shape[2], i + 1);
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
    const err = relError(await readF32(r.out), r.want);
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
