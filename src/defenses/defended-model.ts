/**
 * A defended model: defense, then classifier. It is itself a model that
 * attacks take (AttackableModel), in one of two views:
 *
 * - "adaptive" (default): forward(x) = classifier(defense.attackView(x)), so
 *   an attack sees the defense: exact gradients through differentiable
 *   defenses, BPDA through the others, and EOT over random ones
 *   (`randomized` comes from the defense).
 * - "gray-box": forward(x) = classifier(x). The attacker does not know the
 *   defense: the paper's setting (section 4, "Attacks"), which overstates
 *   robustness.
 *
 * Either way predict() and accuracy() classify the purified images,
 * defense.apply(x), as a deployed system would.
 */
import { noGrad, noGradAsync, tidyAsync } from "../core/engine.js";
import { ShapeError } from "../core/errors.js";
import { readOptions, type Schema } from "../core/params.js";
import { Tensor } from "../core/tensor.js";
import { fail } from "../core/validate.js";
import { inEvalMode, type Classifier } from "../models/types.js";
import { checkImages } from "./common.js";
import { correctPerPass, passAccuracy, type AccuracyResult } from "./scoring.js";
import type { Defense } from "./types.js";

export type { AccuracyResult } from "./scoring.js";
/** The classifier behind a defense: the Classifier of models/types.ts. */
export type { Classifier } from "../models/types.js";

export type DefenseView = "adaptive" | "gray-box";

const OPTIONS = {
  view: { type: "choice", choices: ["adaptive", "gray-box"], default: "adaptive", doc: "how attacks see the defense" },
} as const satisfies Schema;

export interface DefendedModelOptions {
  /** How attacks see the defense (default "adaptive"). */
  view?: DefenseView;
}

const ACCURACY_OPTIONS = {
  passes: {
    type: "int",
    min: 1,
    default: 5,
    doc: "forward passes for a randomized defense (a deterministic defense always uses 1)",
  },
  batchSize: { type: "int", min: 1, defaultText: "the whole batch", doc: "images per defense + classifier call" },
} as const satisfies Schema;

export interface AccuracyOptions {
  /** Forward passes for a randomized defense (default 5); a deterministic defense always uses 1. */
  passes?: number;
  /** Images per defense + classifier call (default: the whole batch). */
  batchSize?: number;
}

/** Passes that score a randomized defense unless told otherwise. */
export const DEFAULT_ACCURACY_PASSES = ACCURACY_OPTIONS.passes.default;

export class DefendedModel implements Classifier {
  readonly view: DefenseView;

  constructor(
    readonly defense: Defense,
    readonly classifier: Classifier,
    options: DefendedModelOptions = {},
  ) {
    const o = readOptions("DefendedModel", OPTIONS, options);
    if (typeof defense !== "object" || defense === null || typeof defense.apply !== "function") {
      fail("a defense", "defense", defense);
    }
    if (typeof classifier !== "object" || classifier === null || typeof classifier.forward !== "function") {
      fail("a classifier with forward(), train() and training", "classifier", classifier);
    }
    this.view = o.view;
  }

  get name(): string {
    return `${this.defense.name} (${this.view})`;
  }

  /** Random when the attack sees a random defense (then attacks average gradients over EOT samples). */
  get randomized(): boolean {
    return this.view === "adaptive" && this.defense.randomized;
  }

  get training(): boolean {
    return this.classifier.training;
  }

  train(on = true): unknown {
    return this.classifier.train(on);
  }

  eval(): unknown {
    return this.classifier.train(false);
  }

  /** Logits for the attack: through the defense's attack view (adaptive) or the bare classifier (gray-box). */
  async forward(x: Tensor): Promise<Tensor> {
    if (this.view === "gray-box") return this.classifier.forward(x);
    // The autograd graph holds its own reference to the view; the scope frees the handle.
    return tidyAsync(async () => this.classifier.forward(await this.defense.attackView(x)));
  }

  /** Predicted classes [N] (int64) of defense.apply(x), one pass, in eval mode. */
  async predict(x: Tensor): Promise<Tensor> {
    checkImages(x, this.name);
    return tidyAsync(async () => {
      const purified = await this.defense.apply(x);
      const logits = await inEvalMode(this.classifier, () => noGradAsync(() => this.classifier.forward(purified)));
      return noGrad(() => logits.argmax(1));
    });
  }

  /**
   * Top-1 accuracy of defense then classifier on (x, labels). A randomized
   * defense is scored as the mean (and standard deviation) over `passes`
   * independent passes, never the best pass.
   */
  async accuracy(x: Tensor, labels: Tensor, options: AccuracyOptions = {}): Promise<AccuracyResult> {
    checkImages(x, this.name);
    const o = readOptions("accuracy", ACCURACY_OPTIONS, options);
    const n = x.dims[0];
    if (!(labels instanceof Tensor) || labels.rank !== 1 || labels.dims[0] !== n) {
      const got = labels instanceof Tensor ? `shape [${labels.shape.join(", ")}]` : String(labels);
      throw new ShapeError(`accuracy: expected ${n} labels of shape [${n}] but received ${got}`);
    }
    const batchSize = o.batchSize ?? Math.max(n, 1);
    const correct: number[] = new Array(this.defense.randomized ? o.passes : 1).fill(0);
    for (let start = 0; start < n; start += batchSize) {
      const m = Math.min(batchSize, n - start);
      const counts = await tidyAsync(async () => {
        const [xb, yb] = m === n ? [x, labels] : [x.narrow(0, start, m), labels.narrow(0, start, m)];
        return correctPerPass(this.defense, this.classifier, xb, yb, o.passes);
      });
      counts.forEach((c, p) => (correct[p] += c));
    }
    return passAccuracy(correct, n);
  }
}
