import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, tidy } from "../../src/core/engine.js";
import { tensor } from "../../src/core/tensor.js";
import { FGSM } from "../../src/attacks/fgsm.js";
import { IFGSM } from "../../src/attacks/ifgsm.js";
import type { Sequential } from "../../src/nn/layers.js";
import {
  accuracy,
  assertLinfBudget,
  LinearModel,
  Recorder,
  synthetic,
  take,
  trainedMlp,
  type Synthetic,
} from "./helpers.js";
import { leakFree } from "../helpers/assert.js";

describe("I-FGSM", () => {
  let data: Synthetic;
  let model: Sequential;
  before(() => {
    data = synthetic(400, 1);
    manualSeed(2);
    model = trainedMlp(data);
  });
  after(() => {
    data.dispose();
    model.dispose();
  });

  it("stays in the eps ball and in [0, 1], and is at least as strong as FGSM", async () => {
    const clean = await accuracy(model, data.x, data.y);
    assert.ok(clean > 0.95, `the small model should learn the synthetic task (accuracy ${clean})`);
    const eps = 0.05;
    const fgsm = await new FGSM(model, { eps }).generate(data.x, data.y);
    const ifgsm = await new IFGSM(model, { eps }).generate(data.x, data.y);
    assertLinfBudget(ifgsm, data.x, eps);
    const accFgsm = await accuracy(model, fgsm, data.y);
    const accIfgsm = await accuracy(model, ifgsm, data.y);
    assert.ok(accFgsm < clean, `FGSM should hurt (clean ${clean}, FGSM ${accFgsm})`);
    assert.ok(accIfgsm <= accFgsm, `I-FGSM (${accIfgsm}) should be at least as strong as FGSM (${accFgsm})`);
    fgsm.dispose();
    ifgsm.dispose();
  });

  it("keeps the budget with a large custom step size (projection is exact)", async () => {
    const eps = 0.05;
    const adv = await new IFGSM(model, { eps, steps: 5, stepSize: 0.2 }).generate(data.x, data.y);
    assertLinfBudget(adv, data.x, eps);
    adv.dispose();
  });

  it("takes M steps of eps/M: on a linear model it ends at x + eps * sign(w1 - w0)", async () => {
    const linear = new LinearModel(
      [
        [1, -2, 0, 0],
        [-1, 1, 0, 3],
      ],
      [0, 0],
    );
    const rec = new Recorder(linear);
    const x = tensor([0.5, 0.5, 0.5, 0.5], [1, 1, 1, 4]);
    const y = tensor([0], [1], { dtype: "int64" });
    const attack = new IFGSM(rec, { eps: 0.1, steps: 4 });
    const adv = take(await attack.generate(x, y));
    assert.equal(rec.calls, 4);
    [0.4, 0.6, 0.5, 0.6].forEach((e, i) => assert.ok(Math.abs(adv[i] - e) < 1e-6, `index ${i}: ${adv[i]}`));
    // Targeted toward class 1 is the same direction here.
    const t1 = tensor([1], [1], { dtype: "int64" });
    const targeted = take(await attack.generate(x, t1, { targeted: true }));
    t1.dispose();
    [0.4, 0.6, 0.5, 0.6].forEach((e, i) => assert.ok(Math.abs(targeted[i] - e) < 1e-6, `index ${i}: ${targeted[i]}`));
    x.dispose();
    y.dispose();
    linear.dispose();
  });

  it("targeted: moves most images to the target class", async () => {
    const x = data.x.narrow(0, 0, 100);
    const y = data.y.narrow(0, 0, 100);
    const target = tidy(() => y.add(1).remainder(4));
    const adv = await new IFGSM(model, { eps: 0.2, steps: 20 }).generate(x, target, { targeted: true });
    const hit = await accuracy(model, adv, target);
    assert.ok(hit > 0.8, `targeted I-FGSM reached the target on only ${hit} of the images`);
    assertLinfBudget(adv, x, 0.2);
    for (const t of [x, y, target, adv]) t.dispose();
  });

  it("restores train mode on error, and leaks no tensors", async () => {
    model.train(true);
    const failing = new Recorder(model, { failAfter: 3, async: true });
    await leakFree(async () => {
      await assert.rejects(new IFGSM(failing, { eps: 0.1 }).generate(data.x, data.y), /model failure/);
    })();
    assert.equal(model.training, true);
    assert.deepEqual(failing.modes, [false, false, false, false]);
    model.eval();
    await leakFree(async () => {
      (await new IFGSM(model, { eps: 0.1, steps: 3, eotSamples: 2 }).generate(data.x, data.y)).dispose();
    })();
  });

  it("validates options and describes itself", () => {
    assert.throws(
      () => new IFGSM(model, { eps: 0.1, steps: 0 }),
      /Expected integer between 1 and 100000 for steps but received 0/,
    );
    assert.throws(
      () => new IFGSM(model, { eps: 0.1, steps: 2.5 }),
      /Expected integer between 1 and 100000 for steps but received 2.5/,
    );
    assert.throws(() => new IFGSM(model, { eps: 2 }), /Expected number between 0 and 1 for eps but received 2/);
    assert.throws(() => new IFGSM(model, { eps: 0.1, stepSize: -1 }), /for stepSize but received -1/);
    const a = new IFGSM(model, { eps: 0.1 });
    assert.equal(a.name, "I-FGSM(10)");
    const d = a.describe();
    assert.equal(d.steps, 10);
    assert.ok(Math.abs((d.stepSize as number) - 0.01) < 1e-12);
    assert.equal(d.eotSamples, 1);
    assert.equal(d.eps, 0.1);
  });
});
