import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { AdapterSummary } from "../kernels/device.ts";
import { adapterKind, tuningFor } from "../kernels/tuning.ts";

const llvmpipe: AdapterSummary = {
  vendor: "65541",
  architecture: "",
  device: "0",
  description: "llvmpipe (LLVM 15.0.6, 256 bits)",
  backend: "auto",
  isFallbackAdapter: true,
};

Deno.test("tuning: llvmpipe gets the launch shapes measured on it", () => {
  strictEqual(adapterKind(llvmpipe), "cpu");
  deepStrictEqual(tuningFor(llvmpipe), { updateWorkgroups: 2, sequenceWorkgroupSize: 8 });
});

Deno.test("tuning: a hardware adapter gets its own row", () => {
  const gpu = {
    ...llvmpipe,
    vendor: "4318",
    description: "NVIDIA H200",
    isFallbackAdapter: false,
  };
  strictEqual(adapterKind(gpu), "gpu");
  strictEqual(tuningFor(gpu).updateWorkgroups, 512);
  // lavapipe without the fallback flag is still a CPU rasteriser.
  strictEqual(adapterKind({ ...gpu, description: "lavapipe" }), "cpu");
});
