import { test } from "node:test";
import assert from "node:assert/strict";
import { relativeL2, averageRelativeL2, countCorrect, meanStd } from "../../src/eval/metrics.js";
import { tensor } from "../../src/core/tensor.js";
import { memory, tidy } from "../../src/core/engine.js";

test("relative L2 difference on known inputs", () => {
  const before = memory().numTensors;
  tidy(() => {
    // Image 0: x = (3, 4), x_adv = (3, 4.5): ||d|| = 0.5, ||x|| = 5 -> 0.1. Image 1: x = (1, 0), x_adv = (0, 0) -> 1.
    const x = tensor([3, 4, 1, 0], [2, 1, 1, 2]);
    const adv = tensor([3, 4.5, 0, 0], [2, 1, 1, 2]);
    const r = relativeL2(x, adv);
    assert.ok(Math.abs(r[0] - 0.1) < 1e-6);
    assert.ok(Math.abs(r[1] - 1) < 1e-6);
    assert.ok(Math.abs(averageRelativeL2(x, adv) - 0.55) < 1e-6);
    assert.equal(averageRelativeL2(x, x), 0);
    // An all-black clean image: unchanged counts 0, changed counts Infinity (no relative size exists).
    const black = tensor([0, 0], [1, 1, 1, 2]);
    assert.equal(relativeL2(black, black)[0], 0);
    assert.equal(relativeL2(black, tensor([0, 1], [1, 1, 1, 2]))[0], Infinity);
    assert.throws(() => relativeL2(x, tensor([1, 2], [1, 1, 1, 2])), /shapes/);
  });
  assert.equal(memory().numTensors, before);
});

test("countCorrect and meanStd", () => {
  tidy(() => {
    const logits = tensor([0.1, 0.9, 0.8, 0.2, 0.3, 0.7], [3, 2]);
    assert.equal(countCorrect(logits, tensor([1, 0, 0], [3], { dtype: "int64" })), 2);
  });
  const { mean, std } = meanStd([0.5, 0.7]);
  assert.ok(Math.abs(mean - 0.6) < 1e-12);
  assert.ok(Math.abs(std - Math.sqrt(0.02)) < 1e-12);
  assert.deepEqual(meanStd([0.3]), { mean: 0.3, std: 0 });
});
