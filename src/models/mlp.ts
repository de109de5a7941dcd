/**
 * A small multi-layer perceptron classifier: flatten, dense layers with ReLU,
 * dense to the classes. Not in the paper: it is the "second, unseen
 * classifier" of the universality test (issue 12), an architecture as unlike
 * the Table 1 CNN as a reasonable MNIST classifier gets (no convolutions, no
 * pooling, no dropout), trained with its own seed.
 */
import type { Tensor } from "../core/tensor.js";
import { tidy } from "../core/engine.js";
import { checkInt, checkIntArray } from "../core/validate.js";
import { Module } from "../nn/module.js";
import { Linear } from "../nn/layers.js";
import type { ImageClassifier } from "./classifiers.js";

export interface MlpConfig {
  /** [C, H, W] of the images. */
  inputShape: [number, number, number];
  /** Widths of the hidden layers, first to last. */
  hidden: number[];
  numClasses: number;
}

export const MNIST_MLP: MlpConfig = { inputShape: [1, 28, 28], hidden: [512, 256], numClasses: 10 };

export class Mlp extends Module implements ImageClassifier {
  static readonly arch = "mlp";
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  private readonly layers: Linear[] = [];

  constructor(readonly cfg: MlpConfig = MNIST_MLP) {
    super();
    const [c, h, w] = checkIntArray(cfg.inputShape, "inputShape", 3, 1);
    const hidden = checkIntArray(cfg.hidden, "hidden", undefined, 1);
    this.numClasses = checkInt(cfg.numClasses, "numClasses", 2);
    this.inputShape = [c, h, w];
    const widths = [c * h * w, ...hidden, this.numClasses];
    for (let i = 0; i + 1 < widths.length; i++) {
      this.layers.push(this.registerModule(`fc${i + 1}`, new Linear(widths[i], widths[i + 1])));
    }
  }

  config(): Record<string, unknown> {
    return { inputShape: [...this.cfg.inputShape], hidden: [...this.cfg.hidden], numClasses: this.cfg.numClasses };
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x.flatten(1);
      this.layers.forEach((layer, i) => {
        h = layer.forward(h);
        if (i + 1 < this.layers.length) h = h.relu();
      });
      return h;
    });
  }
}
