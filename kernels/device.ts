/**
 * The GPU layer's entry point: one adapter, one device, requested with the limits the kernels
 * need (the WebGPU defaults are well below what llvmpipe and real GPUs offer).
 */

/** What the results record about the adapter a run used. */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  isFallbackAdapter: boolean;
}

/** A ready device plus the facts about it that kernels and results need. */
export interface Gpu {
  device: GPUDevice;
  adapter: AdapterSummary;
  limits: GPUSupportedLimits;
  hasTimestamps: boolean;
}

/** Raised when no WebGPU adapter exists; the CLI turns it into exit code 3. */
export class NoAdapterError extends Error {
  constructor() {
    super(
      "No WebGPU adapter found. seedlab runs its kernels on WebGPU; on a machine without a GPU " +
        "install Mesa's software rasteriser llvmpipe: `apt-get install mesa-vulkan-drivers` " +
        "(Vulkan) or `apt-get install libegl-mesa0` (GL).",
    );
    this.name = "NoAdapterError";
  }
}

/** Limits worth raising from the defaults to the adapter's maxima. */
const RAISED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupsPerDimension",
] as const;

let cached: Promise<Gpu> | undefined;

/** Returns the process-wide GPU, acquiring adapter and device on first use. */
export function getGpu(): Promise<Gpu> {
  cached ??= acquire();
  return cached;
}

/**
 * Mesa's Vulkan and EGL loaders print "XDG_RUNTIME_DIR is invalid" on headless machines (CI,
 * containers) where it is unset; a private directory keeps that noise out of every command.
 */
function ensureRuntimeDir(): void {
  const current = Deno.env.get("XDG_RUNTIME_DIR");
  if (current && existsDir(current)) return;
  const dir = `${Deno.env.get("TMPDIR") ?? "/tmp"}/seedlab-runtime-${Deno.uid() ?? "user"}`;
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.env.set("XDG_RUNTIME_DIR", dir);
  } catch {
    // Only cosmetic: the adapter works without it.
  }
}

function existsDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

async function acquire(): Promise<Gpu> {
  if (!("gpu" in navigator) || navigator.gpu === undefined) throw new NoAdapterError();
  if (Deno.build.os === "linux") ensureRuntimeDir();
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new NoAdapterError();
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const hasTimestamps = adapter.features.has("timestamp-query");
  const device = await adapter.requestDevice({
    requiredLimits,
    requiredFeatures: hasTimestamps ? ["timestamp-query"] : [],
  });
  device.addEventListener("uncapturederror", (event) => {
    // A validation error inside a replayed plan would otherwise only show up as wrong numbers.
    console.error(`WebGPU error: ${(event as GPUUncapturedErrorEvent).error.message}`);
  });
  const info = adapter.info;
  return {
    device,
    adapter: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      // Deno reads DENO_WEBGPU_BACKEND (e.g. "vulkan", "gl"); without it wgpu picks one.
      backend: Deno.env.get("DENO_WEBGPU_BACKEND") ?? "auto",
      isFallbackAdapter: (info as GPUAdapterInfo & { isFallbackAdapter?: boolean })
        .isFallbackAdapter ?? false,
    },
    limits: device.limits,
    hasTimestamps,
  };
}
