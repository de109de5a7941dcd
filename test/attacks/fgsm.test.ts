import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { noGrad, tidy } from "../../src/core/engine.js";
import { ArgumentError, ShapeError } from "../../src/core/errors.js";
import { tensor } from "../../src/core/tensor.js";
import * as F from "../../src/nn/functional.js";
import { FGSM } from "../../src/attacks/fgsm.js";
import { DEFAULT_RANDOMIZED_EOT_SAMPLES } from "../../src/attacks/base.js";
import { assertLinfBudget, LinearModel, NoisyModel, Recorder, take } from "./helpers.js";
import { leakFree } from "../helpers/assert.js";

// Two classes over four "pixels": d CE(y=0)/dx = p1 * (w1 - w0) = p1 * [-2, 3, 0, 3]. Pixel 2 has zero
// weights so its gradient is exactly 0 (equal non-zero weights would leave a rounding residue of either sign).
const W2 = [
  [1, -2, 0, 0],
  [-1, 1, 0, 3],
];

function close(actual: number[], expected: number[], tol = 1e-6): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) <= tol, `index ${i}: ${a} != ${expected[i]}`));
}

describe("FGSM", () => {
  it("computes clip(x + eps * sign(grad)) exactly on a linear model", async () => {
    const model = new LinearModel(W2, [0, 0]);
    const x = tensor(
      [
        [0.5, 0.5, 0.5, 0.5],
        [0.05, 0.97, 0.5, 0.2],
        [0.5, 0.5, 0.5, 0.5],
      ],
      [3, 1, 1, 4],
    );
    const y = tensor([0, 0, 1], [3], { dtype: "int64" });
    const adv = await new FGSM(model, { eps: 0.1 }).generate(x, y);
    // Label 0 moves along sign(w1 - w0) = [-1, 1, 0, 1], label 1 the other way; the zero-gradient pixel stays.
    close(take(adv), [0.4, 0.6, 0.5, 0.6, 0, 1, 0.5, 0.3, 0.6, 0.4, 0.5, 0.4]);
    x.dispose();
    y.dispose();
    model.dispose();
  });

  it("targeted: descends the loss toward the target", async () => {
    const model = new LinearModel(
      [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, -1],
      ],
      [0, 0, 0],
    );
    const x = tensor([0.5, 0.5, 0.5, 0.5], [1, 1, 1, 4]);
    const target = tensor([2], [1], { dtype: "int64" });
    const attack = new FGSM(model, { eps: 0.1 });
    const adv = await attack.generate(x, target, { targeted: true });
    // d(-CE(t=2))/dx = W^T (e_2 - p) = [-p0, -p1, 1 - p2, -(1 - p2)].
    close(adv.toArray(), [0.4, 0.4, 0.6, 0.4]);
    const [before, after] = noGrad(() =>
      tidy(() => [F.crossEntropy(model.forward(x), target).item(), F.crossEntropy(model.forward(adv), target).item()]),
    );
    assert.ok(after < before, `CE to the target rose from ${before} to ${after}`);
    const untargeted = await attack.generate(x, target);
    close(take(untargeted), [0.6, 0.6, 0.4, 0.6]);
    for (const t of [adv, x, target]) t.dispose();
    model.dispose();
  });

  it("keeps the budget, leaves x unchanged at eps 0, and never touches parameter gradients", async () => {
    const model = new LinearModel(W2, [0.1, -0.2]);
    const x = tensor([0.2, 0.9, 0.0, 1.0, 0.3, 0.4, 0.5, 0.6], [2, 1, 2, 2]);
    const y = tensor([1, 0], [2], { dtype: "int32" });
    const adv = await new FGSM(model, { eps: 0.25 }).generate(x, y);
    assertLinfBudget(adv, x, 0.25);
    const same = await new FGSM(model, { eps: 0 }).generate(x, y);
    close(take(same), x.toArray(), 0);
    assert.equal(model.fc.weight.grad, undefined);
    assert.equal(model.fc.bias!.grad, undefined);
    for (const t of [adv, x, y]) t.dispose();
    model.dispose();
  });

  it("works with an async forward and gives the same result as the sync one", async () => {
    const model = new LinearModel(W2, [0, 0]);
    const x = tensor([0.3, 0.6, 0.1, 0.8], [1, 1, 1, 4]);
    const y = tensor([0], [1], { dtype: "int64" });
    const sync = await new FGSM(model, { eps: 0.05 }).generate(x, y);
    const wrapped = new Recorder(model, { async: true });
    const async = await new FGSM(wrapped, { eps: 0.05 }).generate(x, y);
    close(take(async), take(sync), 0);
    assert.deepEqual(wrapped.gradModes, [true], "the forward must run with grad on, even after an await");
    x.dispose();
    y.dispose();
    model.dispose();
  });

  it("puts the model in eval mode and restores train mode, also when the attack throws", async () => {
    const model = new LinearModel(W2, [0, 0]);
    const x = tensor([0.3, 0.6, 0.1, 0.8], [1, 1, 1, 4]);
    const y = tensor([0], [1], { dtype: "int64" });
    model.train(true);
    const ok = new Recorder(model);
    take(await new FGSM(ok, { eps: 0.1 }).generate(x, y));
    assert.deepEqual(ok.modes, [false]);
    assert.equal(model.training, true);

    for (const async of [false, true]) {
      const failing = new Recorder(model, { failAfter: 0, async });
      await leakFree(async () => {
        await assert.rejects(new FGSM(failing, { eps: 0.1 }).generate(x, y), /model failure for the test/);
      })();
      assert.equal(model.training, true, `train mode not restored (async ${async})`);
    }
    model.train(false);
    const failing = new Recorder(model, { failAfter: 0 });
    await assert.rejects(new FGSM(failing, { eps: 0.1 }).generate(x, y), /model failure for the test/);
    assert.equal(model.training, false, "eval mode not restored");
    x.dispose();
    y.dispose();
    model.dispose();
  });

  it("leaks no tensors (sync and async models, int32 labels)", async () => {
    const model = new LinearModel(W2, [0, 0]);
    const x = tensor([0.3, 0.6, 0.1, 0.8, 0.5, 0.5, 0.5, 0.5], [2, 1, 1, 4]);
    const y = tensor([0, 1], [2], { dtype: "int32" });
    for (const m of [model, new Recorder(model, { async: true })]) {
      const attack = new FGSM(m, { eps: 0.1, eotSamples: 3 });
      await leakFree(async () => {
        (await attack.generate(x, y)).dispose();
        (await attack.generate(x, y, { targeted: true })).dispose();
      })();
    }
    x.dispose();
    y.dispose();
    model.dispose();
  });

  it("validates its options and inputs with clear messages", async () => {
    const model = new LinearModel(W2, [0, 0]);
    assert.throws(() => new FGSM(model, { eps: 1.5 }), {
      name: "ArgumentError",
      message: "Expected number between 0 and 1 for eps but received 1.5",
    });
    assert.throws(() => new FGSM(model, { eps: -0.1 }), /Expected number between 0 and 1 for eps but received -0.1/);
    assert.throws(() => new FGSM(model, {} as never), /for eps but received undefined/);
    assert.throws(
      () => new FGSM(model, { eps: 0.1, eotSamples: 0 }),
      /Expected integer between 1 and 10000 for eotSamples but received 0/,
    );
    assert.throws(() => new FGSM(model, { eps: 0.1, steps: 3 } as never), /Unknown option "steps" for FGSM/);
    assert.throws(() => new FGSM({} as never, { eps: 0.1 }), ArgumentError);

    const attack = new FGSM(model, { eps: 0.1 });
    await leakFree(async () => {
      const x = tensor([0.3, 0.6, 0.1, 0.8], [1, 1, 1, 4]);
      const bad = tensor([0.3, 1.6, 0.1, 0.8], [1, 1, 1, 4]);
      const y = tensor([0], [1], { dtype: "int64" });
      const y2 = tensor([0, 1], [2], { dtype: "int64" });
      const y7 = tensor([7], [1], { dtype: "int64" });
      const yf = tensor([0], [1]);
      await assert.rejects(attack.generate(x, y2), ShapeError);
      await assert.rejects(attack.generate(bad, y), /expected images with values in \[0, 1\]/);
      await assert.rejects(attack.generate(x, y7), /expected labels between 0 and 1 \(the model has 2 classes\)/);
      await assert.rejects(attack.generate(x, yf), /Expected integer class indices for labels of FGSM/);
      await assert.rejects(attack.generate(x, y, { targeted: "yes" as never }), /Expected boolean for targeted/);
      for (const t of [x, bad, y, y2, y7, yf]) t.dispose();
    })();
    model.dispose();
  });

  it("describes its parameters, with EOT samples defaulting to more on a randomized model", () => {
    const model = new LinearModel(W2, [0, 0]);
    assert.deepEqual(new FGSM(model, { eps: 0.1 }).describe(), {
      attack: "FGSM",
      norm: "Linf",
      eps: 0.1,
      steps: 1,
      eotSamples: 1,
    });
    const noisy = new NoisyModel(model, 0.1);
    assert.equal(new FGSM(noisy, { eps: 0.1 }).describe().eotSamples, DEFAULT_RANDOMIZED_EOT_SAMPLES);
    assert.equal(new FGSM(noisy, { eps: 0.1, eotSamples: 4 }).describe().eotSamples, 4);
    assert.equal(new FGSM(model, { eps: 0.1 }).name, "FGSM");
    model.dispose();
  });
});
