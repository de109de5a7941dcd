import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dispose } from "../../src/core/engine.js";
import { ArgumentError } from "../../src/core/errors.js";
import { loadMnist } from "../../src/data/index.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import { ConvVae, VAE_PRESETS } from "../../src/models/vae.js";
import {
  scheduledLr,
  stopReason,
  trainClassifier,
  trainVae,
  reconstructionStop,
  type EpochStats,
} from "../../src/train/trainer.js";

test("scheduledLr multiplies by gamma after each milestone epoch, as MultiStepLR", () => {
  const lrs = [0, 1, 2, 3, 4].map((e) => scheduledLr(1e-3, e, [2, 4], 0.1));
  assert.deepEqual(
    lrs.map((x) => x.toExponential(3)),
    ["1.000e-3", "1.000e-3", "1.000e-4", "1.000e-4", "1.000e-5"],
  );
  assert.equal(scheduledLr(0.5, 7), 0.5);
});

test("a training loss term can be the watched figure: the relative change over the last two epochs", () => {
  const h = (r: number[]): EpochStats[] =>
    r.map((v, i) => ({ epoch: i + 1, trainLoss: v, seconds: 1, imagesPerSecond: 1, terms: { reconstruction: v } }));
  const stop = { relativeChange: 0.011, monitor: "reconstruction", source: "train" as const };
  assert.equal(stopReason(h([100]), 10, stop), null);
  assert.equal(stopReason(h([100, 90]), 10, stop), null);
  assert.equal(stopReason(h([100, 90, 89.1]), 10, stop), "converged");
  // Epochs without the term never count as converged.
  const bare: EpochStats[] = [
    { epoch: 1, trainLoss: 1, seconds: 1, imagesPerSecond: 1 },
    { epoch: 2, trainLoss: 1, seconds: 1, imagesPerSecond: 1 },
  ];
  assert.equal(stopReason(bare, 10, stop), null);
});

function inTmp(fn: (dir: string, log: string[]) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "vaeguard-trainer-"));
    try {
      await fn(dir, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test(
  "a classifier follows its learning-rate milestones, and the checkpoint records them",
  inTmp(async (dir, lines) => {
    const train = loadMnist({ split: "train", limit: 200 });
    try {
      const checkpoint = join(dir, "clf.safetensors");
      const r = await trainClassifier({
        makeModel: () => new MnistCnn(),
        train,
        epochs: 3,
        batchSize: 100,
        lr: 1e-3,
        seed: 0,
        checkpoint,
        lrMilestones: [1, 2],
        lrGamma: 0.5,
        quiet: true,
        log: (l) => lines.push(l),
      });
      r.model.dispose();
      assert.deepEqual(
        r.history.map((h) => h.lr),
        [1e-3, 5e-4, 2.5e-4],
      );
      assert.match(lines.join("\n"), /epoch 3\/3: .* lr 2\.5e-4/);
      const saved = loadSafetensors(checkpoint);
      dispose([...saved.tensors.values()]);
      assert.deepEqual(
        (JSON.parse(saved.metadata.training) as { history: EpochStats[] }).history.map((h) => h.lr),
        [1e-3, 5e-4, 2.5e-4],
      );
      await assert.rejects(
        trainClassifier({
          makeModel: () => new MnistCnn(),
          train,
          epochs: 1,
          batchSize: 100,
          lr: 1e-3,
          seed: 0,
          checkpoint: join(dir, "bad.safetensors"),
          lrMilestones: [0],
          quiet: true,
          log: () => {},
        }),
        (e: unknown) => e instanceof ArgumentError && /lrMilestones\[0\]/.test(e.message),
      );
    } finally {
      dispose(train);
    }
  }),
);

test(
  "a finished run is extended when more epochs are asked for, as if it had been that long from the start",
  inTmp(async (dir, lines) => {
    const train = loadMnist({ split: "train", limit: 200 });
    try {
      const common = {
        makeModel: () => new MnistCnn(),
        train,
        batchSize: 100,
        lr: 1e-3,
        seed: 0,
        lrMilestones: [1],
        quiet: true,
        log: (l: string) => lines.push(l),
      };
      const checkpoint = join(dir, "extended.safetensors");
      const short = await trainClassifier({ ...common, epochs: 1, checkpoint });
      short.model.dispose();
      const same = await trainClassifier({ ...common, epochs: 1, checkpoint });
      same.model.dispose();
      assert.equal(same.reused, true, "the same epoch count reuses the finished run");
      const extended = await trainClassifier({ ...common, epochs: 2, checkpoint });
      extended.model.dispose();
      assert.equal(extended.reused, false);
      assert.match(lines.join("\n"), /resuming .*extended\.safetensors at epoch 2 of 2/);
      const whole = await trainClassifier({ ...common, epochs: 2, checkpoint: join(dir, "whole.safetensors") });
      whole.model.dispose();
      assert.deepEqual(
        extended.history.map((h) => [h.epoch, h.trainLoss, h.lr]),
        whole.history.map((h) => [h.epoch, h.trainLoss, h.lr]),
      );
    } finally {
      dispose(train);
    }
  }),
);

test(
  "a VAE stops once its reconstruction term changes by less than the tolerance, and is then reused",
  inTmp(async (dir, lines) => {
    const train = loadMnist({ split: "train", limit: 200 });
    const validation = loadMnist({ split: "test", limit: 100 });
    try {
      const common = {
        makeModel: () => new ConvVae(VAE_PRESETS.mnist),
        train,
        validation,
        batchSize: 100,
        lr: 1e-3,
        seed: 0,
        loss: { beta: 0.01, reconstruction: "bce" as const },
        quiet: true,
        log: (l: string) => lines.push(l),
      };
      // A tolerance of 100% is met as soon as two epochs can be compared.
      const checkpoint = join(dir, "vae.safetensors");
      const r = await trainVae({ ...common, epochs: 6, checkpoint, stopReconstructionChange: 1 });
      r.model.dispose();
      assert.equal(r.history.length, 2);
      assert.ok(r.history.every((h) => typeof h.validation?.reconstructionExcess === "number"));
      assert.match(lines.join("\n"), /stopped after epoch 2 \(converged\)/);
      const saved = loadSafetensors(checkpoint);
      dispose([...saved.tensors.values()]);
      const training = JSON.parse(saved.metadata.training) as { complete: boolean; stopReason: string; epoch: number };
      assert.deepEqual([training.epoch, training.complete, training.stopReason], [2, true, "converged"]);
      const again = await trainVae({ ...common, epochs: 6, checkpoint, stopReconstructionChange: 1 });
      again.model.dispose();
      assert.equal(again.reused, true);

      // A tolerance of 0 is never met: the cap decides.
      lines.length = 0;
      const capped = await trainVae({
        ...common,
        epochs: 2,
        checkpoint: join(dir, "cap.safetensors"),
        stopReconstructionChange: 0,
      });
      capped.model.dispose();
      assert.equal(capped.history.length, 2);
      assert.ok(!lines.some((l) => l.includes("converged")), lines.join("\n"));

      // BCE without a validation set has no excess to watch: refused, not silently watching the floor.
      await assert.rejects(
        async () =>
          trainVae({
            ...common,
            validation: undefined,
            epochs: 2,
            checkpoint: join(dir, "nv.safetensors"),
            stopReconstructionChange: 0.01,
          }),
        (e: unknown) => e instanceof ArgumentError && /needs a validation set/.test(e.message),
      );
    } finally {
      dispose([train, validation]);
    }
  }),
);

test("with BCE the stop rule watches the validation reconstruction above its floor; with MSE the training term", () => {
  assert.deepEqual(reconstructionStop(0.01, true, true), {
    relativeChange: 0.01,
    monitor: "reconstructionExcess",
    source: "validation",
  });
  assert.deepEqual(reconstructionStop(0.01, false, false), {
    relativeChange: 0.01,
    monitor: "reconstruction",
    source: "train",
  });
  // The CIFAR-10 run that stopped too early (per-image figures of epochs 3 and 4): the BCE term moved 0.36%, its
  // excess over the floor 14%. The rule must go on there.
  const epoch = (reconstruction: number, reconstructionExcess: number): EpochStats => ({
    epoch: 0,
    trainLoss: 0,
    seconds: 1,
    imagesPerSecond: 1,
    validation: { reconstruction, reconstructionExcess },
    terms: { reconstruction },
  });
  const history = [epoch(1718.6462, 44.0965), epoch(1712.4678, 37.9181)];
  assert.equal(stopReason(history, 60, reconstructionStop(0.01, true, true)), null);
  assert.equal(
    stopReason(history, 60, { relativeChange: 0.01, monitor: "reconstruction", source: "train" }),
    "converged",
  );
});
