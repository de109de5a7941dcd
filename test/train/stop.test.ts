/**
 * Stopping rules of the training loop: convergence of a validation figure
 * (the paper's "changes very little"), epoch and time caps, per-epoch data,
 * loss terms in the history, and a resume that stops exactly where an
 * uninterrupted run does.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memory } from "../../src/core/engine.js";
import { tensor } from "../../src/core/tensor.js";
import { mulberry32 } from "../../src/data/random.js";
import type { ImageDataset } from "../../src/data/dataset.js";
import { ConvVae } from "../../src/models/vae.js";
import { stopReason, trainVae, type EpochStats } from "../../src/train/trainer.js";

const h = (epoch: number, rec: number, seconds = 1): EpochStats => ({
  epoch,
  trainLoss: rec,
  seconds,
  imagesPerSecond: 1,
  validation: { reconstruction: rec },
});

describe("stopReason", () => {
  const stop = { relativeChange: 0.01, monitor: "reconstruction" };
  test("converged when the monitored figure changes by less than the fraction", () => {
    assert.equal(stopReason([h(1, 100), h(2, 99.5)], 10, stop), "converged");
    assert.equal(stopReason([h(1, 100), h(2, 98)], 10, stop), null);
    assert.equal(stopReason([h(1, 100), h(2, 100.9)], 10, stop), "converged", "a rise within 1% also counts");
  });
  test("needs two epochs, then the epoch cap and the time cap apply", () => {
    assert.equal(stopReason([h(1, 100)], 10, stop), null);
    assert.equal(stopReason([h(1, 100), h(2, 50)], 2, stop), "epochs");
    assert.equal(stopReason([h(1, 100, 30), h(2, 50, 31)], 10, { ...stop, maxSeconds: 60 }), "time cap");
    assert.equal(stopReason([h(1, 100, 30), h(2, 50, 29)], 10, { ...stop, maxSeconds: 60 }), null);
  });
});

describe("trainVae with a stopping rule", () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "vaeguard-stop-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = {
    inputShape: [1, 4, 4] as [number, number, number],
    encoder: [{ channels: 2, pool: true }],
    latentDim: 2,
  };
  const set = (seed: number): ImageDataset => ({
    images: tensor(Float32Array.from({ length: 256 }, mulberry32(seed)), [16, 1, 4, 4]),
    labels: tensor(new BigInt64Array(16), [16]),
    classNames: ["x"],
    name: "tiny",
    split: "train",
    source: `seed ${seed}`,
  });

  test("fresh data per epoch, terms recorded, stops by the rule and resumes to the same place", async () => {
    const before = memory().numTensors;
    const validation = set(99);
    const made: number[] = [];
    const opts = (checkpoint: string, epochs: number) => ({
      makeModel: () => new ConvVae(cfg),
      train: (e: number) => {
        made.push(e);
        return set(e);
      },
      validation,
      epochs,
      stop: { relativeChange: 1e-9, monitor: "reconstruction" },
      batchSize: 8,
      lr: 1e-2,
      seed: 3,
      checkpoint,
      loss: { beta: 0.01 },
      quiet: true,
      log: () => {},
    });
    const full = await trainVae(opts(join(dir, "full.safetensors"), 4));
    assert.equal(full.stopReason, "epochs");
    assert.equal(full.history.length, 4);
    assert.deepEqual(made, [0, 1, 2, 3]);
    for (const e of full.history) {
      assert.ok(e.terms && Number.isFinite(e.terms.reconstruction) && Number.isFinite(e.terms.kl));
      assert.ok(e.validation && Number.isFinite(e.validation.reconstruction) && Number.isFinite(e.validation.mse));
      assert.ok((e.cpuSeconds ?? -1) >= 0);
    }
    full.model.dispose();

    // Two epochs, then a resumed run to four: the same history values as the uninterrupted run.
    const part = await trainVae(opts(join(dir, "part.safetensors"), 2));
    part.model.dispose();
    const resumed = await trainVae(opts(join(dir, "part.safetensors"), 4));
    assert.equal(resumed.reused, false);
    assert.deepEqual(
      resumed.history.map((e) => e.validation!.reconstruction),
      full.history.map((e) => e.validation!.reconstruction),
    );
    resumed.model.dispose();
    // Finished by its epoch cap: reused as it is.
    const again = await trainVae(opts(join(dir, "part.safetensors"), 4));
    assert.equal(again.reused, true);
    assert.equal(again.stopReason, "epochs");
    again.model.dispose();
    validation.images.dispose();
    validation.labels.dispose();
    assert.equal(memory().numTensors, before, "no tensor leaked (per-epoch sets are disposed)");
  });

  test("a time cap stops training; a larger cap later resumes it", async () => {
    const validation = set(98);
    const base = {
      makeModel: () => new ConvVae(cfg),
      train: (e: number) => set(e),
      validation,
      epochs: 50,
      batchSize: 8,
      lr: 1e-2,
      seed: 1,
      checkpoint: join(dir, "cap.safetensors"),
      loss: { beta: 0.01 },
      quiet: true,
      log: () => {},
    };
    const capped = await trainVae({ ...base, stop: { maxSeconds: 1e-6 } });
    assert.equal(capped.stopReason, "time cap");
    assert.equal(capped.history.length, 1, "the cap is checked after each epoch");
    capped.model.dispose();
    const more = await trainVae({ ...base, epochs: 3, stop: { maxSeconds: 1e6 } });
    assert.equal(more.reused, false);
    assert.equal(more.history.length, 3);
    assert.equal(more.stopReason, "epochs");
    more.model.dispose();
    validation.images.dispose();
    validation.labels.dispose();
  });
});
