/**
 * Differentiable ops: each records its forward kernel(s) and the backward kernels on the tape.
 * Shapes follow the lecture: B batch, T time, C channels, V vocabulary.
 */
import { crossEntropy } from "../kernels/cross_entropy.ts";
import { embeddingBackward, embeddingForward } from "../kernels/embedding.ts";
import { ShapeError, type Tensor } from "../kernels/tensor.ts";
import type { Graph, Var } from "./graph.ts";

/** Rows of `table` [V,C] picked by `idx` [B,T] → [B,T,C]. */
export function embedding(g: Graph, table: Var, idx: Var): Var {
  if (table.shape.length !== 2) {
    throw new ShapeError(
      `embedding: table ${table.data.describe()} must be [V, C] (ids ${idx.data.describe()})`,
    );
  }
  const [, C] = table.shape;
  const out = g.alloc([...idx.shape, C], "embedding");
  embeddingForward(g.rec, table.data, idx.data, out);
  return g.output(out, [table], (o) => {
    const dOut = g.gradOf(o);
    if (!dOut) return;
    const target = g.gradTarget(table);
    embeddingBackward(g.rec, idx.data, dOut, target.tensor, target.accumulate);
  });
}

/** Where a loss op writes its scalar: slot (counters[counterIndex] − 1) mod capacity. */
export interface LossSink {
  losses: Tensor;
  counters: Tensor;
  counterIndex: number;
}

/**
 * Mean cross-entropy of `logits` [B,T,V] against `targets` [B,T], written to the sink. When
 * training, the fused kernel also writes d(loss)/d(logits), which seeds the backward pass.
 */
export function crossEntropyLoss(g: Graph, logits: Var, targets: Var, sink: LossSink): void {
  // One target per row: targets have the shape of logits without the class axis.
  const rows = logits.shape.slice(0, -1);
  if (
    logits.shape.length < 2 || targets.shape.length !== rows.length ||
    targets.shape.some((d, i) => d !== rows[i])
  ) {
    throw new ShapeError(
      `crossEntropyLoss: targets ${targets.data.describe()} must be [${rows.join(", ")}] ` +
        `for logits ${logits.data.describe()}`,
    );
  }
  const dLogits = logits.requiresGrad ? g.gradTarget(logits) : undefined;
  if (dLogits?.accumulate) throw new Error("crossEntropyLoss: logits already have a gradient");
  crossEntropy(g.rec, {
    logits: logits.data,
    targets: targets.data,
    losses: sink.losses,
    counters: sink.counters,
    counterIndex: sink.counterIndex,
    dLogits: dLogits?.tensor,
  });
}
