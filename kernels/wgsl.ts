/** Helpers for assembling WGSL sources. */

/**
 * One kernel of a multi-kernel `.wgsl` file: the shared prelude (everything before the first
 * `//@kernel` line) followed by the section `//@kernel <name>`. Lets a family keep its forward
 * and backward kernels, each with its own bindings and entry point `main`, in one file.
 */
export function wgslSection(source: string, name: string): string {
  const parts = source.split(/^\/\/@kernel[ \t]+/m);
  const section = parts.slice(1).find((p) =>
    p.startsWith(`${name}\n`) || p.startsWith(`${name}\r\n`)
  );
  if (section === undefined) throw new Error(`WGSL source has no //@kernel ${name} section`);
  return `${parts[0]}// kernel ${section}`;
}
