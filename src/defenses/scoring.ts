/**
 * How a defense is scored: top-1 accuracy of defense then classifier on
 * purified images, in eval mode, without gradients. A randomized defense (VAE
 * noise) is scored as the mean (and standard deviation) over several
 * independent passes, never the best pass. The defended model's accuracy()
 * and the evaluation sweep both count with correctPerPass.
 */
import { inEvalMode, type Classifier } from "../models/types.js";
import { noGrad, noGradAsync, tidyAsync } from "../core/engine.js";
import { meanStd } from "../core/stats.js";
import type { Tensor } from "../core/tensor.js";
import type { Defense } from "./types.js";

/** The first pass's purified images and predictions, for picture grids. */
export type FirstPassHook = (purified: Tensor, predictions: Int32Array) => void;

/** Every pass's purified images (for an ensemble that averages this defense's outputs). */
export type PassHook = (pass: number, purified: Tensor) => void;

/**
 * Correct predictions on one batch, per pass: `passes` passes for a
 * randomized defense, one for a deterministic one. `onFirstPass` sees the
 * first pass's purified images while they are alive, `onPass` every pass's.
 */
export async function correctPerPass(
  defense: Defense,
  classifier: Classifier,
  x: Tensor,
  labels: Tensor,
  passes: number,
  onFirstPass?: FirstPassHook,
  onPass?: PassHook,
): Promise<number[]> {
  const count = defense.randomized ? passes : 1;
  const correct: number[] = [];
  for (let p = 0; p < count; p++) {
    correct.push(
      await tidyAsync(async () => {
        const purified = await defense.apply(x);
        onPass?.(p, purified);
        const logits = await inEvalMode(classifier, () => noGradAsync(() => classifier.forward(purified)));
        return noGrad(() => {
          const predicted = logits.argmax(1);
          if (p === 0) onFirstPass?.(purified, Int32Array.from(predicted.toArray()));
          return predicted.eq(labels.to(predicted.dtype)).sum().item();
        });
      }),
    );
  }
  return correct;
}

export interface AccuracyResult {
  /** Mean accuracy over the passes. */
  mean: number;
  /** Standard deviation over the passes (unbiased; 0 for one pass). */
  std: number;
  /** Number of passes run. */
  passes: number;
  /** The accuracy of each pass. */
  perPass: number[];
}

/** Accuracy over `n` images from correct counts per pass. */
export function passAccuracy(correct: readonly number[], n: number): AccuracyResult {
  const perPass = correct.map((c) => (n === 0 ? 0 : c / n));
  const { mean, std } = meanStd(perPass);
  return { mean, std, passes: perPass.length, perPass };
}
