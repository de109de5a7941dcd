import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { CheckpointError } from "../../src/core/errors.js";
import type { Tensor } from "../../src/core/tensor.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { Mlp } from "../../src/models/mlp.js";
import { ConvVae } from "../../src/models/vae.js";
import {
  parseTrainingAttack,
  rampedEpsilon,
  trainPurifier,
  type TrainPurifierOptions,
} from "../../src/train/purifier.js";
import type { ImageDataset } from "../../src/data/index.js";
import { synthetic, trainedMlp } from "../attacks/helpers.js";

test("training attack specs: FGSM with a random start and PGD-k, anything else refused with its name", () => {
  assert.deepEqual(parseTrainingAttack("fgsm-rs"), { kind: "fgsm-rs", alpha: 1.25 });
  assert.deepEqual(parseTrainingAttack("fgsm-rs:alpha=1"), { kind: "fgsm-rs", alpha: 1 });
  assert.deepEqual(parseTrainingAttack("pgd:steps=5"), { kind: "pgd", steps: 5, alpha: 0.5 });
  assert.deepEqual(parseTrainingAttack("PGD"), { kind: "pgd", steps: 7, alpha: 2.5 / 7 });
  assert.throws(() => parseTrainingAttack("square"), /Unsupported training attack "square" in attack spec "square"/);
  assert.throws(
    () => parseTrainingAttack("pgd:restarts=2"),
    /Unknown parameter "restarts=2" in attack spec "pgd:restarts=2"/,
  );
  assert.throws(() => parseTrainingAttack("pgd:steps=0"), /Expected integer of at least 1 for steps but received 0/);
});

test("eps ramps linearly over the ramp epochs, then stays at its final value", () => {
  assert.equal(rampedEpsilon(0.3, 1, { epoch: 0, fraction: 0 }), 0);
  assert.ok(Math.abs(rampedEpsilon(0.3, 1, { epoch: 0, fraction: 0.5 }) - 0.15) < 1e-12);
  assert.equal(rampedEpsilon(0.3, 2, { epoch: 3, fraction: 0.2 }), 0.3);
  assert.equal(rampedEpsilon(0.3, 0, { epoch: 0, fraction: 0 }), 0.3);
});

function dataset(x: Tensor, y: Tensor): ImageDataset {
  return { images: x, labels: y, classNames: ["a", "b", "c", "d"], name: "synthetic", source: "test" };
}

const smallVae = () => new ConvVae({ inputShape: [1, 8, 8], encoder: [{ channels: 4, pool: true }], latentDim: 8 });

function copyState(m: { stateDict(): Map<string, Tensor> }): Map<string, number[]> {
  return new Map([...m.stateDict()].map(([k, t]) => [k, t.toArray()]));
}

test("a purifier trains against adaptive attacks in front of a classifier whose weights never change, and resumes exactly", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-purifier-train-"));
  const data = synthetic(48, 7);
  const val = synthetic(16, 8);
  const clf = trainedMlp(data, 60);
  // The helper's model is a Sequential, not a registered classifier; training only needs forward and parameters.
  const classifier = Object.assign(clf, { inputShape: [1, 8, 8] as const, numClasses: 4 }) as unknown as Mlp;
  const before = copyState(classifier);
  const requires = classifier.parameters().map((p) => p.requiresGrad);
  const lines: string[] = [];
  const base = (checkpoint: string): TrainPurifierOptions => ({
    classifier,
    makeModel: smallVae,
    train: dataset(data.x, data.y),
    validation: dataset(val.x, val.y),
    epochs: 2,
    batchSize: 16,
    lr: 1e-3,
    seed: 3,
    checkpoint,
    quiet: true,
    attack: { kind: "pgd", steps: 2, alpha: 0.6 },
    eps: 0.1,
    rampEpochs: 1,
    eot: 2,
    validationAttackSamples: 8,
    validationAttackSteps: 2,
    about: { classifierSha256: "test" },
    log: (l) => lines.push(l),
  });
  try {
    const whole = join(dir, "whole.safetensors");
    const cut = join(dir, "cut.safetensors");
    const r = await trainPurifier({
      ...base(whole),
      // When epoch 2's line is logged, the file still holds epoch 1's checkpoint: a run killed there.
      log: (l) => {
        lines.push(l);
        if (/epoch 2\/2:/.test(l)) copyFileSync(whole, cut);
      },
    });
    assert.equal(r.classifierUnchanged, true);
    assert.equal(r.history.length, 2);
    for (const h of r.history) {
      assert.ok(h.validation!.cleanAcc >= 0 && h.validation!.cleanAcc <= 1);
      assert.ok("pgd2Acc" in h.validation!);
      assert.ok(h.train!.advAcc >= 0 && h.train!.advAcc <= 1);
    }
    assert.ok(r.history[0].train!.eps < 0.09, "eps ramps up during the first epoch");
    assert.ok(Math.abs(r.history[1].train!.eps - 0.1) < 1e-9, "and stays at its final value afterwards");
    assert.deepEqual(copyState(classifier), before, "the classifier's weights are unchanged");
    assert.deepEqual(
      classifier.parameters().map((p) => p.requiresGrad),
      requires,
      "the classifier's parameters require gradients again afterwards",
    );
    const saved = loadSafetensors(whole);
    const info = JSON.parse(saved.metadata.info);
    assert.equal(info.kind, "purifier");
    assert.equal(info.attack, "pgd:steps=2:alpha=0.6");
    assert.equal(info.eot, 2);
    assert.ok(existsSync(cut));

    const resumed = await trainPurifier(base(cut));
    assert.ok(lines.some((l) => /resuming .* at epoch 2 of 2/.test(l)));
    const again = loadSafetensors(cut);
    for (const [name, t] of saved.tensors) {
      const diff = noGrad(() => tidy(() => t.sub(again.tensors.get(name)!).abs().max().item()));
      assert.ok(diff <= 1e-6, `${name} differs by ${diff} after resuming`);
    }
    await assert.rejects(
      trainPurifier({ ...base(cut), epochs: 3, eps: 0.2 }),
      (e: unknown) =>
        e instanceof CheckpointError && /was trained with eps = 0.1, not 0.2; pass --no-resume/.test(e.message),
    );
    for (const t of [...saved.tensors.values(), ...again.tensors.values()]) t.dispose();
    r.model.dispose();
    resumed.model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
    data.dispose();
    val.dispose();
    clf.dispose();
  }
});

test("the trainer refuses an eps outside [0, 1] before any work", async () => {
  manualSeed(0);
  const data = synthetic(4, 1);
  const clf = trainedMlp(data, 1) as unknown as Mlp;
  await assert.rejects(
    trainPurifier({
      classifier: clf,
      makeModel: smallVae,
      train: dataset(data.x, data.y),
      epochs: 1,
      batchSize: 4,
      lr: 1e-3,
      seed: 0,
      checkpoint: join(tmpdir(), "never-written.safetensors"),
      attack: { kind: "fgsm-rs", alpha: 1.25 },
      eps: 1.5,
    }),
    /Expected number between 0 and 1 for eps but received 1.5/,
  );
  data.dispose();
  clf.dispose();
});
