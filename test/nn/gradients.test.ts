/**
 * Gradients of the nn functions and losses against central finite differences
 * in float64, through grad() and through backward()/.grad (see
 * test/helpers/gradcheck.ts).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, tidy } from "../../src/core/engine.js";
import { Tensor, grad, rand, randn, tensor } from "../../src/core/tensor.js";
import * as F from "../../src/nn/functional.js";
import { Conv2d, Linear, Sequential, ReLU, Flatten } from "../../src/nn/layers.js";
import { leakFree } from "../helpers/assert.js";
import { gradCheck } from "../helpers/gradcheck.js";

/** A float64 leaf that requires grad. */
function leaf(shape: number[], scale = 1, offset = 0): Tensor {
  return randn(shape, { dtype: "float64" }).mul(scale).add(offset).requiresGrad_();
}

/**
 * Reduce an output to a scalar with fixed random weights, so that every
 * output element contributes with a different weight.
 */
function weighted(out: Tensor, weights: Tensor): Tensor {
  return out.mul(weights).sum();
}

function check(name: string, build: () => { f: (xs: Tensor[]) => Tensor; inputs: Tensor[] }): void {
  test(
    name,
    leakFree(() => {
      manualSeed(7);
      tidy(() => {
        const { f, inputs } = build();
        gradCheck(f, inputs, { atol: 1e-6, rtol: 1e-5 }, name);
      });
    }),
  );
}

function weightsFor(shape: number[]): Tensor {
  return randn(shape, { dtype: "float64" });
}

describe("convolutions", () => {
  check("conv2d (input, weight, bias; stride 2, padding 1)", () => {
    const r = weightsFor([2, 3, 3, 3]);
    return {
      inputs: [leaf([2, 2, 5, 5]), leaf([3, 2, 3, 3]), leaf([3])],
      f: ([x, w, b]) => weighted(F.conv2d(x, w, b, { stride: 2, padding: 1 }), r),
    };
  });
  check("conv2d (dilation 2, groups 2)", () => {
    const r = weightsFor([1, 4, 2, 2]);
    return {
      inputs: [leaf([1, 4, 6, 6]), leaf([4, 2, 3, 3])],
      f: ([x, w]) => weighted(F.conv2d(x, w, null, { dilation: 2, groups: 2 }), r),
    };
  });
  check('conv2d (padding "same", even kernel)', () => {
    const r = weightsFor([1, 2, 5, 5]);
    return {
      inputs: [leaf([1, 2, 5, 5]), leaf([2, 2, 2, 2])],
      f: ([x, w]) => weighted(F.conv2d(x, w, null, { padding: "same" }), r),
    };
  });
  check("convTranspose2d (stride 2, padding 1, output padding 1)", () => {
    const r = weightsFor([1, 2, 6, 6]);
    return {
      inputs: [leaf([1, 3, 3, 3]), leaf([3, 2, 3, 3]), leaf([2])],
      f: ([x, w, b]) => weighted(F.convTranspose2d(x, w, b, { stride: 2, padding: 1, outputPadding: 1 }), r),
    };
  });
});

describe("pooling and resampling", () => {
  check("maxPool2d (kernel 3, stride 2, padding 1)", () => {
    const r = weightsFor([2, 2, 3, 3]);
    return { inputs: [leaf([2, 2, 5, 5])], f: ([x]) => weighted(F.maxPool2d(x, 3, { stride: 2, padding: 1 }), r) };
  });
  check("maxPool2d (kernel 2)", () => {
    const r = weightsFor([1, 2, 2, 2]);
    return { inputs: [leaf([1, 2, 4, 4])], f: ([x]) => weighted(F.maxPool2d(x, 2), r) };
  });
  check("avgPool2d (kernel 3, stride 2, padding 1, excluding padding)", () => {
    const r = weightsFor([2, 2, 3, 3]);
    return {
      inputs: [leaf([2, 2, 5, 5])],
      f: ([x]) => weighted(F.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }), r),
    };
  });
  check("adaptiveAvgPool2d (5x7 -> 2x3)", () => {
    const r = weightsFor([1, 2, 2, 3]);
    return { inputs: [leaf([1, 2, 5, 7])], f: ([x]) => weighted(F.adaptiveAvgPool2d(x, [2, 3]), r) };
  });
  check("interpolate nearest (3x4 -> 7x9)", () => {
    const r = weightsFor([1, 2, 7, 9]);
    return { inputs: [leaf([1, 2, 3, 4])], f: ([x]) => weighted(F.interpolate(x, { size: [7, 9] }), r) };
  });
  check("interpolate bilinear (3x4 -> 5x7)", () => {
    const r = weightsFor([1, 2, 5, 7]);
    return {
      inputs: [leaf([1, 2, 3, 4])],
      f: ([x]) => weighted(F.interpolate(x, { size: [5, 7], mode: "bilinear" }), r),
    };
  });
  check("interpolate bilinear, align corners (3x4 -> 6x6)", () => {
    const r = weightsFor([1, 1, 6, 6]);
    return {
      inputs: [leaf([1, 1, 3, 4])],
      f: ([x]) => weighted(F.interpolate(x, { size: 6, mode: "bilinear", alignCorners: true }), r),
    };
  });
  check("unfold (kernel 3, padding 1, stride 2)", () => {
    const r = weightsFor([1, 18, 6]);
    return { inputs: [leaf([1, 2, 4, 5])], f: ([x]) => weighted(F.unfold(x, 3, { padding: 1, stride: 2 }), r) };
  });
  check("fold (kernel 2, overlapping)", () => {
    const r = weightsFor([1, 2, 4, 5]);
    return { inputs: [leaf([1, 8, 12])], f: ([c]) => weighted(F.fold(c, [4, 5], 2), r) };
  });
});

describe("batchNorm", () => {
  check("batchNorm training (input, weight, bias)", () => {
    const r = weightsFor([4, 3, 2, 2]);
    return {
      inputs: [leaf([4, 3, 2, 2], 2, 0.5), leaf([3], 0.5, 1), leaf([3])],
      f: ([x, w, b]) => weighted(F.batchNorm(x, { weight: w, bias: b, training: true }), r),
    };
  });
  check("batchNorm inference (input, weight, bias)", () => {
    const r = weightsFor([4, 3, 2, 2]);
    const rm = randn([3], { dtype: "float64" });
    const rv = rand([3], { dtype: "float64" }).add(0.5);
    return {
      inputs: [leaf([4, 3, 2, 2]), leaf([3]), leaf([3])],
      f: ([x, w, b]) =>
        weighted(F.batchNorm(x, { weight: w, bias: b, runningMean: rm, runningVar: rv, training: false }), r),
    };
  });
});

describe("losses", () => {
  check("crossEntropy with class indices (logits)", () => {
    const t = tensor([1, 0, 3], [3], { dtype: "int64" });
    return { inputs: [leaf([3, 4], 2)], f: ([x]) => F.crossEntropy(x, t) };
  });
  check("crossEntropy with label smoothing, summed", () => {
    const t = tensor([1, 0, 3], [3], { dtype: "int64" });
    return { inputs: [leaf([3, 4], 2)], f: ([x]) => F.crossEntropy(x, t, "sum", 0.2) };
  });
  check("crossEntropy with probability targets (logits and targets)", () => {
    const p = F.softmax(randn([3, 4], { dtype: "float64" }), 1).requiresGrad_();
    return { inputs: [leaf([3, 4], 2), p], f: ([x, t]) => F.crossEntropy(x, t) };
  });
  check("nllLoss (log-probabilities)", () => {
    const t = tensor([2, 2, 0], [3], { dtype: "int64" });
    return { inputs: [leaf([3, 4])], f: ([x]) => F.nllLoss(x, t, "mean") };
  });
  check("mseLoss (input and target)", () => {
    return { inputs: [leaf([3, 4]), leaf([3, 4])], f: ([x, t]) => F.mseLoss(x, t) };
  });
  check("mseLoss, reduction none weighted", () => {
    const r = weightsFor([3, 4]);
    return { inputs: [leaf([3, 4]), leaf([3, 4])], f: ([x, t]) => weighted(F.mseLoss(x, t, "none"), r) };
  });
  check("bceLoss (probabilities and targets)", () => {
    const p = rand([3, 4], { dtype: "float64" }).mul(0.8).add(0.1).requiresGrad_();
    const t = rand([3, 4], { dtype: "float64" }).requiresGrad_();
    return { inputs: [p, t], f: ([x, y]) => F.bceLoss(x, y) };
  });
  check("bceWithLogits (logits)", () => {
    const t = rand([3, 4], { dtype: "float64" });
    return { inputs: [leaf([3, 4], 3)], f: ([x]) => F.bceWithLogits(x, t, "sum") };
  });
  check("softmax / logSoftmax composed", () => {
    const r = weightsFor([2, 5]);
    return {
      inputs: [leaf([2, 5])],
      f: ([x]) => weighted(F.softmax(x, 1), r).add(weighted(F.logSoftmax(x, 1), r)),
    };
  });
});

describe("grad() versus parameters' .grad", () => {
  test(
    "grad() with respect to the input leaves every parameter's .grad untouched; backward() fills them",
    leakFree(() => {
      manualSeed(3);
      const model = new Sequential(new Conv2d(1, 2, 3, { padding: 1 }), new ReLU(), new Flatten(), new Linear(32, 3));
      tidy(() => {
        const x = rand([2, 1, 4, 4]).requiresGrad_();
        const target = tensor([0, 2], [2], { dtype: "int64" });
        const [gx] = grad(F.crossEntropy(model.forward(x), target), [x]);
        assert.deepEqual(gx.shape, [2, 1, 4, 4]);
        assert.ok(gx.abs().sum().item() > 0);
        for (const [name, p] of model.namedParameters()) assert.equal(p.grad, undefined, `${name}.grad after grad()`);
        assert.equal(x.grad, undefined);
        // The same gradient through backward(), which does fill .grad.
        F.crossEntropy(model.forward(x), target).backward();
        const xg = (x as Tensor).grad;
        assert.ok(xg);
        assert.deepEqual(xg.toArray(), gx.toArray());
        for (const [name, p] of model.namedParameters()) assert.ok(p.grad, `${name}.grad after backward()`);
        // backward() accumulates.
        const first = model.parameters()[0].grad!.toArray();
        F.crossEntropy(model.forward(x), target).backward();
        const second = model.parameters()[0].grad!.toArray();
        second.forEach((v, i) => assert.ok(Math.abs(v - 2 * first[i]) < 1e-5));
        model.zeroGrad();
        for (const p of model.parameters()) assert.equal(p.grad, undefined);
      });
      model.dispose();
    }),
  );

  test(
    "grad() of several inputs and of a non-scalar output with gradOutputs",
    leakFree(() => {
      tidy(() => {
        const a = tensor([1, 2, 3], [3], { dtype: "float64" }).requiresGrad_();
        const b = tensor([4, 5, 6], [3], { dtype: "float64" }).requiresGrad_();
        const [ga, gb] = grad(a.mul(b).sum(), [a, b]);
        assert.deepEqual(ga.toArray(), [4, 5, 6]);
        assert.deepEqual(gb.toArray(), [1, 2, 3]);
        const [g2] = grad(a.mul(a), [a], { gradOutputs: [tensor([1, 0, 2], [3], { dtype: "float64" })] });
        assert.deepEqual(g2.toArray(), [2, 0, 12]);
        // Second order through createGraph: d/da sum(d(a^3)/da) = 6a.
        const [g3] = grad(a.pow(3).sum(), [a], { createGraph: true });
        const [h] = grad(g3.sum(), [a]);
        assert.deepEqual(h.toArray(), [6, 12, 18]);
        // An unused input gives zeros with allowUnused.
        const c = tensor([1], [1], { dtype: "float64" }).requiresGrad_();
        const [, gc] = grad(a.sum(), [a, c], { allowUnused: true });
        assert.deepEqual(gc.toArray(), [0]);
      });
    }),
  );
});
