import { test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, tidy } from "../../src/core/engine.js";
import { tensor } from "../../src/core/tensor.js";
import { attackObjective, lossAndGradient } from "../../src/attacks/gradient.js";
import { PGD } from "../../src/attacks/pgd.js";
import { LinearModel, accuracy, assertLinfBudget, synthetic, trainedMlp } from "./helpers.js";
import { leakFree } from "../helpers/assert.js";

/** Runs `fn` once and fails if a tensor outlived it. */
const assertNoLeak = (fn: () => Promise<void> | void): Promise<void> => leakFree(fn)();

test("the margin objective is the largest other logit minus the label's (untargeted), and its negation toward a target", () => {
  const logits = tensor([
    [1, 3, 2],
    [5, -1, 0],
  ]);
  const untargeted = tidy(() =>
    attackObjective(logits, tensor([1, 0], [2], { dtype: "int64" }), false, "margin").toArray(),
  );
  assert.deepEqual(untargeted, [2 - 3, 0 - 5]);
  const wrong = tidy(() => attackObjective(logits, tensor([0, 2], [2], { dtype: "int64" }), false, "margin").toArray());
  assert.deepEqual(wrong, [3 - 1, 5 - 0]);
  const targeted = tidy(() =>
    attackObjective(logits, tensor([2, 1], [2], { dtype: "int64" }), true, "margin").toArray(),
  );
  assert.deepEqual(targeted, [2 - 3, -1 - 5]);
  logits.dispose();
});

test("the margin gradient of a linear model is the difference of two weight rows", async () => {
  // z = W x: for x = [1, 0] the logits are [2, 1, 0]; label 1, so the margin is z_0 - z_1.
  const model = new LinearModel(
    [
      [2, 0.5],
      [1, -1],
      [0, 3],
    ],
    [0, 0, 0],
  );
  const x = tensor([1, 0], [1, 1, 1, 2]);
  const y = tensor([1], [1], { dtype: "int64" });
  const { gradient, loss } = await lossAndGradient(model, x, y, { loss: "margin" });
  assert.deepEqual(gradient.toArray(), [2 - 1, 0.5 - -1]);
  assert.deepEqual(loss.toArray(), [1]);
  for (const t of [gradient, loss, x, y]) t.dispose();
  model.dispose();
});

test("PGD with the margin loss fools a trained model within its budget, and names and describes its loss", async () => {
  const data = synthetic(64, 3);
  const model = trainedMlp(data);
  assert.ok((await accuracy(model, data.x, data.y)) > 0.95);
  manualSeed(4);
  const trace: number[] = [];
  const pgd = new PGD(model, {
    eps: 0.1,
    steps: 10,
    restarts: 2,
    loss: "margin",
    onStep: (i) => (i.restart === 0 ? trace.push(i.loss) : undefined),
  });
  assert.equal(pgd.name, "PGD-margin(10)x2");
  assert.equal(pgd.describe().loss, "margin");
  assert.equal(new PGD(model, { eps: 0.1 }).describe().loss, undefined, "the default loss keeps reports as they were");
  await assertNoLeak(async () => {
    const adv = await pgd.generate(data.x, data.y);
    assertLinfBudget(adv, data.x, 0.1);
    assert.ok((await accuracy(model, adv, data.y)) < 0.2);
    adv.dispose();
  });
  assert.equal(trace.length, 10, "one objective per step of the first restart");
  assert.ok(trace[trace.length - 1] > trace[0], "the margin rises along the steps");
  assert.throws(
    () => new PGD(model, { eps: 0.1, loss: "hinge" as "ce" }),
    /Expected one of "ce", "margin" for loss but received "hinge"/,
  );
  assert.throws(
    () => new PGD(model, { eps: 0.1, onStep: 3 as never }),
    /Expected a function for onStep but received 3/,
  );
  data.dispose();
  model.dispose();
});

test("an error thrown by onStep ends the attack without leaking tensors", async () => {
  const data = synthetic(8, 5);
  const model = trainedMlp(data, 20);
  await assertNoLeak(async () => {
    const pgd = new PGD(model, {
      eps: 0.1,
      steps: 3,
      onStep: () => {
        throw new Error("stop");
      },
    });
    await assert.rejects(pgd.generate(data.x, data.y), /stop/);
  });
  data.dispose();
  model.dispose();
});
