/** The metric `diff` compares: any numeric field of a result, by dotted path. */
import { UsageError } from "./errors.ts";

/** Reads the number at dotted `path` (e.g. `final.val`) in `result`; UsageError naming `file`. */
export function metricValue(result: unknown, path: string, file: string): number {
  let value: unknown = result;
  const seen: string[] = [];
  for (const key of path.split(".")) {
    if (value === null || typeof value !== "object" || !(key in value)) {
      const where = seen.length ? `'${seen.join(".")}'` : "the result";
      throw new UsageError(`${file}: metric ${path}: ${where} has no field '${key}'`);
    }
    value = (value as Record<string, unknown>)[key];
    seen.push(key);
  }
  if (typeof value !== "number" || !Number.isFinite(value)) {
    const shown = typeof value === "object" ? JSON.stringify(value) : String(value);
    throw new UsageError(`${file}: metric ${path} is not a number (it is ${shown})`);
  }
  return value;
}
