/**
 * PGD, projected gradient descent (Madry, Makelov, Schmidt, Tsipras & Vladu
 * 2017, "Towards Deep Learning Models Resistant to Adversarial Attacks"), in
 * the L-inf and L2 norms, with random restarts.
 *
 * Each restart starts at a random point of the eps ball (L-inf: uniform in the
 * box; L2: a uniformly random direction times a radius uniform in [0, eps]),
 * clipped to [0, 1], then takes `steps` steps of the cross-entropy gradient
 * (L-inf: stepSize * sign(g); L2: stepSize * g / ||g||_2 per image), each
 * followed by the projection onto the eps ball around x (per image for L2) and
 * onto [0, 1]. Targeted: the steps descend CE toward the target. With several
 * restarts each image keeps the restart that fooled the model (misclassified
 * untargeted, target reached targeted) or, failing that, the one with the
 * highest loss; restarts stop early once every image is fooled.
 *
 * Norm: "Linf" (default) or "L2". Options: eps (required; in [0, 1] for L-inf,
 * >= 0 for L2), steps (default 40, Madry et al.'s MNIST setting), stepSize
 * (default 2.5 * eps / steps), restarts (default 1), randomStart (default
 * true), eotSamples (default 1, or DEFAULT_RANDOMIZED_EOT_SAMPLES on a
 * randomized model), loss ("ce", default, or "margin": Carlini & Wagner's
 * logit margin, see gradient.ts), onStep (called with the batch-mean
 * objective before every step, for convergence checks).
 * Input: images [N, C, H, W] in [0, 1] and labels [N]; output: a new tensor of
 * the same shape, in [0, 1], with ||x_adv - x||_inf <= eps (L-inf) or
 * ||x_adv_i - x_i||_2 <= eps for every image i (L2).
 */
import { iterateAsync, noGrad, tidy, tidyAsync } from "../core/engine.js";
import { ArgumentError } from "../core/errors.js";
import { describeValues, readOptions, type OptionsOf, type Schema, type ValuesOf } from "../core/params.js";
import { Tensor, rand, randn, where } from "../core/tensor.js";
import { checkNumber, fail } from "../core/validate.js";
import { LIMITS } from "../core/limits.js";
import { checkClassifier, inEvalMode, type Classifier } from "../models/types.js";
import {
  EOT_SAMPLES,
  checkBatch,
  checkTargeted,
  normalizeL2,
  perSampleShape,
  projectL2,
  projectLinf,
  resolveEotSamples,
} from "./base.js";
import { ATTACK_LOSSES, evaluateObjective, lossAndGradient, type AttackLoss } from "./gradient.js";
import type { Attack, AttackDefinition } from "./types.js";

export type PgdNorm = "Linf" | "L2";

const PARAMS = {
  norm: { type: "choice", choices: ["Linf", "L2"], default: "Linf", inSpec: false, doc: "the norm of the budget" },
  eps: {
    type: "number",
    required: true,
    inSpec: false,
    doc: "budget: L-inf in [0, 1] pixel units, or the L2 norm of one image's perturbation",
    check: (eps: number, v) => {
      checkNumber(eps, "eps", 0, v.norm === "Linf" ? 1 : undefined);
      if (!Number.isFinite(eps)) fail("finite number of at least 0", "eps", eps);
    },
  },
  steps: { type: "int", min: 1, max: LIMITS.attackSteps, default: 40, doc: "steps per restart" },
  stepSize: {
    type: "number",
    min: 0,
    default: (v) => (2.5 * (v.eps as number)) / (v.steps as number),
    defaultText: "2.5 * eps / steps",
    doc: "step size",
    check: (size: number) => {
      if (!Number.isFinite(size)) fail("finite number of at least 0", "stepSize", size);
    },
  },
  restarts: {
    type: "int",
    min: 1,
    max: LIMITS.restarts,
    default: 1,
    doc: "independent random starts; each image keeps its best",
  },
  randomStart: {
    type: "bool",
    default: true,
    doc: "start at a random point of the ball (needed for restarts > 1)",
    check: (on: boolean, v) => {
      if (!on && (v.restarts as number) > 1) {
        throw new ArgumentError(
          `PGD: restarts = ${v.restarts} needs randomStart = true (every restart would be the same)`,
        );
      }
    },
  },
  eotSamples: EOT_SAMPLES,
  loss: {
    type: "choice",
    choices: ATTACK_LOSSES,
    default: "ce",
    doc: "objective: ce (cross-entropy) or margin (Carlini-Wagner, max other logit minus the label's)",
  },
} as const satisfies Schema;

/** Called before each step with the batch-mean objective at the current point (restart and step from 0). */
export type PgdStepHook = (info: { restart: number; step: number; loss: number }) => void;

export type PgdOptions = OptionsOf<typeof PARAMS> & {
  /** A trace of the objective along the steps (the masking checks read it); not part of a spec. */
  onStep?: PgdStepHook;
};
type Values = ValuesOf<typeof PARAMS>;

function label(v: Values): string {
  const kind = (v.norm === "Linf" ? "PGD" : "PGD-L2") + (v.loss === "margin" ? "-margin" : "");
  const base = `${kind}(${v.steps})`;
  return v.restarts > 1 ? `${base}x${v.restarts}` : base;
}

function describe(v: Values): Record<string, number | string | boolean> {
  // The loss is named only when it is not the default, so reports and results files of CE runs keep their shape.
  const { loss, ...rest } = describeValues(PARAMS, { ...v, eotSamples: v.eotSamples ?? 1 });
  return {
    attack: v.norm === "Linf" ? "PGD" : "PGD-L2",
    ...rest,
    ...(loss === "margin" ? { loss } : {}),
  };
}

export const PGD_DEFINITION: AttackDefinition<typeof PARAMS> = {
  kind: "pgd",
  title: "PGD",
  summary: "PGD (Madry et al. 2017), L-inf: random start, 40 steps of 2.5*eps/40, optional restarts",
  params: PARAMS,
  exampleEps: 0.1,
  label,
  describe,
  create: (model, options) => new PGD(model, options as PgdOptions),
};

const L2_PARAMS = { ...PARAMS, norm: { ...PARAMS.norm, default: "L2" } } as const satisfies Schema;

/** "pgd-l2": PGD with norm "L2" (a norm given in the options must be "L2"). */
export const PGD_L2_DEFINITION: AttackDefinition<typeof L2_PARAMS> = {
  kind: "pgd-l2",
  title: "PGD",
  summary: "PGD (Madry et al. 2017), L2: random start, 40 normalised-gradient steps, per-image L2 ball",
  params: L2_PARAMS,
  exampleEps: 1,
  label,
  describe,
  create: (model, options) => {
    const norm = (options as { norm?: unknown } | null)?.norm;
    if (typeof options === "object" && options !== null && "norm" in options && norm !== "L2") {
      throw new ArgumentError(`Attack "pgd-l2" is PGD with norm "L2"; use "pgd" for norm ${JSON.stringify(norm)}`);
    }
    return new PGD(model, { ...(options as PgdOptions), norm: "L2" });
  },
};

/** One restart's result: its images, their objective and whether each fooled the model. */
interface Restart {
  x: Tensor;
  loss: Tensor;
  fooled: Tensor;
}

export class PGD implements Attack {
  readonly norm: PgdNorm;
  readonly supportsTargeted = true;
  readonly eps: number;
  readonly steps: number;
  readonly stepSize: number;
  readonly restarts: number;
  readonly randomStart: boolean;
  readonly eotSamples: number;
  readonly loss: AttackLoss;
  private readonly onStep?: PgdStepHook;
  private readonly model: Classifier;

  constructor(model: Classifier, options: PgdOptions) {
    this.model = checkClassifier(model, "PGD");
    const { onStep, ...rest } = (options ?? {}) as PgdOptions;
    if (onStep !== undefined && typeof onStep !== "function") fail("a function", "onStep", onStep);
    this.onStep = onStep;
    const o: Values = readOptions("PGD", PARAMS, options === undefined ? options : rest);
    this.norm = o.norm;
    this.eps = o.eps;
    this.steps = o.steps;
    this.stepSize = o.stepSize;
    this.restarts = o.restarts;
    this.randomStart = o.randomStart;
    this.eotSamples = resolveEotSamples(model, o.eotSamples);
    this.loss = o.loss as AttackLoss;
  }

  get name(): string {
    return label(this.values());
  }

  async generate(x: Tensor, labels: Tensor, options?: { targeted?: boolean }): Promise<Tensor> {
    const targeted = checkTargeted(options, this.supportsTargeted, "PGD");
    return tidyAsync(async () => {
      const y = checkBatch(x, labels, "PGD");
      return inEvalMode(this.model, async () => {
        if (this.restarts === 1) return this.run(x, y, targeted, 0);
        // Restarts stop drawing once every image is fooled.
        const first = await this.restart(x, y, targeted, 0);
        const best = await iterateAsync(first, this.restarts - 1, async (b, i) =>
          noGrad(() => b.fooled.all().item()) === 1 ? b : this.better(b, await this.restart(x, y, targeted, i + 1), x),
        );
        return best.x;
      });
    });
  }

  /** One restart, scored: its loss, and whether each image fooled the model. */
  private async restart(x: Tensor, y: Tensor, targeted: boolean, restart: number): Promise<Restart> {
    const candidate = await this.run(x, y, targeted, restart);
    const { loss, predicted } = await evaluateObjective(
      this.model,
      candidate,
      y,
      targeted,
      this.eotSamples,
      "PGD",
      this.loss,
    );
    return { x: candidate, loss, fooled: noGrad(() => (targeted ? predicted.eq(y) : predicted.ne(y))) };
  }

  /** Per image, the better of two restarts: fooled where the other is not, or equally fooled with a higher loss. */
  private better(best: Restart, next: Restart, x: Tensor): Restart {
    return noGrad(() => {
      const better = next.fooled
        .logicalAnd(best.fooled.logicalNot())
        .logicalOr(next.fooled.eq(best.fooled).logicalAnd(next.loss.gt(best.loss)));
      return {
        x: where(better.reshape(perSampleShape(x)), next.x, best.x),
        loss: where(better, next.loss, best.loss),
        fooled: best.fooled.logicalOr(next.fooled),
      };
    });
  }

  /** Random start, then `steps` times x <- Proj(x + stepSize * direction(grad)). */
  private async run(x: Tensor, y: Tensor, targeted: boolean, restart: number): Promise<Tensor> {
    const gradientOptions = { targeted, eotSamples: this.eotSamples, attack: "PGD", loss: this.loss };
    const start = noGrad(() => tidy(() => (this.randomStart ? this.randomStartPoint(x) : x.detach().clone())));
    return iterateAsync(start, this.steps, async (current, step) => {
      const { gradient: g, loss } = await lossAndGradient(this.model, current, y, gradientOptions);
      if (this.onStep) this.onStep({ restart, step, loss: noGrad(() => loss.mean().item()) });
      return noGrad(() => this.step(current, g, x));
    });
  }

  private step(current: Tensor, g: Tensor, x: Tensor): Tensor {
    if (this.norm === "Linf") return projectLinf(current.add(g.sign().mul(this.stepSize)), x, this.eps);
    return projectL2(current.add(normalizeL2(g).mul(this.stepSize)), x, this.eps);
  }

  private randomStartPoint(x: Tensor): Tensor {
    const opts = { dtype: x.dtype, device: x.device };
    if (this.norm === "Linf") {
      const delta = rand(x.shape, opts)
        .mul(2 * this.eps)
        .sub(this.eps);
      return projectLinf(x.add(delta), x, this.eps);
    }
    const direction = normalizeL2(randn(x.shape, opts));
    const radius = rand(perSampleShape(x), opts).mul(this.eps);
    return projectL2(x.add(direction.mul(radius)), x, this.eps);
  }

  private values(): Values {
    const { norm, eps, steps, stepSize, restarts, randomStart, eotSamples, loss } = this;
    return { norm, eps, steps, stepSize, restarts, randomStart, eotSamples, loss };
  }

  describe(): Record<string, number | string | boolean> {
    return describe(this.values());
  }
}
