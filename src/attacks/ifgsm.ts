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
import { iterateAsync, noGrad, tidyAsync } from "../core/engine.js";
import { describeValues, readOptions, type OptionsOf, type Schema, type ValuesOf } from "../core/params.js";
import type { Tensor } from "../core/tensor.js";
import { LIMITS } from "../core/limits.js";
import { checkClassifier, type Classifier } from "../models/types.js";
import { EOT_SAMPLES, LINF_EPS, checkBatch, checkTargeted, projectLinf, resolveEotSamples } from "./base.js";
import { signedGradientKind, signedLossGradient } from "./gradient.js";
import type { Attack, AttackDefinition, DirectionAttack } from "./types.js";

const PARAMS = {
  eps: LINF_EPS,
  steps: { type: "int", min: 1, max: LIMITS.attackSteps, default: 10, doc: "number of iterations M" },
  stepSize: {
    type: "number",
    min: 0,
    max: 1,
    default: (v) => (v.eps as number) / (v.steps as number),
    defaultText: "eps / steps",
    doc: "step size",
  },
  eotSamples: EOT_SAMPLES,
} as const satisfies Schema;

export type IfgsmOptions = OptionsOf<typeof PARAMS>;
type Values = ValuesOf<typeof PARAMS>;

export const IFGSM_DEFINITION: AttackDefinition<typeof PARAMS> = {
  kind: "ifgsm",
  title: "I-FGSM",
  summary: "I-FGSM (Kurakin et al. 2016): 10 L-inf steps of eps/10, as in Luo & Pfister 2018",
  params: PARAMS,
  exampleEps: 0.1,
  label: (v) => `I-FGSM(${v.steps})`,
  describe: (v) => ({
    attack: "I-FGSM",
    norm: "Linf",
    ...describeValues(PARAMS, { ...v, eotSamples: v.eotSamples ?? 1 }),
  }),
  create: (model, options) => new IFGSM(model, options as IfgsmOptions),
};

export class IFGSM implements Attack, DirectionAttack {
  readonly norm = "Linf" as const;
  readonly supportsTargeted = true;
  readonly eps: number;
  readonly steps: number;
  readonly stepSize: number;
  readonly eotSamples: number;
  private readonly model: Classifier;

  constructor(model: Classifier, options: IfgsmOptions) {
    this.model = checkClassifier(model, "I-FGSM");
    const o: Values = readOptions("I-FGSM", PARAMS, options);
    this.eps = o.eps;
    this.steps = o.steps;
    this.stepSize = o.stepSize;
    this.eotSamples = resolveEotSamples(model, o.eotSamples);
  }

  get name(): string {
    return IFGSM_DEFINITION.label(this.values());
  }

  /** x_{m+1} = Proj(x_m + stepSize * sign(grad)), M times from x_0 = x. */
  async generate(x: Tensor, labels: Tensor, options?: { targeted?: boolean }): Promise<Tensor> {
    return this.iterate(x, labels, checkTargeted(options, this.supportsTargeted, "I-FGSM"));
  }

  /** On a deterministic model the first step's gradient is the same for every eps (and every seed). */
  get directionIsShareable(): boolean {
    return this.model.randomized !== true;
  }

  /** The first step's direction is FGSM's (same kind, same function): a sweep shares it with FGSM too. */
  get directionKind(): string {
    return signedGradientKind(this.eotSamples);
  }

  direction(x: Tensor, labels: Tensor): Promise<Tensor> {
    const options = { targeted: false, eotSamples: this.eotSamples, attack: "I-FGSM" };
    return tidyAsync(() => signedLossGradient(this.model, x, checkBatch(x, labels, "I-FGSM"), options));
  }

  fromDirection(x: Tensor, labels: Tensor, direction: Tensor): Promise<Tensor> {
    return this.iterate(x, labels, false, direction);
  }

  /** The M steps; the first along `first` when given (sign(grad) at x, computed once for a grid). */
  private iterate(x: Tensor, labels: Tensor, targeted: boolean, first?: Tensor): Promise<Tensor> {
    const gradientOptions = { targeted, eotSamples: this.eotSamples, attack: "I-FGSM" };
    return tidyAsync(async () => {
      const y = checkBatch(x, labels, "I-FGSM");
      return iterateAsync(x, this.steps, async (xm, m) => {
        const d = m === 0 && first ? first : await signedLossGradient(this.model, xm, y, gradientOptions);
        return noGrad(() => projectLinf(xm.add(d.mul(this.stepSize)), x, this.eps));
      });
    });
  }

  private values(): Values {
    return { eps: this.eps, steps: this.steps, stepSize: this.stepSize, eotSamples: this.eotSamples };
  }

  describe(): Record<string, number | string | boolean> {
    return IFGSM_DEFINITION.describe(this.values());
  }
}
