import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { tensor } from "../../src/core/tensor.js";
import * as F from "../../src/nn/functional.js";
import { PGD } from "../../src/attacks/pgd.js";
import type { Sequential } from "../../src/nn/layers.js";
import {
  accuracy,
  assertL2Budget,
  assertLinfBudget,
  l2Norms,
  LinearModel,
  Recorder,
  synthetic,
  take,
  trainedMlp,
  type Synthetic,
} from "./helpers.js";
import { leakFree } from "../helpers/assert.js";

// Binary linear classifier: the cross-entropy of class 0 grows along w = w1 - w0 = [-2, 3, 0.5, 1].
const W = [
  [1, -2, 0, 0.5],
  [-1, 1, 0.5, 1.5],
];
const w = [-2, 3, 0.5, 1];
const wNorm = Math.hypot(...w);

function closeTo(actual: number[], expected: number[], tol: number, what: string): void {
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) <= tol, `${what}, index ${i}: ${a} != ${expected[i]}`));
}

describe("PGD", () => {
  let data: Synthetic;
  let model: Sequential;
  before(() => {
    data = synthetic(300, 5);
    manualSeed(6);
    model = trainedMlp(data);
  });
  after(() => {
    data.dispose();
    model.dispose();
  });

  it("L-inf: reaches the analytic worst case x + eps * sign(w) of a binary linear model", async () => {
    const linear = new LinearModel(W, [0, 0]);
    const x0 = [0.5, 0.4, 0.6, 0.45];
    const x = tensor([...x0, ...x0], [2, 1, 1, 4]);
    const y = tensor([0, 1], [2], { dtype: "int64" });
    manualSeed(1);
    const adv = take(await new PGD(linear, { eps: 0.1 }).generate(x, y));
    const toward1 = x0.map((v, i) => v + 0.1 * Math.sign(w[i]));
    const toward0 = x0.map((v, i) => v - 0.1 * Math.sign(w[i]));
    closeTo(adv, [...toward1, ...toward0], 1e-6, "untargeted");
    const t = tensor([1, 0], [2], { dtype: "int64" });
    const targeted = take(await new PGD(linear, { eps: 0.1, restarts: 2 }).generate(x, t, { targeted: true }));
    closeTo(targeted, [...toward1, ...toward0], 1e-6, "targeted");
    for (const z of [x, y, t]) z.dispose();
    linear.dispose();
  });

  it("L2: reaches the analytic worst case x + eps * w / ||w|| of a binary linear model", async () => {
    const linear = new LinearModel(W, [0, 0]);
    const x0 = [0.5, 0.4, 0.6, 0.45];
    const x = tensor(x0, [1, 1, 1, 4]);
    const y = tensor([0], [1], { dtype: "int64" });
    const eps = 0.3;
    const expected = x0.map((v, i) => v + (eps * w[i]) / wNorm);
    const fromX = take(await new PGD(linear, { eps, norm: "L2", randomStart: false }).generate(x, y));
    closeTo(fromX, expected, 1e-5, "from x");
    manualSeed(2);
    // From a random start the orthogonal part shrinks by eps / (eps + stepSize) per step on the sphere.
    const random = take(await new PGD(linear, { eps, norm: "L2", steps: 60, stepSize: eps / 4 }).generate(x, y));
    closeTo(random, expected, 1e-4, "from a random start");
    const worst = noGrad(() => tidy(() => F.crossEntropy(linear.forward(tensor(expected, [1, 1, 1, 4])), y).item()));
    const reached = noGrad(() => tidy(() => F.crossEntropy(linear.forward(tensor(random, [1, 1, 1, 4])), y).item()));
    assert.ok(reached >= worst - 1e-4, `loss ${reached} is below the analytic worst case ${worst}`);
    x.dispose();
    y.dispose();
    linear.dispose();
  });

  it("L-inf with restarts: stays in the eps ball and [0, 1], fools the model", async () => {
    const eps = 0.1;
    const clean = await accuracy(model, data.x, data.y);
    manualSeed(7);
    const adv = await new PGD(model, { eps, steps: 10, restarts: 3 }).generate(data.x, data.y);
    assertLinfBudget(adv, data.x, eps);
    const robust = await accuracy(model, adv, data.y);
    assert.ok(robust < clean / 2, `PGD left accuracy at ${robust} (clean ${clean})`);
    adv.dispose();
  });

  it("L2 with restarts: every image stays in its eps ball and in [0, 1]", async () => {
    const eps = 0.8;
    manualSeed(8);
    const adv = await new PGD(model, { eps, norm: "L2", steps: 10, restarts: 3 }).generate(data.x, data.y);
    assertL2Budget(adv, data.x, eps);
    const norms = l2Norms(adv, data.x);
    assert.ok(Math.max(...norms) > 0.9 * eps, "L2 PGD should use its budget");
    const robust = await accuracy(model, adv, data.y);
    assert.ok(robust < 0.9, `L2 PGD left accuracy at ${robust}`);
    adv.dispose();
  });

  it("random starts are in the ball: one step of size 0 returns the random start", async () => {
    for (const norm of ["Linf", "L2"] as const) {
      manualSeed(9);
      const adv = await new PGD(model, { eps: 0.2, norm, steps: 1, stepSize: 0 }).generate(data.x, data.y);
      if (norm === "Linf") assertLinfBudget(adv, data.x, 0.2);
      else assertL2Budget(adv, data.x, 0.2);
      assert.ok(Math.max(...l2Norms(adv, data.x)) > 0, "the start should be random, not x");
      adv.dispose();
    }
  });

  it("restarts keep each image's best: never weaker than the first restart alone", async () => {
    const attack = (restarts: number) => new PGD(model, { eps: 0.05, steps: 2, restarts });
    manualSeed(21);
    const single = await attack(1).generate(data.x, data.y);
    manualSeed(21); // the first restart draws the same random start
    const several = await attack(4).generate(data.x, data.y);
    const a1 = await accuracy(model, single, data.y);
    const a4 = await accuracy(model, several, data.y);
    assert.ok(a4 <= a1, `4 restarts (${a4}) should be at least as strong as 1 (${a1})`);
    assertLinfBudget(several, data.x, 0.05);
    single.dispose();
    several.dispose();
  });

  it("targeted: reaches the target on most images", async () => {
    const x = data.x.narrow(0, 0, 100);
    const target = tidy(() => data.y.narrow(0, 0, 100).add(2).remainder(4));
    manualSeed(10);
    const adv = await new PGD(model, { eps: 0.2, steps: 20 }).generate(x, target, { targeted: true });
    const hit = await accuracy(model, adv, target);
    assert.ok(hit > 0.8, `targeted PGD hit the target on only ${hit}`);
    for (const t of [x, target, adv]) t.dispose();
  });

  it("restores train mode on error and leaks no tensors", async () => {
    model.train(true);
    for (const restarts of [1, 3]) {
      // With restarts, the 6th call is the evaluation that picks among restarts.
      const failing = new Recorder(model, { failAfter: restarts === 1 ? 3 : 5, async: true });
      await leakFree(async () => {
        await assert.rejects(
          new PGD(failing, { eps: 0.1, steps: 5, restarts }).generate(data.x, data.y),
          /model failure for the test/,
        );
      })();
      assert.equal(model.training, true);
      assert.ok(failing.modes.every((m) => m === false));
    }
    model.eval();
    await leakFree(async () => {
      for (const norm of ["Linf", "L2"] as const) {
        const attack = new PGD(new Recorder(model, { async: true }), {
          eps: 0.1,
          norm,
          steps: 3,
          restarts: 2,
          eotSamples: 2,
        });
        (await attack.generate(data.x, data.y)).dispose();
        (await attack.generate(data.x, data.y, { targeted: true })).dispose();
      }
    })();
  });

  it("validates options and describes itself", () => {
    assert.throws(
      () => new PGD(model, { eps: 0.1, norm: "L1" as never }),
      /Expected one of "Linf", "L2" for norm but received "L1"/,
    );
    assert.throws(() => new PGD(model, { eps: 1.2 }), /Expected number between 0 and 1 for eps but received 1.2/);
    assert.throws(
      () => new PGD(model, { eps: -1, norm: "L2" }),
      /Expected number of at least 0 for eps but received -1/,
    );
    assert.throws(
      () => new PGD(model, { eps: 0.1, steps: 0 }),
      /Expected integer between 1 and 100000 for steps but received 0/,
    );
    assert.throws(
      () => new PGD(model, { eps: 0.1, restarts: 0 }),
      /Expected integer between 1 and 1000 for restarts but received 0/,
    );
    assert.throws(() => new PGD(model, { eps: 0.1, restarts: 2, randomStart: false }), /needs randomStart = true/);
    const l2 = new PGD(model, { eps: 2, norm: "L2" });
    assert.equal(l2.eps, 2, "an L2 budget may exceed 1");
    const a = new PGD(model, { eps: 0.3, restarts: 5 });
    assert.equal(a.name, "PGD(40)x5");
    assert.deepEqual(a.describe(), {
      attack: "PGD",
      norm: "Linf",
      eps: 0.3,
      steps: 40,
      stepSize: (2.5 * 0.3) / 40,
      restarts: 5,
      randomStart: true,
      eotSamples: 1,
    });
    assert.equal(l2.name, "PGD-L2(40)");
  });
});
