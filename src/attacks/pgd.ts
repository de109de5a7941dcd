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
import { noGrad, tidy } from "../core/engine.js";
import { ArgumentError } from "../core/errors.js";
import { Tensor, rand, randn, where } from "../core/tensor.js";
import { checkBool, checkInt, checkNumber, checkOneOf, fail } from "../core/validate.js";
import {
  checkBatch,
  checkL2Eps,
  checkLinfEps,
  checkModel,
  checkOptions,
  checkTargeted,
  inEvalMode,
  normalizeL2,
  perSampleShape,
  projectL2,
  projectLinf,
  resolveEotSamples,
} from "./base.js";
import { ATTACK_LOSSES, evaluateObjective, lossAndGradient, type AttackLoss } from "./gradient.js";
import type { Attack, AttackableModel } from "./types.js";

export type PgdNorm = "Linf" | "L2";

export interface PgdOptions {
  /** Budget: L-inf in [0, 1] pixel units, or the L2 norm of one image's perturbation. */
  eps: number;
  /** "Linf" (default) or "L2". */
  norm?: PgdNorm;
  /** Steps per restart (default 40). */
  steps?: number;
  /** Step size (default 2.5 * eps / steps). */
  stepSize?: number;
  /** Independent random starts (default 1); each image keeps its best. */
  restarts?: number;
  /** Start at a random point of the ball (default true); needed for restarts > 1. */
  randomStart?: boolean;
  /** Gradient passes averaged per step (EOT). */
  eotSamples?: number;
  /** Objective: "ce" (default) or "margin" (Carlini-Wagner). */
  loss?: AttackLoss;
  /** Called before each step with the batch-mean objective at the current point (restart and step from 0). */
  onStep?: (info: { restart: number; step: number; loss: number }) => void;
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
  private readonly onStep?: PgdOptions["onStep"];
  private readonly model: AttackableModel;

  constructor(model: AttackableModel, options: PgdOptions) {
    this.model = checkModel(model, "PGD");
    const o = checkOptions("PGD", options, [
      "eps",
      "norm",
      "steps",
      "stepSize",
      "restarts",
      "randomStart",
      "eotSamples",
      "loss",
      "onStep",
    ]);
    this.norm = checkOneOf(o.norm ?? "Linf", "norm", ["Linf", "L2"] as const);
    this.eps = this.norm === "Linf" ? checkLinfEps(o.eps) : checkL2Eps(o.eps);
    this.steps = checkInt(o.steps ?? 40, "steps", 1);
    this.stepSize = checkNumber(o.stepSize ?? (2.5 * this.eps) / this.steps, "stepSize", 0);
    if (!Number.isFinite(this.stepSize))
      throw new ArgumentError(`Expected finite number of at least 0 for stepSize but received ${this.stepSize}`);
    this.restarts = checkInt(o.restarts ?? 1, "restarts", 1);
    this.randomStart = checkBool(o.randomStart ?? true, "randomStart");
    if (this.restarts > 1 && !this.randomStart) {
      throw new ArgumentError(
        `PGD: restarts = ${this.restarts} needs randomStart = true (every restart would be the same)`,
      );
    }
    this.eotSamples = resolveEotSamples(model, o.eotSamples as number | undefined);
    this.loss = checkOneOf(o.loss ?? "ce", "loss", ATTACK_LOSSES);
    if (o.onStep !== undefined && typeof o.onStep !== "function") fail("a function", "onStep", o.onStep);
    this.onStep = o.onStep as PgdOptions["onStep"];
  }

  get name(): string {
    const kind = (this.norm === "Linf" ? "PGD" : "PGD-L2") + (this.loss === "margin" ? "-margin" : "");
    const base = `${kind}(${this.steps})`;
    return this.restarts > 1 ? `${base}x${this.restarts}` : base;
  }

  async generate(x: Tensor, labels: Tensor, options?: { targeted?: boolean }): Promise<Tensor> {
    const targeted = checkTargeted(options, this.supportsTargeted, "PGD");
    const batch = checkBatch(x, labels, "PGD");
    let best: Tensor | undefined;
    let bestLoss: Tensor | undefined;
    let bestFooled: Tensor | undefined;
    try {
      return await inEvalMode(this.model, async () => {
        for (let r = 0; r < this.restarts; r++) {
          const candidate = await this.run(x, batch.labels, targeted, r);
          if (this.restarts === 1) return candidate;
          let evaluated: { loss: Tensor; predicted: Tensor };
          try {
            evaluated = await evaluateObjective(
              this.model,
              candidate,
              batch.labels,
              targeted,
              this.eotSamples,
              "PGD",
              this.loss,
            );
          } catch (e) {
            candidate.dispose();
            throw e;
          }
          const { loss, predicted } = evaluated;
          const fooled = noGrad(() => (targeted ? predicted.eq(batch.labels) : predicted.ne(batch.labels)));
          predicted.dispose();
          if (best === undefined || bestLoss === undefined || bestFooled === undefined) {
            best = candidate;
            bestLoss = loss;
            bestFooled = fooled;
          } else {
            const [b, bl, bf] = noGrad(() =>
              tidy(() => {
                // Better: fooled where the best so far is not, or equally fooled with a higher loss.
                const better = fooled
                  .logicalAnd(bestFooled!.logicalNot())
                  .logicalOr(fooled.eq(bestFooled!).logicalAnd(loss.gt(bestLoss!)));
                const perImage = better.reshape(perSampleShape(x));
                return [
                  where(perImage, candidate, best!),
                  where(better, loss, bestLoss!),
                  bestFooled!.logicalOr(fooled),
                ];
              }),
            );
            for (const t of [best, bestLoss, bestFooled, candidate, loss, fooled]) t.dispose();
            best = b;
            bestLoss = bl;
            bestFooled = bf;
          }
          if (noGrad(() => tidy(() => bestFooled!.all().item())) === 1) break;
        }
        const out = best!;
        best = undefined;
        return out;
      });
    } finally {
      best?.dispose();
      bestLoss?.dispose();
      bestFooled?.dispose();
      if (batch.owned) batch.labels.dispose();
    }
  }

  /** One restart: random start, then `steps` projected steps. */
  private async run(x: Tensor, labels: Tensor, targeted: boolean, restart: number): Promise<Tensor> {
    let current = noGrad(() => tidy(() => (this.randomStart ? this.randomStartPoint(x) : x.detach().clone())));
    try {
      for (let s = 0; s < this.steps; s++) {
        const { gradient: g, loss } = await lossAndGradient(this.model, current, labels, {
          targeted,
          eotSamples: this.eotSamples,
          attack: "PGD",
          loss: this.loss,
        });
        try {
          if (this.onStep) this.onStep({ restart, step: s, loss: noGrad(() => tidy(() => loss.mean().item())) });
        } catch (e) {
          g.dispose();
          throw e;
        } finally {
          loss.dispose();
        }
        const prev = current;
        try {
          current = noGrad(() => tidy(() => this.step(prev, g, x)));
        } finally {
          g.dispose();
        }
        prev.dispose();
      }
      return current;
    } catch (e) {
      current.dispose();
      throw e;
    }
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

  describe(): Record<string, number | string | boolean> {
    return {
      attack: this.norm === "Linf" ? "PGD" : "PGD-L2",
      norm: this.norm,
      eps: this.eps,
      steps: this.steps,
      stepSize: this.stepSize,
      restarts: this.restarts,
      randomStart: this.randomStart,
      eotSamples: this.eotSamples,
      // Named only when it is not the default, so reports and results files of CE runs keep their shape.
      ...(this.loss === "margin" ? { loss: this.loss } : {}),
    };
  }
}
