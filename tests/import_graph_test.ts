/**
 * The layering rule of the source tree, checked on every test run: kernels/ < nn/ <
 * experiments/ < harness/ (a folder imports only from its own layer or lower ones) and no
 * import cycles among the files of those folders.
 */
import { deepStrictEqual } from "node:assert/strict";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), ".."));
const LAYERS = ["kernels", "nn", "experiments", "harness"] as const;

/**
 * Cycles known at the time this test was written, each as the sorted files of its strongly
 * connected component. Every entry is a debt, not a permission: fix the cycle and delete it.
 */
const KNOWN_CYCLES: Record<string, string[]> = {};

/** File (relative to the root, "/"-separated) → the .ts files it imports. */
type ImportGraph = Map<string, Set<string>>;

// Static imports and re-exports at the start of a line (so doc comments never match), and
// dynamic imports of a literal path.
const STATIC = /^[ \t]*(?:import|export)\b[^;]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']/gm;
const DYNAMIC = /\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;

/** The relative .ts imports of one source file, resolved against its path. */
function importsOf(path: string, source: string): string[] {
  const found: string[] = [];
  for (const pattern of [STATIC, DYNAMIC]) {
    for (const m of source.matchAll(pattern)) {
      const target = normalize(join(dirname(path), m[1])).replaceAll("\\", "/");
      if (target.endsWith(".ts")) found.push(target);
    }
  }
  return found;
}

function readGraph(): ImportGraph {
  const graph: ImportGraph = new Map();
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(join(ROOT, dir))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (entry.name.endsWith(".ts")) {
        const source = Deno.readTextFileSync(join(ROOT, path));
        graph.set(path, new Set(importsOf(path, source)));
      }
    }
  };
  for (const layer of LAYERS) walk(layer);
  return graph;
}

/** Imports from a lower layer's folder into a higher one's, as "from -> to". */
function upwardImports(graph: ImportGraph): string[] {
  const rank = (path: string) => LAYERS.indexOf(path.split("/")[0] as typeof LAYERS[number]);
  const found: string[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) {
      if (rank(to) > rank(from)) found.push(`${from} -> ${to}`);
    }
  }
  return found.sort();
}

/**
 * Every group of files that import each other in a loop (strongly connected components of more
 * than one file, or a file importing itself), each sorted, found with Tarjan's algorithm.
 */
function importCycles(graph: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v)!.has(v)) cycles.push(component.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return cycles.sort((a, b) => a[0].localeCompare(b[0]));
}

Deno.test("import graph: no upward import across kernels < nn < experiments < harness", () => {
  deepStrictEqual(upwardImports(readGraph()), []);
});

Deno.test("import graph: no import cycle except the named known ones", () => {
  const graph = readGraph();
  const known = new Set(Object.values(KNOWN_CYCLES).map((files) => files.join(" ↔ ")));
  const cycles = importCycles(graph).map((c) => c.join(" ↔ "));
  // A new cycle fails here, and so does a known one that is gone (delete its entry).
  deepStrictEqual(cycles.filter((c) => !known.has(c)), [], "import cycles");
  deepStrictEqual(
    [...known].filter((c) => !cycles.includes(c)),
    [],
    "KNOWN_CYCLES entries that no longer exist",
  );
  // Sanity: the walk saw the tree (an empty graph would pass both checks above).
  deepStrictEqual(LAYERS.map((l) => [...graph.keys()].some((p) => p.startsWith(`${l}/`))), [
    true,
    true,
    true,
    true,
  ]);
});

Deno.test("import graph: the checks find a cycle and an upward import when there is one", () => {
  const source = [
    'import { a } from "./b.ts";',
    'export { c } from "../nn/c.ts";',
    ' * import { notReal } from "./doc_comment.ts";',
    'const late = await import("../harness/d.ts");',
    'import text from "./shader.wgsl" with { type: "text" };',
  ].join("\n");
  deepStrictEqual(importsOf("kernels/a.ts", source), [
    "kernels/b.ts",
    "nn/c.ts",
    "harness/d.ts",
  ]);
  const graph: ImportGraph = new Map([
    ["kernels/a.ts", new Set(["kernels/b.ts", "nn/c.ts"])],
    ["kernels/b.ts", new Set(["kernels/a.ts"])],
    ["nn/c.ts", new Set(["kernels/b.ts", "nn/d.ts"])],
    ["nn/d.ts", new Set(["nn/d.ts"])],
  ]);
  deepStrictEqual(importCycles(graph), [
    ["kernels/a.ts", "kernels/b.ts", "nn/c.ts"],
    ["nn/d.ts"],
  ]);
  deepStrictEqual(upwardImports(graph), ["kernels/a.ts -> nn/c.ts"]);
});
