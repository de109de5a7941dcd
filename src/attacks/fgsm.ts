/**
 * FGSM, the Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy 2014,
 * "Explaining and Harnessing Adversarial Examples"), as in Luo & Pfister 2018,
 * section 2.1: x_adv = clip(x + eps * sign(grad_x CE(f(x), y)), 0, 1).
 * Targeted: x_adv = clip(x - eps * sign(grad_x CE(f(x), t)), 0, 1).
 *
 * Norm: L-inf. Options: eps (required, in [0, 1]; the paper sweeps
 * [0, 0.12] on MNIST and [0, 0.1] on CIFAR-10), eotSamples (default 1, or
 * DEFAULT_RANDOMIZED_EOT_SAMPLES on a randomized model).
 * Input: images [N, C, H, W] in [0, 1] and labels [N]; output: a new tensor of
 * the same shape and dtype, in [0, 1], with ||x_adv - x||_inf <= eps.
 */
import { noGrad, tidy } from "../core/engine.js";
import type { Tensor } from "../core/tensor.js";
import {
  checkBatch,
  checkLinfEps,
  checkModel,
  checkOptions,
  checkTargeted,
  inEvalMode,
  resolveEotSamples,
} from "./base.js";
import { lossGradient } from "./gradient.js";
import type { Attack, AttackableModel } from "./types.js";

export interface FgsmOptions {
  /** L-inf budget in [0, 1] pixel units. */
  eps: number;
  /** Gradient passes averaged per step (EOT). */
  eotSamples?: number;
}

export class FGSM implements Attack {
  readonly name = "FGSM";
  readonly norm = "Linf" as const;
  readonly supportsTargeted = true;
  readonly eps: number;
  readonly eotSamples: number;
  private readonly model: AttackableModel;

  constructor(model: AttackableModel, options: FgsmOptions) {
    this.model = checkModel(model, "FGSM");
    const o = checkOptions("FGSM", options, ["eps", "eotSamples"]);
    this.eps = checkLinfEps(o.eps);
    this.eotSamples = resolveEotSamples(model, o.eotSamples as number | undefined);
  }

  async generate(x: Tensor, labels: Tensor, options?: { targeted?: boolean }): Promise<Tensor> {
    const targeted = checkTargeted(options, this.supportsTargeted, this.name);
    const batch = checkBatch(x, labels, this.name);
    try {
      return await inEvalMode(this.model, async () => {
        const g = await lossGradient(this.model, x, batch.labels, {
          targeted,
          eotSamples: this.eotSamples,
          attack: this.name,
        });
        try {
          return noGrad(() => tidy(() => x.detach().add(g.sign().mul(this.eps)).clamp(0, 1)));
        } finally {
          g.dispose();
        }
      });
    } finally {
      if (batch.owned) batch.labels.dispose();
    }
  }

  describe(): Record<string, number | string | boolean> {
    return { attack: this.name, norm: this.norm, eps: this.eps, steps: 1, eotSamples: this.eotSamples };
  }
}
