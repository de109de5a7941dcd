/** The CNN classifiers of the paper's Table 1, as PyTorch-style modules. */
import { Tensor } from "../core/tensor.js";
import { Module } from "../nn/module.js";
import { BatchNorm2d, Conv2d, Dropout, Linear } from "../nn/layers.js";
import * as F from "../nn/functional.js";

/** What a classifier must offer for attacks, defenses and evaluation. Inputs are in [0, 1], NCHW. */
export interface ImageClassifier {
  /** Logits [N, numClasses] for images [N, C, H, W] in [0, 1]. */
  forward(x: Tensor): Tensor;
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  readonly training: boolean;
  train(on?: boolean): unknown;
  eval(): unknown;
}

/**
 * MNIST CNN (Table 1): two 5x5 "same" convolutions with 32 and 64 filters, each
 * followed by ReLU and 2x2 max pooling, dense 1024 with dropout 0.4, dense 10.
 */
export class MnistCnn extends Module implements ImageClassifier {
  readonly inputShape = [1, 28, 28] as const;
  readonly numClasses = 10;
  readonly conv1 = this.registerModule("conv1", new Conv2d(1, 32, 5, { padding: 2 }));
  readonly conv2 = this.registerModule("conv2", new Conv2d(32, 64, 5, { padding: 2 }));
  readonly fc1 = this.registerModule("fc1", new Linear(7 * 7 * 64, 1024));
  readonly drop = this.registerModule("drop", new Dropout(0.4));
  readonly fc2 = this.registerModule("fc2", new Linear(1024, 10));
  static readonly arch = "mnist-cnn";
  config(): Record<string, unknown> {
    return {};
  }

  forward(x: Tensor): Tensor {
    const a = this.conv1.forward(x);
    const b = a.relu();
    a.dispose();
    const c = F.maxPool2d(b, 2);
    b.dispose();
    const d = this.conv2.forward(c);
    c.dispose();
    const e = d.relu();
    d.dispose();
    const f = F.maxPool2d(e, 2);
    e.dispose();
    const g = f.flatten(1);
    f.dispose();
    const h = this.fc1.forward(g);
    g.dispose();
    const i = h.relu();
    h.dispose();
    const j = this.drop.forward(i);
    i.dispose();
    const out = this.fc2.forward(j);
    j.dispose();
    return out;
  }
}

/** One (3x3 conv + batch norm + ReLU) unit of the CIFAR-10 CNN. */
class ConvBn extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(inC: number, outC: number) {
    super();
    this.conv = this.registerModule("conv", new Conv2d(inC, outC, 3, { padding: 1 }));
    this.bn = this.registerModule("bn", new BatchNorm2d(outC));
  }
  forward(x: Tensor): Tensor {
    const a = this.conv.forward(x);
    const b = this.bn.forward(a);
    a.dispose();
    const c = b.relu();
    b.dispose();
    return c;
  }
}

/**
 * CIFAR-10 CNN (Table 1): three blocks of (3x3 conv + batch norm) x 2 with 32,
 * 64 and 128 filters, each followed by 2x2 max pooling and dropout 0.2, 0.3,
 * 0.4; then dense 10.
 */
export class Cifar10Cnn extends Module implements ImageClassifier {
  readonly inputShape = [3, 32, 32] as const;
  readonly numClasses = 10;
  static readonly arch = "cifar10-cnn";
  private readonly blocks: { a: ConvBn; b: ConvBn; drop: Dropout }[] = [];
  readonly fc: Linear;
  constructor() {
    super();
    const widths = [32, 64, 128];
    const drops = [0.2, 0.3, 0.4];
    let inC = 3;
    widths.forEach((w, i) => {
      const a = this.registerModule(`block${i + 1}a`, new ConvBn(inC, w));
      const b = this.registerModule(`block${i + 1}b`, new ConvBn(w, w));
      const drop = this.registerModule(`drop${i + 1}`, new Dropout(drops[i]));
      this.blocks.push({ a, b, drop });
      inC = w;
    });
    this.fc = this.registerModule("fc", new Linear(4 * 4 * 128, 10));
  }
  config(): Record<string, unknown> {
    return {};
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const blk of this.blocks) {
      const a = blk.a.forward(h);
      if (h !== x) h.dispose();
      const b = blk.b.forward(a);
      a.dispose();
      const p = F.maxPool2d(b, 2);
      b.dispose();
      h = blk.drop.forward(p);
      p.dispose();
    }
    const f = h.flatten(1);
    h.dispose();
    const out = this.fc.forward(f);
    f.dispose();
    return out;
  }
}
