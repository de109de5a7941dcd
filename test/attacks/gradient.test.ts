import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { Tensor, rand, stack, tensor } from "../../src/core/tensor.js";
import * as F from "../../src/nn/functional.js";
import { lossAndGradient, lossGradient } from "../../src/attacks/gradient.js";
import { resolveEotSamples, DEFAULT_RANDOMIZED_EOT_SAMPLES } from "../../src/attacks/base.js";
import { LinearModel, NoisyModel, Recorder, take } from "./helpers.js";
import { leakFree } from "../helpers/assert.js";

const W3 = [
  [0.5, -1, 0.25, 2],
  [-1, 0.5, 1, 0],
  [0.3, 0.2, -0.7, 1],
];

/** Mean over elements of the variance across repeated gradient estimates. */
function meanVariance(samples: Tensor[]): number {
  return noGrad(() => tidy(() => stack(samples).var(0).mean().item()));
}

describe("lossGradient (EOT)", () => {
  it("equals the analytic cross-entropy gradient W^T (softmax(z) - e_y) of a linear model", async () => {
    const model = new LinearModel(W3, [0.1, 0, -0.1]);
    const x = tensor([0.2, 0.4, 0.6, 0.8, 0.9, 0.1, 0.5, 0.3], [2, 1, 1, 4]);
    const y = tensor([1, 2], [2], { dtype: "int64" });
    const g = await lossGradient(model, x, y);
    const expected = noGrad(() =>
      tidy(() => {
        const p = F.softmax(model.forward(x), 1);
        const onehot = tensor([0, 1, 0, 0, 0, 1], [2, 3]);
        return p.sub(onehot).matmul(model.fc.weight).toArray();
      }),
    );
    const got = take(g);
    expected.forEach((e, i) => assert.ok(Math.abs(got[i] - e) < 1e-6, `index ${i}: ${got[i]} != ${e}`));
    x.dispose();
    y.dispose();
    model.dispose();
  });

  it("targeted: the gradient and loss are those of minus the cross-entropy", async () => {
    const model = new LinearModel(W3, [0, 0, 0]);
    const x = tensor([0.2, 0.4, 0.6, 0.8], [1, 1, 1, 4]);
    const y = tensor([2], [1], { dtype: "int64" });
    const a = await lossAndGradient(model, x, y);
    const b = await lossAndGradient(model, x, y, { targeted: true });
    const ce = noGrad(() => tidy(() => F.crossEntropy(model.forward(x), y).item()));
    assert.ok(Math.abs(a.loss.item() - ce) < 1e-6);
    assert.ok(Math.abs(b.loss.item() + ce) < 1e-6);
    const ga = take(a.gradient);
    take(b.gradient).forEach((v, i) => assert.ok(Math.abs(v + ga[i]) < 1e-7));
    a.loss.dispose();
    b.loss.dispose();
    x.dispose();
    y.dispose();
    model.dispose();
  });

  it("with K samples of a deterministic model equals one sample, after K passes", async () => {
    const model = new LinearModel(W3, [0.1, 0, -0.1]);
    const recorder = new Recorder(model);
    manualSeed(3);
    const x = rand([5, 1, 2, 2]);
    const y = tensor([0, 1, 2, 1, 0], [5], { dtype: "int64" });
    const one = take(await lossGradient(recorder, x, y, { eotSamples: 1 }));
    const many = take(await lossGradient(recorder, x, y, { eotSamples: 7 }));
    assert.equal(recorder.calls, 8);
    many.forEach((v, i) => assert.ok(Math.abs(v - one[i]) <= 1e-6, `index ${i}: ${v} != ${one[i]}`));
    x.dispose();
    y.dispose();
    model.dispose();
  });

  it("on a randomized model averages the samples: the variance falls about as 1/K", async () => {
    const model = new LinearModel(W3, [0, 0, 0]);
    const noisy = new NoisyModel(model, 1.0);
    manualSeed(11);
    const x = rand([2, 1, 2, 2]);
    const y = tensor([0, 2], [2], { dtype: "int64" });
    const repeats = 24;
    const estimates = async (k: number): Promise<Tensor[]> => {
      const out: Tensor[] = [];
      for (let r = 0; r < repeats; r++) out.push(await lossGradient(noisy, x, y, { eotSamples: k }));
      return out;
    };
    const single = await estimates(1);
    const averaged = await estimates(16);
    const v1 = meanVariance(single);
    const v16 = meanVariance(averaged);
    assert.ok(v1 > 0, "a noisy model must give noisy gradients");
    assert.ok(v16 < v1 / 4, `variance with 16 samples (${v16}) should be far below one sample's (${v1})`);
    for (const t of [...single, ...averaged, x, y]) t.dispose();
    model.dispose();
  });

  it("uses the configured default on randomized models and 1 on deterministic ones", async () => {
    const model = new LinearModel(W3, [0, 0, 0]);
    const det = new Recorder(model);
    const rnd = new Recorder(model, { randomized: true });
    assert.equal(resolveEotSamples(det, undefined), 1);
    assert.equal(resolveEotSamples(rnd, undefined), DEFAULT_RANDOMIZED_EOT_SAMPLES);
    assert.equal(resolveEotSamples(rnd, 3), 3);
    const x = tensor([0.2, 0.4, 0.6, 0.8], [1, 1, 1, 4]);
    const y = tensor([0], [1], { dtype: "int64" });
    take(await lossGradient(rnd, x, y));
    assert.equal(rnd.calls, DEFAULT_RANDOMIZED_EOT_SAMPLES);
    take(await lossGradient(det, x, y));
    assert.equal(det.calls, 1);
    assert.throws(
      () => resolveEotSamples(det, 0),
      /Expected integer between 1 and 10000 for eotSamples but received 0/,
    );
    x.dispose();
    y.dispose();
    model.dispose();
  });

  it("leaks no tensors, also when a pass fails midway, and leaves parameter gradients alone", async () => {
    const model = new LinearModel(W3, [0, 0, 0]);
    const x = tensor([0.2, 0.4, 0.6, 0.8], [1, 1, 1, 4]);
    const y = tensor([0], [1], { dtype: "int64" });
    await leakFree(async () => {
      const r = await lossAndGradient(new Recorder(model, { async: true }), x, y, { eotSamples: 4 });
      r.gradient.dispose();
      r.loss.dispose();
      await assert.rejects(
        lossGradient(new Recorder(model, { failAfter: 2 }), x, y, { eotSamples: 4 }),
        /model failure for the test/,
      );
      await assert.rejects(
        lossGradient(new Recorder(model, { failAfter: 2, async: true }), x, y, { eotSamples: 4 }),
        /model failure for the test/,
      );
    })();
    assert.equal(model.fc.weight.grad, undefined);
    x.dispose();
    y.dispose();
    model.dispose();
  });
});
