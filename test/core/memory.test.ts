/**
 * Long-run memory: training loops that never yield to the event loop keep
 * their resident memory within 100 MB of its value after warm-up.
 *
 * Two causes made it grow before: glibc's moving mmap threshold (fixed by the
 * addon at load, native/src/allocator.cc) and handles whose native wrapper was
 * only freed by a Node-API finalizer, which Node 20 runs only when the event
 * loop turns (dispose() now frees it at once). Each loop stops at the first
 * sample above the limit, so a regression fails fast instead of eating the
 * machine's memory. Resident memory only: no timings.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getNumThreads, manualSeed, memory, setNumThreads } from "../../src/core/engine.js";
import { ones, rand, randint } from "../../src/core/tensor.js";
import { binding } from "../../src/binding.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import { trainClassifier } from "../../src/train/trainer.js";
import { makeTrainingLoop, type MemoryModel } from "../helpers/memory-loop.js";
import { PGD } from "../../src/attacks/pgd.js";
import { DefendedModel } from "../../src/defenses/defended-model.js";
import { VaeDefense } from "../../src/defenses/vae.js";
import { ConvVae } from "../../src/models/vae.js";
import { Conv2d, Flatten, Linear, ReLU, Sequential } from "../../src/nn/layers.js";

const MB = 2 ** 20;
const LIMIT_MB = 100;
const rssMB = () => process.memoryUsage().rss / MB;

/** One intra-op thread: these ops are far too small to gain from more, and on a busy machine spinning workers are slow. */
function withOneThread<R>(fn: () => R): R {
  const threads = getNumThreads();
  setNumThreads(1);
  try {
    return fn();
  } finally {
    setNumThreads(threads);
  }
}

function assertFlatTraining(model: MemoryModel, warmup: number, steps: number, sampleEvery: number): void {
  withOneThread(() => {
    manualSeed(99);
    const start = memory().numTensors;
    const loop = makeTrainingLoop(model, 8);
    try {
      for (let i = 0; i < warmup; i++) loop.step();
      const warmTensors = memory().numTensors;
      const warmRss = rssMB();
      for (let i = 1; i <= steps; i++) {
        loop.step();
        if (i % sampleEvery === 0) {
          const growth = rssMB() - warmRss;
          assert.ok(growth < LIMIT_MB, `${model}: resident memory grew by ${growth.toFixed(0)} MB after ${i} steps`);
          assert.equal(memory().numTensors, warmTensors, `${model}: tensor count changed by step ${i}`);
        }
      }
    } finally {
      loop.dispose();
    }
    assert.equal(memory().numTensors, start);
  });
}

test("the addon fixes glibc's mmap threshold at load", () => {
  const s = binding.allocatorSettings();
  if (process.env.VAEGUARD_MALLOC === "default" || Object.keys(process.env).some((k) => /^MALLOC_\w+_$/.test(k))) {
    assert.notEqual(s.source, "vaeguard");
    return;
  }
  const mb = process.env.VAEGUARD_CPU_CACHE_MB;
  const cacheBytes = mb === undefined || mb === "" || !/^\d+$/.test(mb) ? 256 * 2 ** 20 : Number(mb) * 2 ** 20;
  assert.deepEqual(s, { source: "vaeguard", mmapThreshold: 2 ** 20, trimThreshold: 2 ** 21, cacheBytes });
});

test("400,000 disposed handles in a loop that never yields leave no memory behind (runs before the training loops fill the heap)", () =>
  withOneThread(() => {
    const x = ones([8, 16]);
    for (let i = 0; i < 10000; i++) x.add(1).dispose();
    const before = rssMB();
    for (let i = 0; i < 400_000; i++) x.add(1).dispose();
    const growth = rssMB() - before;
    x.dispose();
    // About 0.36 kB per handle (144 MB here) when the wrapper waited for its finalizer.
    assert.ok(growth < 20, `400,000 disposed handles left ${growth.toFixed(1)} MB behind`);
  }));

test("10,000 synchronous Adam steps of a small CNN: resident memory within 100 MB after warm-up", () => {
  assertFlatTraining("small", 500, 10_000, 250);
});

test("200 synchronous Adam steps of the MNIST CNN at batch 8: resident memory within 100 MB after warm-up", () => {
  // Before the fixed mmap threshold this loop grew by about 11 MB per step.
  assertFlatTraining("mnist-cnn", 30, 200, 10);
});

test("the CLI's training loop (trainClassifier, no yields) keeps resident memory flat across epochs", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-memory-"));
  const threads = getNumThreads();
  setNumThreads(1);
  manualSeed(5);
  const n = 320; // 40 steps of batch 8 per epoch
  const images = rand([n, 1, 28, 28]);
  const labels = randint(0, 10, [n]);
  const perEpoch: number[] = [];
  try {
    const r = await trainClassifier({
      makeModel: () => new MnistCnn(),
      train: { images, labels, classNames: [...Array(10).keys()].map(String), name: "random", source: "test" },
      epochs: 3,
      batchSize: 8,
      lr: 1e-3,
      seed: 1,
      checkpoint: join(dir, "clf.safetensors"),
      quiet: true,
      log: () => perEpoch.push(rssMB()),
    });
    r.model.dispose();
  } finally {
    images.dispose();
    labels.dispose();
    setNumThreads(threads);
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(perEpoch.length, 3);
  const growth = Math.max(...perEpoch) - perEpoch[0];
  assert.ok(
    growth < LIMIT_MB,
    `resident memory grew by ${growth.toFixed(0)} MB over epochs 2-3: ${perEpoch.map((m) => m.toFixed(0)).join(", ")} MB`,
  );
});

test("1,000 steps of adaptive PGD with EOT through a VAE defense: resident memory within 100 MB after warm-up", async () => {
  const threads = getNumThreads();
  setNumThreads(1);
  manualSeed(7);
  const start = memory().numTensors;
  const vae = new ConvVae({ inputShape: [1, 12, 12], encoder: [{ channels: 4, pool: true }], latentDim: 8 });
  const classifier = new Sequential(
    new Conv2d(1, 4, 3, { padding: 1 }),
    new ReLU(),
    new Flatten(),
    new Linear(4 * 12 * 12, 10),
  );
  classifier.eval();
  const model = new DefendedModel(new VaeDefense(vae), classifier, { view: "adaptive" });
  const x = rand([8, 1, 12, 12]);
  const y = randint(0, 10, [8]);
  // 20 attacks of 50 steps each (1,000 steps), EOT over 4 draws of the VAE's latent noise at every step.
  const attack = new PGD(model, { eps: 0.1, steps: 50, eotSamples: 4 });
  let warmRss = 0;
  try {
    for (let run = 0; run < 20; run++) {
      const adv = await attack.generate(x, y);
      adv.dispose();
      if (run === 1) warmRss = rssMB();
      if (run > 1) {
        const growth = rssMB() - warmRss;
        assert.ok(
          growth < LIMIT_MB,
          `resident memory grew by ${growth.toFixed(0)} MB after ${(run + 1) * 50} PGD steps`,
        );
      }
    }
  } finally {
    x.dispose();
    y.dispose();
    vae.dispose();
    classifier.dispose();
    setNumThreads(threads);
  }
  assert.equal(memory().numTensors, start, "tensors left after the attacks");
});
