/**
 * Runs bench/torch_bench.py under each BLAS this machine has, so the PyTorch column says what it
 * ran on. Debian's PyTorch calls whatever `libblas.so.3` resolves to; LD_LIBRARY_PATH picks one
 * per run: the reference BLAS (libblas3) and OpenBLAS with one thread (libopenblas0-pthread),
 * where each is installed. Without either (e.g. a pip wheel with its own BLAS), one run in the
 * environment as it is. torch_bench.py reports which library actually provided sgemm_.
 */
import { fileURLToPath as fromFileUrl } from "node:url";

/** One way to run PyTorch: a label and the environment that selects its BLAS. */
export interface TorchVariant {
  label: string;
  env: Record<string, string>;
}

/** What one torch_bench.py run reported. */
export interface TorchRun {
  variant: TorchVariant;
  torch: string;
  threads: number;
  blas: { name: string; library: string | null };
  /** Steps/s per bench name. */
  figures: Record<string, number>;
}

const LIB = "/usr/lib/x86_64-linux-gnu";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The BLAS variants installed here, in column order; one plain run when none is. */
export function torchVariants(libDir = LIB): TorchVariant[] {
  const variants: TorchVariant[] = [];
  if (exists(`${libDir}/blas/libblas.so.3`)) {
    // Reference LAPACK too where installed, so no OpenBLAS is loaded at all in this run.
    const dirs = [`${libDir}/blas`, ...(exists(`${libDir}/lapack`) ? [`${libDir}/lapack`] : [])];
    variants.push({ label: "reference BLAS", env: { LD_LIBRARY_PATH: dirs.join(":") } });
  }
  if (exists(`${libDir}/openblas-pthread/libblas.so.3`)) {
    variants.push({
      label: "OpenBLAS 1 thread",
      env: { LD_LIBRARY_PATH: `${libDir}/openblas-pthread`, OPENBLAS_NUM_THREADS: "1" },
    });
  }
  return variants.length > 0 ? variants : [{ label: "PyTorch", env: {} }];
}

// Debian's python3-torch installs for the system interpreter, which may not be first on PATH.
const PYTHONS = ["python3", "/usr/bin/python3"];

/** The first interpreter that imports torch, or undefined. */
export async function findTorchPython(only?: string): Promise<string | undefined> {
  for (const python of only ? [only] : PYTHONS) {
    try {
      const probe = await new Deno.Command(python, {
        args: ["-c", "import torch"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (probe.success) return python;
    } catch {
      // Interpreter missing: try the next one.
    }
  }
  return undefined;
}

/** Runs torch_bench.py on `models` once per variant; a failed variant is reported and skipped. */
export async function runTorchBench(
  python: string,
  models: Record<string, unknown>[],
  variants: TorchVariant[],
): Promise<TorchRun[]> {
  const script = fromFileUrl(new URL("./torch_bench.py", import.meta.url));
  const runs: TorchRun[] = [];
  for (const variant of variants) {
    const child = new Deno.Command(python, {
      args: [script, "-"],
      env: variant.env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify({ models })));
    await writer.close();
    const out = await child.output();
    if (!out.success) {
      console.error(
        `PyTorch bench (${variant.label}) failed:\n` +
          new TextDecoder().decode(out.stderr).slice(-2000),
      );
      continue;
    }
    runs.push({ variant, ...JSON.parse(new TextDecoder().decode(out.stdout)) });
  }
  return runs;
}
