/** The averaging trick of the lecture (xbow): each position's mean over itself and its past. */
import source from "./cumulative_mean.wgsl" with { type: "text" };
import { requireDisjoint, requireF32, requireSameShape } from "./validate.ts";
import { grid1d } from "./grid.ts";
import { MAX_LOOP_ITERATIONS } from "./device_limits.ts";
import type { Recorder } from "./program.ts";
import { LimitError, ShapeError, type Tensor } from "./tensor.ts";

/** Records out[b, t, :] = mean(x[b, 0..t, :]) for x [B, T, C]. */
export function cumulativeMean(rec: Recorder, x: Tensor, out: Tensor): void {
  requireF32("cumulativeMean", x, out);
  requireSameShape("cumulativeMean", x, out);
  requireDisjoint("cumulativeMean", [out], [x]);
  if (x.shape.length !== 3) {
    throw new ShapeError(`cumulativeMean: ${x.describe()} must be [B, T, C]`);
  }
  const [B, T, C] = x.shape;
  if (T > MAX_LOOP_ITERATIONS) {
    throw new LimitError(
      `cumulativeMean: T=${T} of ${x.describe()} needs ${T} loop iterations per invocation, ` +
        `above llvmpipe's limit of ${MAX_LOOP_ITERATIONS}`,
    );
  }
  if (x.size === 0) return;
  const vec = C % 4 === 0;
  const channels = vec ? C / 4 : C;
  rec.dispatch(
    {
      name: "cumulative_mean",
      code: `alias T = ${vec ? "vec4<f32>" : "f32"};\n` + source,
      constants: { BATCH: B, TIME: T, CHANNELS: channels },
    },
    [x, out],
    grid1d(B * channels, 64),
  );
}

/** float64 reference of `cumulativeMean` for x [B, T, C], computed as the lecture's double loop. */
export function cumulativeMeanReference(
  x: ArrayLike<number>,
  B: number,
  T: number,
  C: number,
): Float64Array {
  const out = new Float64Array(B * T * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let u = 0; u <= t; u++) s += x[(b * T + u) * C + c];
        out[(b * T + t) * C + c] = s / (t + 1);
      }
    }
  }
  return out;
}
