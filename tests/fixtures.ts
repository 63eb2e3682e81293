/** Fixtures shared by tests that build synthetic results. */

/** The `env` of a synthetic result: a plausible llvmpipe machine, no git checkout. */
export const SYNTHETIC_ENV = {
  deno: "2.9.6",
  v8: "15",
  typescript: "6",
  os: "linux",
  arch: "x86_64",
  adapter: {
    vendor: "mesa",
    architecture: "",
    device: "",
    description: "llvmpipe",
    backend: "vulkan",
    isFallbackAdapter: false,
  },
  git: { commit: null, dirty: null },
} as const;
