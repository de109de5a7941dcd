/**
 * What every consumer of a model relies on: images [N, C, H, W] in [0, 1] in,
 * logits [N, K] out, and a train/eval mode. Attacks take such a model (a
 * classifier, or a defended model whose forward may await a codec), defenses
 * wrap one, evaluations score one. Normalisation lives inside the model.
 */
import type { Tensor } from "../core/tensor.js";
import { fail } from "../core/validate.js";

export interface Classifier {
  /** Logits [N, K] for images [N, C, H, W] in [0, 1]; differentiable w.r.t. x (exactly or by an estimate). */
  forward(x: Tensor): Tensor | Promise<Tensor>;
  readonly training: boolean;
  train(on?: boolean): unknown;
  /** True when forward is random (VAE noise): attacks then average gradients over EOT samples. */
  readonly randomized?: boolean;
}

/** `model` as a Classifier, or an ArgumentError naming `owner`. */
export function checkClassifier(model: unknown, owner: string): Classifier {
  const m = model as Classifier | null;
  if (
    typeof m !== "object" ||
    m === null ||
    typeof m.forward !== "function" ||
    typeof m.train !== "function" ||
    typeof m.training !== "boolean"
  ) {
    fail(`a model with forward(), train() and training for ${owner}`, "model", model);
  }
  return m;
}

/**
 * Run `fn` with the model in eval mode (dropout off, batch-norm running
 * statistics) and restore the model's previous mode afterwards, also on error.
 */
export async function inEvalMode<R>(model: Classifier, fn: () => R | Promise<R>): Promise<R> {
  const wasTraining = model.training;
  model.train(false);
  try {
    return await fn();
  } finally {
    model.train(wasTraining);
  }
}
