import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { manualSeed, memory, noGrad, tidy } from "../../src/core/engine.js";
import { CheckpointError } from "../../src/core/errors.js";
import { rand } from "../../src/core/tensor.js";
import { saveCheckpoint } from "../../src/models/checkpoint.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import { loadClassifierFor, loadPurifier, loadPurifierFor } from "../../src/models/loaders.js";
import { Mlp } from "../../src/models/mlp.js";
import { CONV_PURIFIER_PRESETS, ConvPurifier } from "../../src/models/purifier.js";
import { ConvVae } from "../../src/models/vae.js";
import { writeTinyCheckpoints } from "../helpers/tiny-checkpoints.js";

test("ConvPurifier reconstructs images of its shape in [0, 1] through a latent smaller than the image", () => {
  manualSeed(0);
  const p = new ConvPurifier(CONV_PURIFIER_PRESETS.mnist);
  const before = memory().numTensors;
  noGrad(() =>
    tidy(() => {
      const x = rand([3, 1, 28, 28]);
      const r = p.reconstruct(x);
      assert.deepEqual(r.shape, [3, 1, 28, 28]);
      assert.ok(r.min().item() >= 0 && r.max().item() <= 1);
      const { mu, logvar } = p.encode(x);
      assert.deepEqual(mu.shape, [3, 4, 7, 7]);
      assert.deepEqual(logvar.shape, [3, 4, 7, 7]);
      assert.equal(p.latentDim, 196);
      assert.ok(p.latentDim < 28 * 28, "the bottleneck must be smaller than the image");
      const a = p.reconstruct(x, { deterministic: true });
      const b = p.reconstruct(x, { deterministic: true });
      assert.equal(a.sub(b).abs().max().item(), 0);
      const c = p.reconstruct(x);
      assert.ok(c.sub(r).abs().max().item() > 0, "sampled reconstructions differ");
      const l = p.loss(x, { beta: 0.01 });
      assert.ok(Number.isFinite(l.loss.item()) && l.kl.item() >= 0);
    }),
  );
  assert.equal(memory().numTensors, before, "no tensor leaked");
  const names = p.namedParameters().map(([n]) => n);
  assert.ok(names.includes("enc0a.weight") && names.includes("toMu.weight") && names.includes("out.bias"));
  assert.ok(!names.some((n) => /skip/.test(n)));
  p.dispose();
});

test("ConvPurifier rejects a shape its levels cannot halve", () => {
  assert.throws(
    () => new ConvPurifier({ inputShape: [1, 30, 30], widths: [8, 8], latentChannels: 2 }),
    /Input 30x30 is not divisible by 2\^2/,
  );
});

test("purifier and classifier checkpoints load by kind, and the wrong kind or shape is named", () => {
  const { dir, files: tiny } = writeTinyCheckpoints("vaeguard-purifier-");
  try {
    manualSeed(1);
    const conv = new ConvPurifier(CONV_PURIFIER_PRESETS.mnist);
    const files = { ...tiny, conv: join(dir, "conv.safetensors") };
    saveCheckpoint(files.conv, conv);

    const loaded = loadPurifier(files.conv);
    assert.ok(loaded instanceof ConvPurifier);
    const x = rand([2, 1, 28, 28]);
    const same = noGrad(() =>
      tidy(() =>
        loaded
          .reconstruct(x, { deterministic: true })
          .sub(conv.reconstruct(x, { deterministic: true }))
          .abs()
          .max()
          .item(),
      ),
    );
    assert.equal(same, 0);
    assert.ok(loadPurifier(files.vae) instanceof ConvVae);
    assert.throws(
      () => loadPurifier(files.mlp),
      (e: unknown) => e instanceof CheckpointError && /holds a 'mlp' model but a purifier/.test(e.message),
    );
    assert.throws(
      () => loadPurifierFor(files.conv, [3, 32, 32], "CIFAR-10"),
      /reconstructs images \[1, 28, 28\] but CIFAR-10 images are \[3, 32, 32\]/,
    );

    const clf = loadClassifierFor(files.mlp, { inputShape: [1, 28, 28], numClasses: 10, dataset: "MNIST" });
    assert.ok(clf instanceof Mlp);
    assert.throws(
      () => loadClassifierFor(files.cifar, { inputShape: [1, 28, 28], numClasses: 10, dataset: "MNIST" }),
      /holds a 'cifar10-cnn' classifier of images \[3, 32, 32\] but MNIST images are \[1, 28, 28\]/,
    );
    assert.throws(
      () => loadClassifierFor(files.vae, { inputShape: [1, 28, 28], numClasses: 10, dataset: "MNIST" }),
      /holds a 'conv-vae' model, not a classifier/,
    );
    for (const m of [conv, loaded, clf]) m.dispose();
    x.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("Mlp classifies flattened images and is a different architecture from the Table 1 CNN", () => {
  manualSeed(2);
  const m = new Mlp();
  const logits = noGrad(() => tidy(() => m.forward(rand([5, 1, 28, 28]))));
  assert.deepEqual(logits.shape, [5, 10]);
  logits.dispose();
  assert.deepEqual(
    m.namedParameters().map(([n]) => n),
    ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"],
  );
  const cnn = new MnistCnn();
  assert.notEqual(m.numParameters(), cnn.numParameters());
  assert.throws(() => new Mlp({ inputShape: [1, 28, 28], hidden: [0], numClasses: 10 }), /hidden/);
  m.dispose();
  cnn.dispose();
});
