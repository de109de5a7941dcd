/**
 * One synchronous training step of a classifier with Adam inside tidy, on
 * random data: shared by the memory tests and bench/memory.ts, so both
 * measure the same loop.
 */
import { tidy } from "../../src/core/engine.js";
import { randint, rand, type Tensor } from "../../src/core/tensor.js";
import * as F from "../../src/nn/functional.js";
import { Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential } from "../../src/nn/layers.js";
import type { Module } from "../../src/nn/module.js";
import { Adam } from "../../src/optim/optimizer.js";
import { MnistCnn } from "../../src/models/classifiers.js";

export const MEMORY_MODELS = ["mnist-cnn", "small"] as const;
export type MemoryModel = (typeof MEMORY_MODELS)[number];

/** A small CNN on 1x12x12 images: cheap enough for tens of thousands of steps in a test. */
function smallCnn(): Module & { forward(x: Tensor): Tensor } {
  return new Sequential(
    new Conv2d(1, 8, 3, { padding: 1 }),
    new ReLU(),
    new MaxPool2d(2),
    new Flatten(),
    new Linear(8 * 6 * 6, 10),
  );
}

export interface TrainingLoop {
  step(): number;
  dispose(): void;
}

export function makeTrainingLoop(model: MemoryModel, batchSize: number): TrainingLoop {
  const net = model === "mnist-cnn" ? new MnistCnn() : smallCnn();
  const side = model === "mnist-cnn" ? 28 : 12;
  net.train();
  const opt = new Adam(net.parameters(), { lr: 1e-3 });
  return {
    step: () =>
      tidy(() => {
        opt.zeroGrad();
        const x = rand([batchSize, 1, side, side]);
        const y = randint(0, 10, [batchSize]);
        const loss = F.crossEntropy(net.forward(x), y);
        loss.backward();
        opt.step();
        return loss.item();
      }),
    dispose: () => {
      opt.dispose();
      net.dispose();
    },
  };
}
