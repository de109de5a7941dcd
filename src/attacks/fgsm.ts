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
import { noGrad, tidy, tidyAsync } from "../core/engine.js";
import { readOptions, type OptionsOf, type ValuesOf } from "../core/params.js";
import type { Tensor } from "../core/tensor.js";
import { checkClassifier, type Classifier } from "../models/types.js";
import { EOT_SAMPLES, LINF_EPS, checkBatch, checkTargeted, resolveEotSamples } from "./base.js";
import { signedGradientKind, signedLossGradient } from "./gradient.js";
import type { Attack, AttackDefinition, DirectionAttack } from "./types.js";

const PARAMS = {
  eps: LINF_EPS,
  eotSamples: EOT_SAMPLES,
} as const;

export type FgsmOptions = OptionsOf<typeof PARAMS>;

export const FGSM_DEFINITION: AttackDefinition<typeof PARAMS> = {
  kind: "fgsm",
  title: "FGSM",
  summary: "FGSM (Goodfellow et al. 2014): one L-inf step of eps * sign(gradient)",
  params: PARAMS,
  exampleEps: 0.1,
  label: () => "FGSM",
  describe: (v) => ({ attack: "FGSM", norm: "Linf", eps: v.eps, steps: 1, eotSamples: v.eotSamples ?? 1 }),
  create: (model, options) => new FGSM(model, options as FgsmOptions),
};

export class FGSM implements Attack, DirectionAttack {
  readonly name = "FGSM";
  readonly norm = "Linf" as const;
  readonly supportsTargeted = true;
  readonly eps: number;
  readonly eotSamples: number;
  private readonly model: Classifier;

  constructor(model: Classifier, options: FgsmOptions) {
    this.model = checkClassifier(model, "FGSM");
    const o: ValuesOf<typeof PARAMS> = readOptions("FGSM", PARAMS, options);
    this.eps = o.eps;
    this.eotSamples = resolveEotSamples(model, o.eotSamples);
  }

  async generate(x: Tensor, labels: Tensor, options?: { targeted?: boolean }): Promise<Tensor> {
    const targeted = checkTargeted(options, this.supportsTargeted, this.name);
    return tidyAsync(async () => this.step(x, await this.signedGradient(x, labels, targeted)));
  }

  /** On a deterministic model the gradient is the same for every eps (and every seed). */
  get directionIsShareable(): boolean {
    return this.model.randomized !== true;
  }

  get directionKind(): string {
    return signedGradientKind(this.eotSamples);
  }

  /** sign(grad): the untargeted step direction, shared by a sweep's epsilons. */
  direction(x: Tensor, labels: Tensor): Promise<Tensor> {
    return this.signedGradient(x, labels, false);
  }

  async fromDirection(x: Tensor, _labels: Tensor, direction: Tensor): Promise<Tensor> {
    return this.step(x, direction);
  }

  /** clip(x + eps * direction, 0, 1): the one place FGSM's step is taken, with or without a shared direction. */
  private step(x: Tensor, direction: Tensor): Tensor {
    return noGrad(() => tidy(() => x.detach().add(direction.mul(this.eps)).clamp(0, 1)));
  }

  private signedGradient(x: Tensor, labels: Tensor, targeted: boolean): Promise<Tensor> {
    const options = { targeted, eotSamples: this.eotSamples, attack: this.name };
    return tidyAsync(() => signedLossGradient(this.model, x, checkBatch(x, labels, this.name), options));
  }

  describe(): Record<string, number | string | boolean> {
    return FGSM_DEFINITION.describe({ eps: this.eps, eotSamples: this.eotSamples });
  }
}
