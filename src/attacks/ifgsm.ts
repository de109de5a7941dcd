/**
 * I-FGSM, iterative FGSM (Kurakin, Goodfellow & Bengio 2016, "Adversarial
 * examples in the physical world"), as in Luo & Pfister 2018, section 2.1:
 * x_0 = x, x_{m+1} = clip(x_m + (eps / M) * sign(grad_x CE(f(x_m), y))),
 * x_adv = x_M. Each step is also projected onto the eps L-inf ball around x
 * (implied by the step size, made exact here against float rounding and for a
 * custom stepSize). Targeted: each step descends CE toward the target.
 *
 * Norm: L-inf. Options: eps (required, in [0, 1]), steps M (default 10, the
 * paper's), stepSize (default eps / steps), eotSamples (default 1, or
 * DEFAULT_RANDOMIZED_EOT_SAMPLES on a randomized model).
 * Input: images [N, C, H, W] in [0, 1] and labels [N]; output: a new tensor of
 * the same shape, in [0, 1], with ||x_adv - x||_inf <= eps.
 */
import { noGrad, tidy } from "../core/engine.js";
import type { Tensor } from "../core/tensor.js";
import { checkInt, checkNumber } from "../core/validate.js";
import { LIMITS } from "../core/limits.js";
import {
  checkBatch,
  checkLinfEps,
  checkModel,
  checkOptions,
  checkTargeted,
  inEvalMode,
  projectLinf,
  resolveEotSamples,
} from "./base.js";
import { lossGradient } from "./gradient.js";
import type { Attack, AttackableModel } from "./types.js";

export interface IfgsmOptions {
  /** L-inf budget in [0, 1] pixel units. */
  eps: number;
  /** Number of iterations M (default 10). */
  steps?: number;
  /** Step size (default eps / steps). */
  stepSize?: number;
  /** Gradient passes averaged per step (EOT). */
  eotSamples?: number;
}

export class IFGSM implements Attack {
  readonly norm = "Linf" as const;
  readonly supportsTargeted = true;
  readonly eps: number;
  readonly steps: number;
  readonly stepSize: number;
  readonly eotSamples: number;
  private readonly model: AttackableModel;

  constructor(model: AttackableModel, options: IfgsmOptions) {
    this.model = checkModel(model, "I-FGSM");
    const o = checkOptions("I-FGSM", options, ["eps", "steps", "stepSize", "eotSamples"]);
    this.eps = checkLinfEps(o.eps);
    this.steps = checkInt(o.steps ?? 10, "steps", 1, LIMITS.attackSteps);
    this.stepSize = checkNumber(o.stepSize ?? this.eps / this.steps, "stepSize", 0, 1);
    this.eotSamples = resolveEotSamples(model, o.eotSamples as number | undefined);
  }

  get name(): string {
    return `I-FGSM(${this.steps})`;
  }

  async generate(x: Tensor, labels: Tensor, options?: { targeted?: boolean }): Promise<Tensor> {
    const targeted = checkTargeted(options, this.supportsTargeted, "I-FGSM");
    const batch = checkBatch(x, labels, "I-FGSM");
    let current = noGrad(() => tidy(() => x.detach().clone()));
    try {
      return await inEvalMode(this.model, async () => {
        for (let m = 0; m < this.steps; m++) {
          const g = await lossGradient(this.model, current, batch.labels, {
            targeted,
            eotSamples: this.eotSamples,
            attack: "I-FGSM",
          });
          const prev = current;
          try {
            current = noGrad(() => tidy(() => projectLinf(prev.add(g.sign().mul(this.stepSize)), x, this.eps)));
          } finally {
            g.dispose();
          }
          prev.dispose();
        }
        return current;
      });
    } catch (e) {
      current.dispose();
      throw e;
    } finally {
      if (batch.owned) batch.labels.dispose();
    }
  }

  describe(): Record<string, number | string | boolean> {
    return {
      attack: "I-FGSM",
      norm: this.norm,
      eps: this.eps,
      steps: this.steps,
      stepSize: this.stepSize,
      eotSamples: this.eotSamples,
    };
  }
}
