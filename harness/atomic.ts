/** Crash-safe file writes: a reader sees the old file or the new one, never a torn one. */
import { dirname } from "node:path";

let counter = 0;

/**
 * Writes `data` to a temporary file beside `path`, flushes it to disk, then renames it over
 * `path` (rename within one directory is atomic on POSIX file systems). On any failure the
 * temporary file is removed and the error rethrown.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${Deno.pid}-${counter++}`;
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  try {
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    // A full disk or a vanished directory must not leave a torn temporary file behind.
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
