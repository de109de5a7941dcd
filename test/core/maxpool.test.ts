/**
 * vaeguard's own 2x2 max pooling (native/src/maxpool2x2.cc) against libtorch's max_pool2d: the same
 * values, the same winner of every window (so the same gradients, bit for bit), in NCHW and in
 * channels-last memory, with ties, NaN and -inf, odd sizes, without grad and through a double backward.
 */
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { getChannelsLast, getFastMaxPool, manualSeed, setChannelsLast, setFastMaxPool } from "../../src/core/engine.js";
import { grad, rand, randint, randn, tensor, type Tensor } from "../../src/core/tensor.js";
import { conv2d, maxPool2d, crossEntropy } from "../../src/nn/functional.js";
import { engineSettingUnder } from "../helpers/engine-env.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import { ConvVae, VAE_PRESETS } from "../../src/models/vae.js";

const initialLayout = getChannelsLast();
after(() => {
  setFastMaxPool(true);
  setChannelsLast(initialLayout);
});

/** fn with vaeguard's kernel, then with libtorch's. */
function bothKernels<T>(fn: () => T): [fast: T, libtorch: T] {
  setFastMaxPool(true);
  const fast = fn();
  setFastMaxPool(false);
  const reference = fn();
  setFastMaxPool(true);
  return [fast, reference];
}

/** Values with many ties: integers in [-1, 1], plus zeros of both signs. */
function tiedValues(shape: number[]): Tensor {
  return randint(-1, 2, shape).float().mul(rand(shape).gt(0.3).float());
}

/** Pooled values and the gradient of sum(pooled * upstream) with respect to x, as plain arrays. */
function pooledWithGradient(x: Tensor, upstream: Tensor, options: { ceilMode?: boolean } = {}) {
  const leaf = x.detach().requiresGrad_(true);
  const y = maxPool2d(leaf, 2, options);
  const [g] = grad(y.mul(upstream).sum(), [leaf]);
  return { y: y.toArray(), g: g.toArray(), dims: y.dims };
}

describe("2x2 max pooling", () => {
  test("is vaeguard's kernel by default, and VAEGUARD_FAST_MAXPOOL=0 turns it off", () => {
    assert.equal(getFastMaxPool(), true);
    for (const [value, expected] of [
      ["0", "false"],
      ["off", "false"],
      ["1", "true"],
    ]) {
      assert.equal(engineSettingUnder("getFastMaxPool", "VAEGUARD_FAST_MAXPOOL", value), expected);
    }
  });

  for (const shape of [
    [2, 3, 6, 8],
    [1, 1, 7, 9],
    [3, 5, 2, 2],
    [2, 4, 11, 5],
  ]) {
    test(`values and gradients are libtorch's exactly, NCHW ${shape.join("x")}, with ties, NaN and -inf`, () => {
      manualSeed(1);
      const x = tiedValues(shape);
      // A NaN and two -inf windows' worth of values, where libtorch's rule (NaN wins, first maximum) shows.
      const data = x.toArray();
      data[1] = NaN;
      data[shape[3]] = NaN;
      for (const i of [2, 3, shape[3] + 2, shape[3] + 3]) data[i] = -Infinity;
      const input = tensor(data, shape);
      const out = [shape[0], shape[1], Math.floor(shape[2] / 2), Math.floor(shape[3] / 2)];
      const upstream = randn(out);
      const [fast, reference] = bothKernels(() => pooledWithGradient(input, upstream));
      assert.deepEqual(fast.dims, out);
      assert.deepEqual(fast, reference);
    });
  }

  test("channels-last input (a convolution's output) gives libtorch's values and gradients exactly", () => {
    setChannelsLast(true);
    manualSeed(2);
    const x = tiedValues([2, 3, 10, 12]).requiresGrad_(true);
    // A 1x1 convolution with integer weights keeps ties; its output is in channels-last memory.
    const w = randint(-1, 2, [6, 3, 1, 1]).float();
    const upstream = randn([2, 6, 5, 6]);
    const [fast, reference] = bothKernels(() => {
      const y = maxPool2d(conv2d(x, w), 2);
      const [g] = grad(y.mul(upstream).sum(), [x]);
      return { y: y.toArray(), g: g.toArray() };
    });
    assert.deepEqual(fast, reference);
    setChannelsLast(initialLayout);
  });

  test("without grad and with ceilMode on even sizes it is the same too; odd sizes with ceilMode stay libtorch's", () => {
    manualSeed(3);
    const x = tiedValues([2, 3, 8, 6]);
    const [fast, reference] = bothKernels(() => maxPool2d(x, 2, { ceilMode: true }).toArray());
    assert.deepEqual(fast, reference);
    const odd = tiedValues([1, 2, 5, 5]);
    const [a, b] = bothKernels(() => maxPool2d(odd, 2, { ceilMode: true }).dims);
    assert.deepEqual(a, [1, 2, 3, 3]);
    assert.deepEqual(a, b);
  });

  test("a double backward (createGraph) routes the second gradient through the same winners", () => {
    manualSeed(4);
    const x = tiedValues([2, 2, 6, 6]).requiresGrad_(true);
    const v = randn([2, 2, 6, 6]);
    const [fast, reference] = bothKernels(() => {
      const upstream = randn([2, 2, 3, 3]).requiresGrad_(true);
      const y = maxPool2d(x, 2);
      const [gx] = grad(y.mul(upstream).sum(), [x], { createGraph: true });
      const [gu] = grad(gx.mul(v).sum(), [upstream]);
      return gu.toArray();
    });
    assert.deepEqual(fast, reference);
  });

  test("the Table 1 CNN's input gradient and the Table 2 VAE's training gradient do not change", () => {
    manualSeed(5);
    const cnn = new MnistCnn();
    cnn.eval();
    const vae = new ConvVae(VAE_PRESETS.mnist);
    const x = rand([4, 1, 28, 28]);
    const y = randint(0, 10, [4]);
    const [fast, reference] = bothKernels(() => {
      const leaf = x.detach().requiresGrad_(true);
      const [gx] = grad(crossEntropy(cnn.forward(leaf), y), [leaf]);
      const { mu } = vae.encode(x);
      const [gw] = grad(mu.square().sum(), [vae.parameters()[0]]);
      return [gx.toArray(), gw.toArray()];
    });
    assert.deepEqual(fast, reference);
    cnn.dispose();
    vae.dispose();
  });
});
