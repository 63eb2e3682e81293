import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  normalFillReference,
  philox4x32,
  philoxWords,
  streamKey,
  uniformFillReference,
} from "../kernels/philox.ts";
import { getGpu } from "../kernels/device.ts";
import { createTensor, readF32, readU32 } from "../kernels/tensor.ts";
import { runOnce } from "../kernels/program.ts";
import { fillNormal, fillPhiloxWords, fillUniform } from "../kernels/random_fill.ts";

// Known-answer vectors published with Random123 (kat_vectors, philox4x32 10).
const KAT: [[number, number, number, number], [number, number], number[]][] = [
  [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
  [
    [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    [0xffffffff, 0xffffffff],
    [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
  ],
  [
    [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
    [0xa4093822, 0x299f31d0],
    [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
  ],
];

Deno.test("philox4x32-10 TypeScript matches the Random123 known-answer vectors", () => {
  for (const [ctr, key, want] of KAT) assertEquals(philox4x32(ctr, key), want);
});

Deno.test("philox4x32-10 WGSL equals TypeScript on 100,000 words", async () => {
  const gpu = await getGpu();
  const n = 100_000;
  const key = streamKey(1337, "train");
  const out = createTensor(gpu, [n], "u32", "words");
  await runOnce(gpu, (rec) => fillPhiloxWords(rec, out, key, 7));
  const got = await readU32(out);
  const want = philoxWords(n, key, 7);
  let mismatches = 0;
  for (let i = 0; i < n; i++) if (got[i] !== want[i]) mismatches++;
  assertEquals(mismatches, 0);
});

Deno.test("WGSL Philox KAT vector through the fill kernel (key all ones, counter 0)", async () => {
  // The fill kernel's counter (i, c1, 0, 0) at i = 0, c1 = 0 is the first KAT counter.
  const gpu = await getGpu();
  const out = createTensor(gpu, [4], "u32", "kat");
  await runOnce(gpu, (rec) => fillPhiloxWords(rec, out, [0, 0], 0));
  assertEquals([...await readU32(out)], KAT[0][2]);
});

Deno.test("normal and uniform fills match their references and have the right moments", async () => {
  const gpu = await getGpu();
  const n = 50_000;
  const key = streamKey(42, "init");
  const normal = createTensor(gpu, [n], "f32", "normal");
  const uniform = createTensor(gpu, [n], "f32", "uniform");
  await runOnce(gpu, (rec) => {
    fillNormal(rec, normal, key, 3, 0, 1);
    fillUniform(rec, uniform, key, 4, -0.5, 0.5);
  });
  const gotN = await readF32(normal);
  const gotU = await readF32(uniform);
  const wantN = normalFillReference(n, key, 3, 0, 1);
  const wantU = uniformFillReference(n, key, 4, -0.5, 0.5);
  let maxN = 0, maxU = 0, sum = 0, sumSq = 0;
  for (let i = 0; i < n; i++) {
    maxN = Math.max(maxN, Math.abs(gotN[i] - wantN[i]));
    maxU = Math.max(maxU, Math.abs(gotU[i] - wantU[i]));
    sum += gotN[i];
    sumSq += gotN[i] * gotN[i];
    assert(gotU[i] >= -0.5 && gotU[i] < 0.5);
  }
  assert(maxN < 1e-4, `normal fill differs from reference by ${maxN}`);
  assert(maxU < 1e-6, `uniform fill differs from reference by ${maxU}`);
  const mean = sum / n;
  const variance = sumSq / n - mean * mean;
  assert(Math.abs(mean) < 0.02, `normal mean ${mean}`);
  assert(Math.abs(variance - 1) < 0.03, `normal variance ${variance}`);
});
