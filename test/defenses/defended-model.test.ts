/** DefendedModel: adaptive vs gray-box gradients, mode delegation, predict, accuracy over passes, no leaks. */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { enableGradAsync, manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { ShapeError } from "../../src/core/errors.js";
import { Tensor, rand, randn } from "../../src/core/tensor.js";
import { Dropout, Flatten, Linear, ReLU, Sequential } from "../../src/nn/layers.js";
import { DefendedModel } from "../../src/defenses/defended-model.js";
import { GaussianBlurDefense, gaussianBlur } from "../../src/defenses/gaussian-blur.js";
import { JpegDefense } from "../../src/defenses/jpeg.js";
import { FGSM } from "../../src/attacks/fgsm.js";
import { PGD } from "../../src/attacks/pgd.js";
import { NoDefense } from "../../src/defenses/none.js";
import { VaeDefense } from "../../src/defenses/vae.js";
import { bpdaIdentity } from "../../src/defenses/common.js";
import type { Defense, GradientKind } from "../../src/defenses/types.js";
import { leakFree } from "../helpers/assert.js";
import { gradOfWeighted, maxAbsDiff, tinyVae } from "./helpers.js";

manualSeed(7);
const mlp = new Sequential(new Flatten(), new Linear(3 * 8 * 8, 16), new ReLU(), new Dropout(0.5), new Linear(16, 4));
mlp.eval();
const vae = tinyVae([3, 8, 8], 8);
after(() => {
  mlp.dispose();
  vae.dispose();
});

/** Gaussian noise of the given std on every apply: a randomized defense with a controllable effect. */
class NoiseDefense implements Defense {
  readonly name = "noise";
  readonly randomized = true;
  readonly gradient: GradientKind = "bpda-identity";
  constructor(readonly sigma: number) {}
  async apply(x: Tensor): Promise<Tensor> {
    return noGrad(() => tidy(() => x.add(randn(x.shape).mul(this.sigma)).clamp(0, 1)));
  }
  async attackView(x: Tensor): Promise<Tensor> {
    const y = await this.apply(x);
    const v = bpdaIdentity(x, y);
    y.dispose();
    return v;
  }
  describe() {
    return { sigma: this.sigma };
  }
}

/** Gradient of sum(logits * w) of a model's forward w.r.t. x. */
function modelGrad(model: DefendedModel, x: Tensor, w: Tensor): Promise<Tensor> {
  return gradOfWeighted(async (xi) => model.forward(xi), x, w);
}

describe("DefendedModel", () => {
  test(
    "adaptive view: gradients through a differentiable defense; gray-box: the bare classifier's",
    leakFree(async () => {
      const blur = new GaussianBlurDefense({ sigma: 1 });
      const adaptive = new DefendedModel(blur, mlp, { view: "adaptive" });
      const gray = new DefendedModel(blur, mlp, { view: "gray-box" });
      manualSeed(1);
      const x = rand([3, 3, 8, 8]);
      const w = randn([3, 4]);
      const ga = await modelGrad(adaptive, x, w);
      const gg = await modelGrad(gray, x, w);
      assert.ok(maxAbsDiff(ga, gg) > 1e-3, "the two views must give different gradients");
      // Adaptive = the gradient of classifier(blur(x)); gray-box = that of classifier(x).
      const composed = await gradOfWeighted(
        async (xi) => tidy(() => mlp.forward(gaussianBlur(xi, blur.sigma, blur.kernelSize, blur.padding))),
        x,
        w,
      );
      const bare = await gradOfWeighted(async (xi) => mlp.forward(xi), x, w);
      assert.ok(maxAbsDiff(ga, composed) < 1e-6);
      assert.ok(maxAbsDiff(gg, bare) < 1e-6);
      for (const t of [x, w, ga, gg, composed, bare]) t.dispose();
    }),
  );

  test(
    "adaptive view through JPEG (BPDA): the classifier's gradient taken at the JPEG image",
    leakFree(async () => {
      const jpeg = new JpegDefense({ quality: 10 });
      const model = new DefendedModel(jpeg, mlp);
      assert.equal(model.view, "adaptive");
      manualSeed(2);
      const x = rand([2, 3, 8, 8]);
      const w = randn([2, 4]);
      const g = await modelGrad(model, x, w);
      const purified = await jpeg.apply(x);
      const atPurified = await gradOfWeighted(async (xi) => mlp.forward(xi), purified, w);
      assert.ok(maxAbsDiff(g, atPurified) < 1e-6);
      for (const t of [x, w, g, purified, atPurified]) t.dispose();
    }),
  );

  test(
    "randomized comes from the defense in the adaptive view only; train/eval delegate to the classifier",
    leakFree(() => {
      const vd = new VaeDefense(vae);
      assert.equal(new DefendedModel(vd, mlp).randomized, true);
      assert.equal(new DefendedModel(vd, mlp, { view: "gray-box" }).randomized, false);
      assert.equal(new DefendedModel(new VaeDefense(vae, { deterministic: true }), mlp).randomized, false);
      const m = new DefendedModel(new NoDefense(), mlp);
      m.train(true);
      assert.equal(mlp.training, true);
      assert.equal(m.training, true);
      m.eval();
      assert.equal(mlp.training, false);
      assert.equal(m.training, false);
      assert.equal(m.name, "No defense (adaptive)");
      assert.throws(
        () => new DefendedModel(vd, mlp, { view: "white-box" as never }),
        /Expected one of "adaptive", "gray-box" for view but received "white-box"/,
      );
    }),
  );

  test(
    "forward works under an attack's grad mode and the view is differentiable end to end",
    leakFree(async () => {
      const m = new DefendedModel(new VaeDefense(vae), mlp);
      const x = rand([2, 3, 8, 8]);
      const xi = noGrad(() => x.detach()).requiresGrad_(true);
      const logits = await enableGradAsync(() => m.forward(xi));
      assert.deepEqual(logits.shape, [2, 4]);
      assert.equal(logits.requiresGrad, true);
      for (const t of [x, xi, logits]) t.dispose();
    }),
  );

  test(
    "predict classifies defense.apply(x) in eval mode without gradients, and restores the mode",
    leakFree(async () => {
      const blur = new GaussianBlurDefense({ sigma: 0.8 });
      const m = new DefendedModel(blur, mlp);
      manualSeed(3);
      const x = rand([6, 3, 8, 8]);
      mlp.train(true); // dropout on: predict must switch it off
      const p1 = await m.predict(x);
      const p2 = await m.predict(x);
      assert.equal(mlp.training, true, "the classifier's mode is restored");
      mlp.eval();
      const purified = await blur.apply(x);
      const expected = noGrad(() => tidy(() => mlp.forward(purified).argmax(1)));
      assert.deepEqual(p1.toArray(), expected.toArray());
      assert.deepEqual(p2.toArray(), expected.toArray());
      assert.equal(p1.requiresGrad, false);
      assert.equal(p1.dtype, "int64");
      for (const t of [x, p1, p2, purified, expected]) t.dispose();
    }),
  );

  test(
    "accuracy of a randomized defense is the mean and std over passes, never the best pass",
    leakFree(async () => {
      const clean = new DefendedModel(new NoDefense(), mlp);
      manualSeed(4);
      const x = rand([64, 3, 8, 8]);
      const labels = await clean.predict(x);
      const base = await clean.accuracy(x, labels, { passes: 5 });
      assert.deepEqual(base, { mean: 1, std: 0, passes: 1, perPass: [1] }, "a deterministic defense takes one pass");
      const noisy = new DefendedModel(new NoiseDefense(0.6), mlp);
      const r = await noisy.accuracy(x, labels, { passes: 6 });
      assert.equal(r.passes, 6);
      assert.equal(r.perPass.length, 6);
      const mean = r.perPass.reduce((a, b) => a + b, 0) / 6;
      const std = Math.sqrt(r.perPass.reduce((a, b) => a + (b - mean) ** 2, 0) / 5);
      assert.ok(Math.abs(r.mean - mean) < 1e-12);
      assert.ok(Math.abs(r.std - std) < 1e-12);
      assert.ok(r.std > 0, `passes should differ: ${r.perPass.join(", ")}`);
      assert.ok(r.mean < Math.max(...r.perPass), "the mean, not the best pass");
      assert.ok(r.mean < 1 && r.mean > 0);
      // Batching does not change a deterministic defense's accuracy.
      const blurred = new DefendedModel(new GaussianBlurDefense({ sigma: 1 }), mlp);
      const whole = await blurred.accuracy(x, labels);
      const batched = await blurred.accuracy(x, labels, { batchSize: 10 });
      assert.equal(batched.mean, whole.mean);
      const short = labels.narrow(0, 0, 3);
      await assert.rejects(clean.accuracy(x, short), ShapeError);
      for (const t of [x, labels, short]) t.dispose();
    }),
  );

  test(
    "failures injected inside the defense, the classifier or an attack step leave no tensor behind",
    leakFree(async () => {
      manualSeed(5);
      const x = rand([4, 3, 8, 8]);
      const labels = tidy(() => mlp.forward(x).argmax(1));
      // The defense fails on its third call, after awaiting and after making tensors.
      const failing = new FailingDefense(2);
      const m = new DefendedModel(failing, mlp);
      await assert.rejects(m.accuracy(x, labels, { passes: 5 }), /defense failure for the test/);
      failing.calls = 0;
      const xi = noGrad(() => x.detach()).requiresGrad_(true);
      (await enableGradAsync(() => m.forward(xi))).dispose();
      (await enableGradAsync(() => m.forward(xi))).dispose();
      await assert.rejects(
        enableGradAsync(() => m.forward(xi)),
        /defense failure for the test/,
      );
      // Attacks through the defended model: the failure comes in the middle of an EOT average or a step.
      for (const make of [
        (model: DefendedModel) => new FGSM(model, { eps: 0.1, eotSamples: 4 }),
        (model: DefendedModel) => new PGD(model, { eps: 0.1, steps: 5, eotSamples: 2 }),
        (model: DefendedModel) => new PGD(model, { eps: 0.1, steps: 2, restarts: 3 }),
      ]) {
        failing.calls = 0;
        mlp.train(true);
        await assert.rejects(make(m).generate(x, labels), /defense failure for the test/);
        assert.equal(mlp.training, true, "the classifier's mode is restored");
        mlp.eval();
      }
      // The classifier failing behind a working defense.
      const broken = new DefendedModel(new JpegDefense({ quality: 50 }), new FailingClassifier());
      await assert.rejects(new FGSM(broken, { eps: 0.1 }).generate(x, labels), /classifier failure for the test/);
      await assert.rejects(broken.accuracy(x, labels), /classifier failure for the test/);
      for (const t of [x, labels, xi]) t.dispose();
    }),
  );
});

/** A randomized defense that works `failAfter` times, then fails after awaiting and making tensors. */
class FailingDefense implements Defense {
  readonly name = "failing";
  readonly randomized = true;
  readonly gradient: GradientKind = "exact";
  calls = 0;
  constructor(readonly failAfter: number) {}
  async apply(x: Tensor): Promise<Tensor> {
    return noGrad(() => this.view(x));
  }
  async attackView(x: Tensor): Promise<Tensor> {
    await new Promise((resolve) => setTimeout(resolve, 0));
    return this.view(x);
  }
  private view(x: Tensor): Tensor {
    const y = x.mul(0.5).add(0.25);
    if (++this.calls > this.failAfter) throw new Error("defense failure for the test");
    return y;
  }
  describe(): Record<string, string> {
    return { defense: "failing" };
  }
}

/** A classifier that makes tensors and then fails. */
class FailingClassifier {
  training = false;
  train(on = true): void {
    this.training = on;
  }
  forward(x: Tensor): Tensor {
    x.flatten(1).sum(1);
    throw new Error("classifier failure for the test");
  }
}
