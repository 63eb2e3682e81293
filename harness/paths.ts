/**
 * Paths the user typed. `deno task` runs every task in the project root, so a relative path
 * typed in a subdirectory would silently resolve against the root; `deno task` sets INIT_CWD
 * to where the user stands, and that is what relative paths mean.
 */
import { isAbsolute, resolve } from "node:path";
import { UsageError } from "./errors.ts";

/** `path` resolved against INIT_CWD when it is relative and INIT_CWD is set; else unchanged. */
export function userPath(path: string): string {
  const initCwd = Deno.env.get("INIT_CWD");
  if (!initCwd || isAbsolute(path) || resolve(initCwd) === Deno.cwd()) return path;
  return resolve(initCwd, path);
}

/**
 * Throws a UsageError when `path` exists but is not a regular file (a FIFO would block the
 * read forever, a device would never end); a missing path is left to the reader to report.
 */
export async function requireRegularFile(path: string, what: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    return;
  }
  if (info.isFile) return;
  const kind = info.isDirectory
    ? "a directory"
    : info.isFifo
    ? "a FIFO (named pipe)"
    : info.isSocket
    ? "a socket"
    : info.isCharDevice || info.isBlockDevice
    ? "a device"
    : "not a regular file";
  throw new UsageError(`${what} '${path}' is ${kind}; give a regular file`);
}
