/**
 * The attack interface. Attacks work in [0, 1] pixel space on NCHW batches;
 * normalisation lives inside the model. A model here is anything with a
 * (possibly async) differentiable forward to logits: a classifier, or a
 * defended model (defense then classifier) whose gradient is exact, BPDA or EOT.
 */
import type { Tensor } from "../core/tensor.js";

export interface AttackableModel {
  /** Logits [N, K] for images [N, C, H, W] in [0, 1]; must be differentiable w.r.t. x (exactly or by an estimate). */
  forward(x: Tensor): Tensor | Promise<Tensor>;
  readonly training: boolean;
  train(on?: boolean): unknown;
  /** True when forward is random (VAE noise): attacks then average gradients over EOT samples. */
  readonly randomized?: boolean;
}

export type Norm = "Linf" | "L2" | "none";

export interface AttackResult {
  /** Adversarial images, same shape as the input, in [0, 1]. */
  adversarial: Tensor;
}

export interface Attack {
  /** Short name with its main parameters, for reports ("FGSM", "I-FGSM(10)"). */
  readonly name: string;
  readonly norm: Norm;
  readonly eps: number;
  readonly supportsTargeted: boolean;
  /**
   * Adversarial examples for a batch. `labels` are the true labels (untargeted)
   * or the target labels (targeted). The model's train/eval mode is restored afterwards.
   */
  generate(x: Tensor, labels: Tensor, options?: { targeted?: boolean }): Promise<Tensor>;
  /** Parameters for reports (steps, step size, restarts, EOT samples, ...). */
  describe(): Record<string, number | string | boolean>;
}
