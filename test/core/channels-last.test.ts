/**
 * conv2d in channels-last memory (issue 14, point 4) changes speed only: every model's outputs, input
 * gradients and training gradients agree with the NCHW computation within 1e-5, values read back to
 * JavaScript are in NCHW order, and VAEGUARD_CHANNELS_LAST=0 turns it off.
 */
import { describe, test, after } from "node:test";
import assert from "node:assert/strict";
import { getChannelsLast, manualSeed, setChannelsLast, tidy, noGrad } from "../../src/core/engine.js";
import { grad, rand, randint, tensor, type Tensor } from "../../src/core/tensor.js";
import { conv2d, crossEntropy } from "../../src/nn/functional.js";
import { Cifar10Cnn, MnistCnn, type ImageClassifier } from "../../src/models/classifiers.js";
import { ConvVae, VAE_PRESETS } from "../../src/models/vae.js";
import { engineSettingUnder } from "../helpers/engine-env.js";
import type { Module } from "../../src/nn/module.js";

const TOLERANCE = 1e-5;
const GRADIENT_TOLERANCE = 1e-2;
const initial = getChannelsLast();
after(() => setChannelsLast(initial));

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.dims, b.dims);
  const x = a.dataSync();
  const y = b.dataSync();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(Number(x[i]) - Number(y[i])));
  return m;
}

/** fn run once in NCHW and once in channels-last memory, returning both results. */
function bothLayouts<T>(fn: () => T): [nchw: T, channelsLast: T] {
  setChannelsLast(false);
  const nchw = fn();
  setChannelsLast(true);
  const cl = fn();
  return [nchw, cl];
}

describe("conv2d in channels-last memory", () => {
  test("is on by default, and VAEGUARD_CHANNELS_LAST=0 turns it off", () => {
    assert.equal(initial, true);
    for (const [value, expected] of [
      ["0", "false"],
      ["off", "false"],
      ["1", "true"],
    ]) {
      assert.equal(engineSettingUnder("getChannelsLast", "VAEGUARD_CHANNELS_LAST", value), expected);
    }
  });

  test("a convolution read back is in NCHW order, the same numbers as computed by hand", () => {
    // 1 image, 2 input channels, 2x2 pixels; a 1x1 kernel mixing the channels into 2 outputs.
    const x = tensor([1, 2, 3, 4, 10, 20, 30, 40], [1, 2, 2, 2]);
    const w = tensor([1, 0, 1, 1], [2, 2, 1, 1]);
    const [a, b] = bothLayouts(() => conv2d(x, w).toArray());
    const expected = [1, 2, 3, 4, 11, 22, 33, 44];
    assert.deepEqual(a, expected);
    assert.deepEqual(b, expected);
  });

  const classifiers: Array<[string, () => Module & ImageClassifier]> = [
    ["MNIST CNN (Table 1)", () => new MnistCnn()],
    ["CIFAR-10 CNN (Table 1)", () => new Cifar10Cnn()],
  ];
  for (const [name, make] of classifiers) {
    test(`${name}: logits and input gradients agree with NCHW`, () => {
      manualSeed(1);
      const model = make();
      model.eval();
      const x = rand([8, ...model.inputShape]);
      const y = randint(0, model.numClasses, [8]);
      const [a, b] = bothLayouts(() =>
        tidy(() => {
          const xa = x.clone().requiresGrad_();
          const logits = model.forward(xa);
          return [logits.detach(), grad(crossEntropy(logits, y), [xa])[0]] as [Tensor, Tensor];
        }),
      );
      assert.ok(maxAbsDiff(a[0], b[0]) < TOLERANCE, "logits");
      assert.ok(maxAbsDiff(a[1], b[1]) < TOLERANCE, "input gradient");
      // Not vacuous: the gradient is not all zeros.
      assert.ok(a[1].abs().max().item() > 0);
    });

    test(`${name}: a training step's parameter gradients agree with NCHW`, () => {
      // Compared before the optimiser: Adam's first step is lr * sign(gradient), so a gradient of 1e-9
      // against -1e-9 would differ by 2 * lr without any real difference between the layouts.
      const x = rand([8, ...make().inputShape]);
      const y = randint(0, 10, [8]);
      const [a, b] = bothLayouts(() => {
        manualSeed(2); // the same weights and the same dropout masks in both layouts
        const model = make();
        model.train();
        const params = model.parameters();
        return tidy(() => grad(crossEntropy(model.forward(x), y), params));
      });
      // In norm, relative to the gradient: a batch's gradient sums thousands of float32 products in
      // another order, and where two inputs of a 2x2 max-pool are within rounding of each other the
      // other layout can route that gradient to the other one (measured: 1e-3 of the norm in the first
      // block, 3e-6 further on). A layout bug (a transposed or misplaced gradient) is of order 1.
      assert.equal(a.length, b.length);
      for (let i = 0; i < a.length; i++) {
        const apart = a[i].sub(b[i]).norm().item() as number;
        const size = a[i].norm().item() as number;
        assert.ok(apart <= GRADIENT_TOLERANCE * size + TOLERANCE, `parameter ${i}: ${apart} apart, norm ${size}`);
      }
    });
  }

  for (const preset of ["mnist", "cifar10", "patch64"] as const) {
    test(`VAE ${preset}: reconstructions agree with NCHW`, () => {
      manualSeed(3);
      const vae = new ConvVae(VAE_PRESETS[preset]);
      const x = rand([4, ...VAE_PRESETS[preset].inputShape]);
      const [a, b] = bothLayouts(() => noGrad(() => vae.reconstruct(x, { deterministic: true })));
      assert.ok(maxAbsDiff(a, b) < TOLERANCE);
    });
  }
});
