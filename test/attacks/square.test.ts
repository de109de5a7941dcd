import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, tidy } from "../../src/core/engine.js";
import { SquareAttack, squareFraction } from "../../src/attacks/square.js";
import type { Sequential } from "../../src/nn/layers.js";
import {
  accuracy,
  assertLinfBudget,
  maxAbsDiff,
  Recorder,
  synthetic,
  take,
  trainedMlp,
  type Synthetic,
} from "./helpers.js";
import { leakFree } from "../helpers/assert.js";

describe("Square Attack", () => {
  let data: Synthetic;
  let model: Sequential;
  before(() => {
    data = synthetic(300, 12);
    manualSeed(13);
    model = trainedMlp(data);
  });
  after(() => {
    data.dispose();
    model.dispose();
  });

  it("lowers the accuracy of an undefended model within its budget, calling forward only without grad", async () => {
    const eps = 0.06;
    const clean = await accuracy(model, data.x, data.y);
    assert.ok(clean > 0.95, `clean accuracy ${clean}`);
    const rec = new Recorder(model);
    const queries = 200;
    const adv = await new SquareAttack(rec, { eps, queries, seed: 1 }).generate(data.x, data.y);
    assertLinfBudget(adv, data.x, eps);
    const robust = await accuracy(model, adv, data.y);
    assert.ok(robust < clean / 2, `Square left accuracy at ${robust} (clean ${clean})`);
    assert.ok(
      rec.gradModes.every((g) => g === false),
      "Square must call forward under no-grad only",
    );
    assert.ok(rec.calls <= queries + 1, `${rec.calls} forward calls for a budget of ${queries} (+1 clean)`);
    assert.ok(
      rec.modes.every((m) => m === false),
      "the model must be in eval mode while attacked",
    );
    adv.dispose();
  });

  it("is reproducible with a seed, and with manualSeed when no seed is given", async () => {
    const x = data.x.narrow(0, 0, 20);
    const y = data.y.narrow(0, 0, 20);
    const run = (seed?: number) =>
      new SquareAttack(
        model,
        seed === undefined ? { eps: 0.1, queries: 30 } : { eps: 0.1, queries: 30, seed },
      ).generate(x, y);
    const a = await run(5);
    const b = await run(5);
    assert.equal(maxAbsDiff(a, b), 0);
    manualSeed(4);
    const c = await run();
    manualSeed(4);
    const d = await run();
    assert.equal(maxAbsDiff(c, d), 0);
    for (const t of [x, y, a, b, c, d]) t.dispose();
  });

  it("targeted: moves images toward the target", async () => {
    const x = data.x.narrow(0, 0, 60);
    const target = tidy(() => data.y.narrow(0, 0, 60).add(1).remainder(4));
    const before = await accuracy(model, x, target);
    const adv = await new SquareAttack(model, { eps: 0.15, queries: 300, seed: 2 }).generate(x, target, {
      targeted: true,
    });
    assertLinfBudget(adv, x, 0.15);
    const hit = await accuracy(model, adv, target);
    assert.ok(hit > before + 0.3, `target reached on ${hit} (before ${before})`);
    for (const t of [x, target, adv]) t.dispose();
  });

  it("returns x unchanged at eps 0 and for images already misclassified", async () => {
    const x = data.x.narrow(0, 0, 10);
    const wrong = tidy(() => data.y.narrow(0, 0, 10).add(1).remainder(4));
    const y = data.y.narrow(0, 0, 10);
    const same = await new SquareAttack(model, { eps: 0, seed: 1 }).generate(x, y);
    assert.equal(maxAbsDiff(same, x), 0);
    // With wrong labels the model already "misclassifies" every image: nothing to do.
    const rec = new Recorder(model);
    const untouched = await new SquareAttack(rec, { eps: 0.1, queries: 50, seed: 1 }).generate(x, wrong);
    assert.equal(maxAbsDiff(untouched, x), 0);
    assert.equal(rec.calls, 1);
    for (const t of [x, y, wrong, same, untouched]) t.dispose();
  });

  it("follows the paper's schedule of square sizes", () => {
    const p = 0.05;
    assert.equal(squareFraction(p, 0, 10000), p);
    assert.equal(squareFraction(p, 10, 10000), p);
    assert.equal(squareFraction(p, 11, 10000), p / 2);
    assert.equal(squareFraction(p, 50, 10000), p / 2);
    assert.equal(squareFraction(p, 51, 10000), p / 4);
    assert.equal(squareFraction(p, 500, 10000), p / 8);
    assert.equal(squareFraction(p, 1000, 10000), p / 16);
    assert.equal(squareFraction(p, 2000, 10000), p / 32);
    assert.equal(squareFraction(p, 4000, 10000), p / 64);
    assert.equal(squareFraction(p, 6000, 10000), p / 128);
    assert.equal(squareFraction(p, 8000, 10000), p / 256);
    assert.equal(squareFraction(p, 9999, 10000), p / 512);
    // Rescaled to a budget of 1000 queries: iteration 100 is 1000 of 10000.
    assert.equal(squareFraction(p, 100, 1000), p / 16);
  });

  it("restores train mode on error and leaks no tensors", async () => {
    model.train(true);
    const failing = new Recorder(model, { failAfter: 5, async: true });
    await leakFree(async () => {
      await assert.rejects(
        new SquareAttack(failing, { eps: 0.1, queries: 50 }).generate(data.x, data.y),
        /model failure/,
      );
    })();
    assert.equal(model.training, true);
    model.eval();
    await leakFree(async () => {
      const attack = new SquareAttack(new Recorder(model, { async: true }), {
        eps: 0.1,
        queries: 20,
        eotSamples: 2,
        seed: 3,
      });
      take(await attack.generate(data.x, data.y));
      take(await attack.generate(data.x, data.y, { targeted: true }));
    })();
  });

  it("validates options and inputs, and describes itself", async () => {
    assert.throws(
      () => new SquareAttack(model, { eps: 0.1, queries: 0 }),
      /Expected integer between 1 and 1000000 for queries but received 0/,
    );
    assert.throws(
      () => new SquareAttack(model, { eps: 0.1, pInit: 0 }),
      /Expected number greater than 0 and at most 1 for pInit but received 0/,
    );
    assert.throws(
      () => new SquareAttack(model, { eps: 1.1 }),
      /Expected number between 0 and 1 for eps but received 1.1/,
    );
    assert.throws(
      () => new SquareAttack(model, { eps: 0.1, seed: -1 }),
      /Expected integer of at least 0 for seed but received -1/,
    );
    const flat = data.x.flatten(1);
    await assert.rejects(
      new SquareAttack(model, { eps: 0.1 }).generate(flat, data.y),
      /expected images \[N, C, H, W\]/,
    );
    flat.dispose();
    const a = new SquareAttack(model, { eps: 0.1 });
    assert.equal(a.name, "Square(1000)");
    assert.deepEqual(a.describe(), {
      attack: "Square",
      norm: "Linf",
      eps: 0.1,
      queries: 1000,
      pInit: 0.05,
      eotSamples: 1,
    });
  });
});
