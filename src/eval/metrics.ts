/** Metrics of the paper's evaluation. */
import { tidy } from "../core/engine.js";
import type { Tensor } from "../core/tensor.js";
import { ShapeError } from "../core/errors.js";

/**
 * Per-sample relative L2 difference ||x_i - x_adv_i||_2 / ||x_i||_2 (the paper's
 * "L2 Diff" is its mean). An all-zero clean image has no relative difference; it counts as 0 when unchanged and Infinity otherwise.
 */
export function relativeL2(x: Tensor, xAdv: Tensor): Float32Array {
  if (x.shape.join(",") !== xAdv.shape.join(",")) {
    throw new ShapeError(`relativeL2: shapes [${x.shape.join(", ")}] and [${xAdv.shape.join(", ")}] differ`);
  }
  const [num, den] = tidy(() => [
    x.sub(xAdv).flatten(1).norm(2, 1).dataSync() as Float32Array,
    x.flatten(1).norm(2, 1).dataSync() as Float32Array,
  ]);
  return num.map((n, i) => (den[i] > 0 ? n / den[i] : n > 0 ? Infinity : 0));
}

/** Mean of the per-sample relative L2 differences. */
export function averageRelativeL2(x: Tensor, xAdv: Tensor): number {
  const r = relativeL2(x, xAdv);
  return r.reduce((a, b) => a + b, 0) / Math.max(r.length, 1);
}

/** Number of rows of `logits` whose argmax equals `labels`. */
export function countCorrect(logits: Tensor, labels: Tensor): number {
  return tidy(() => logits.argmax(1).eq(labels).sum().item());
}

/** Mean and (unbiased) standard deviation, e.g. of a randomized defense's accuracy over passes. */
export { meanStd } from "../core/stats.js";
