/**
 * The attack interface. Attacks work in [0, 1] pixel space on NCHW batches;
 * normalisation lives inside the model. A model here is a Classifier
 * (models/types.ts): a classifier, or a defended model (defense then
 * classifier) whose gradient is exact, BPDA or EOT.
 */
import type { Schema, ValuesOf } from "../core/params.js";
import type { Tensor } from "../core/tensor.js";
import type { Classifier } from "../models/types.js";

/** The model an attack takes: the Classifier of models/types.ts, under the name attacks have always used. */
export type AttackableModel = Classifier;

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

/**
 * An attack that starts with a step along a direction that does not depend on
 * eps: FGSM (its one step) and I-FGSM (its first step) along the sign of the
 * loss gradient at x. A sweep over an epsilon grid computes the direction once
 * per image and hands it to every eps, and to every attack of the same
 * `directionKind` on the same model; generate(x, y) is exactly
 * fromDirection(x, y, direction(x, y)).
 */
export interface DirectionAttack {
  /**
   * Whether direction() may be shared by every eps of a grid: false when it
   * depends on random draws (a randomized model, whose draws are seeded per cell).
   */
  readonly directionIsShareable: boolean;
  /** What direction() computes: attacks of one kind on one model compute the same tensor. */
  readonly directionKind: string;
  /** The eps-free first-step direction of an untargeted attack on (x, labels). */
  direction(x: Tensor, labels: Tensor): Promise<Tensor>;
  /** The adversarial images at this attack's eps, the first step taken along `direction`. */
  fromDirection(x: Tensor, labels: Tensor, direction: Tensor): Promise<Tensor>;
}

export function isDirectionAttack<A extends Attack>(a: A): a is A & DirectionAttack {
  const d = a as Partial<DirectionAttack>;
  return typeof d.direction === "function" && typeof d.fromDirection === "function";
}

/**
 * An attack as the registry knows it: its parameters, declared once, and what
 * is derived from them without a model (the table name, describe()).
 */
export interface AttackDefinition<S extends Schema = Schema> {
  /** The name in specs and on the command line ("pgd-l2"). */
  readonly kind: string;
  /** The name in messages ("PGD"). */
  readonly title: string;
  /** One line for --help. */
  readonly summary: string;
  readonly params: S;
  /** A budget inside every range, for checking a spec before the epsilon grid is known. */
  readonly exampleEps: number;
  /** The name in tables for checked values ("PGD(40)x2"). */
  label(values: ValuesOf<S>): string;
  /** describe() of an attack with these checked values. */
  describe(values: ValuesOf<S>): Record<string, number | string | boolean>;
  create(model: Classifier, options: unknown): Attack;
}
