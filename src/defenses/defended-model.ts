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
import { noGrad, tidy } from "../core/engine.js";
import { ShapeError } from "../core/errors.js";
import { Tensor } from "../core/tensor.js";
import { checkInt, checkOneOf, fail } from "../core/validate.js";
import type { AttackableModel } from "../attacks/types.js";
import { checkImages, checkOptions, meanStd, noGradAsync } from "./common.js";
import type { Defense } from "./types.js";

export type DefenseView = "adaptive" | "gray-box";

/** What the wrapper needs of a classifier: logits [N, K] for images in [0, 1] and a train/eval mode. */
export interface Classifier {
  forward(x: Tensor): Tensor | Promise<Tensor>;
  readonly training: boolean;
  train(on?: boolean): unknown;
}

export interface DefendedModelOptions {
  /** How attacks see the defense (default "adaptive"). */
  view?: DefenseView;
}

export interface AccuracyOptions {
  /** Forward passes for a randomized defense (default 5); a deterministic defense always uses 1. */
  passes?: number;
  /** Images per defense + classifier call (default: the whole batch). */
  batchSize?: number;
}

export interface AccuracyResult {
  /** Mean accuracy over the passes. */
  mean: number;
  /** Standard deviation over the passes (unbiased; 0 for one pass). */
  std: number;
  /** Number of passes run. */
  passes: number;
  /** The accuracy of each pass. */
  perPass: number[];
}

export const DEFAULT_ACCURACY_PASSES = 5;

export class DefendedModel implements AttackableModel {
  readonly view: DefenseView;

  constructor(
    readonly defense: Defense,
    readonly classifier: Classifier,
    options: DefendedModelOptions = {},
  ) {
    const o = checkOptions("DefendedModel", options, ["view"]);
    if (typeof defense !== "object" || defense === null || typeof defense.apply !== "function") {
      fail("a defense", "defense", defense);
    }
    if (typeof classifier !== "object" || classifier === null || typeof classifier.forward !== "function") {
      fail("a classifier with forward(), train() and training", "classifier", classifier);
    }
    this.view = checkOneOf(o.view ?? "adaptive", "view", ["adaptive", "gray-box"] as const);
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
    const v = await this.defense.attackView(x);
    try {
      return await this.classifier.forward(v);
    } finally {
      // The autograd graph holds its own reference to v; the handle can go.
      v.dispose();
    }
  }

  /** Logits of the classifier on the purified images, without gradients, in eval mode. */
  private async defendedLogits(x: Tensor): Promise<Tensor> {
    const purified = await this.defense.apply(x);
    const wasTraining = this.classifier.training;
    this.classifier.train(false);
    try {
      return await noGradAsync(() => this.classifier.forward(purified));
    } finally {
      this.classifier.train(wasTraining);
      purified.dispose();
    }
  }

  /** Predicted classes [N] (int64) of defense.apply(x), one pass, in eval mode. */
  async predict(x: Tensor): Promise<Tensor> {
    checkImages(x, this.name);
    const logits = await this.defendedLogits(x);
    try {
      return noGrad(() => logits.argmax(1));
    } finally {
      logits.dispose();
    }
  }

  /**
   * Top-1 accuracy of defense then classifier on (x, labels). A randomized
   * defense is scored as the mean (and standard deviation) over `passes`
   * independent passes, never the best pass.
   */
  async accuracy(x: Tensor, labels: Tensor, options: AccuracyOptions = {}): Promise<AccuracyResult> {
    checkImages(x, this.name);
    const o = checkOptions("accuracy", options, ["passes", "batchSize"]);
    const n = x.dims[0];
    if (!(labels instanceof Tensor) || labels.rank !== 1 || labels.dims[0] !== n) {
      const got = labels instanceof Tensor ? `shape [${labels.shape.join(", ")}]` : String(labels);
      throw new ShapeError(`accuracy: expected ${n} labels of shape [${n}] but received ${got}`);
    }
    const asked = checkInt(o.passes ?? DEFAULT_ACCURACY_PASSES, "passes", 1);
    const passes = this.defense.randomized ? asked : 1;
    const batchSize = checkInt(o.batchSize ?? Math.max(n, 1), "batchSize", 1);
    const perPass: number[] = [];
    for (let p = 0; p < passes; p++) {
      let correct = 0;
      for (let start = 0; start < n; start += batchSize) {
        const m = Math.min(batchSize, n - start);
        const [xb, yb] = m === n ? [x, labels] : tidy(() => [x.narrow(0, start, m), labels.narrow(0, start, m)]);
        try {
          const pred = await this.predict(xb);
          try {
            correct += noGrad(() => tidy(() => pred.eq(yb.to(pred.dtype)).sum().item()));
          } finally {
            pred.dispose();
          }
        } finally {
          if (xb !== x) xb.dispose();
          if (yb !== labels) yb.dispose();
        }
      }
      perPass.push(n === 0 ? 0 : correct / n);
    }
    const { mean, std } = meanStd(perPass);
    return { mean, std, passes, perPass };
  }
}
