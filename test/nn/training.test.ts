/**
 * End to end: a small CNN learns a separable synthetic problem (is the bright
 * half of an 8x8 image on the left or on the right?).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { getNumThreads, keep, manualSeed, memory, noGrad, setNumThreads, tidy } from "../../src/core/engine.js";
import { Tensor, cat, rand, tensor, zeros } from "../../src/core/tensor.js";
import * as F from "../../src/nn/functional.js";
import { BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential } from "../../src/nn/layers.js";
import { Adam } from "../../src/optim/optimizer.js";
import { leakFree } from "../helpers/assert.js";

/** n images per class: noise in [0, 0.5) plus 0.5 on the left (class 0) or right (class 1) half. */
function brightHalves(n: number): { x: Tensor; y: Tensor } {
  return tidy(() => {
    const left = zeros([1, 1, 8, 8]);
    left.narrow(3, 0, 4).fill_(0.5);
    const right = left.flip(3);
    const x0 = rand([n, 1, 8, 8]).mul(0.5).add(left);
    const x1 = rand([n, 1, 8, 8]).mul(0.5).add(right);
    const labels = [...new Array<number>(n).fill(0), ...new Array<number>(n).fill(1)];
    return { x: cat([x0, x1]), y: tensor(labels, [2 * n], { dtype: "int64" }) };
  });
}

// One intra-op thread: the ops are tiny, and on a busy machine spinning workers are slow.
const threads = getNumThreads();
before(() => setNumThreads(1));
after(() => setNumThreads(threads));

test(
  "a small CNN trained for 300 steps separates bright-left from bright-right images",
  leakFree(() => {
    manualSeed(2024);
    const { x, y } = brightHalves(16);
    const model = new Sequential(
      new Conv2d(1, 4, 3, { padding: 1 }),
      new BatchNorm2d(4),
      new ReLU(),
      new MaxPool2d(2),
      new Flatten(),
      new Linear(4 * 4 * 4, 2),
    );
    const opt = new Adam(model.parameters(), { lr: 0.01 });
    const evaluate = () =>
      noGrad(() =>
        tidy(() => {
          model.eval();
          const logits = model.forward(x);
          const loss = F.crossEntropy(logits, y).item();
          const acc = logits.argmax(1).eq(y).float().mean().item();
          model.train();
          return { loss, acc };
        }),
      );
    const initial = evaluate();
    const liveBefore = memory().numTensors;
    const losses: number[] = [];
    for (let step = 0; step < 300; step++) {
      opt.zeroGrad();
      const loss = tidy(() => {
        const l = F.crossEntropy(model.forward(x), y);
        l.backward();
        return l.item();
      });
      losses.push(loss);
      opt.step();
    }
    opt.zeroGrad();
    // Adam's state was created on the first step; nothing else accumulates.
    assert.equal(memory().numTensors, liveBefore + 2 * model.parameters().length);
    const final = evaluate();
    assert.ok(final.loss < 0.2 * initial.loss, `final loss ${final.loss} is not below 0.2 x initial ${initial.loss}`);
    assert.ok(losses[losses.length - 1] < 0.2 * losses[0]);
    assert.equal(final.acc, 1, `training accuracy ${final.acc}`);
    opt.dispose();
    model.dispose();
    x.dispose();
    y.dispose();
  }),
);

test(
  "parameters kept across tidy scopes survive training; keep() is what makes this work",
  leakFree(() => {
    const w = keep(tensor([0.5], [1]).requiresGrad_());
    tidy(() => {
      for (let i = 0; i < 3; i++) tidy(() => w.mul(2).sum().backward());
    });
    const g = w.grad!;
    assert.deepEqual(g.toArray(), [6]);
    g.dispose();
    w.grad = undefined;
    w.dispose();
  }),
);
