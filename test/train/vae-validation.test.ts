import { test } from "node:test";
import assert from "node:assert/strict";
import { dispose, manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { batches, datasetSize, loadMnist, type ImageDataset } from "../../src/data/index.js";
import { bceLoss } from "../../src/nn/functional.js";
import { ConvVae, VAE_PRESETS, type VaeLossOptions } from "../../src/models/vae.js";
import { validateVae } from "../../src/train/trainer.js";

/** trainVae's validation as it was before the encoding was shared: loss() and reconstruct() each encode. */
function reference(m: ConvVae, ds: ImageDataset, bs: number, loss: VaeLossOptions) {
  let rec = 0;
  let sq = 0;
  let floor = 0;
  manualSeed(0x5eed);
  for (const b of batches(ds, { batchSize: bs })) {
    const k = b.indices.length;
    [rec, sq, floor] = tidy(() =>
      noGrad(() => [
        rec + m.loss(b.x, loss).reconstruction.item() * k,
        sq + m.reconstruct(b.x, { deterministic: true }).sub(b.x).square().sum().item(),
        floor + bceLoss(b.x, b.x, "sum").item(),
      ]),
    );
    dispose([b.x, b.y]);
  }
  return { rec, sq, floor };
}

test("the VAE's validation sums are bit for bit those of separate loss and reconstruct passes", () => {
  const ds = loadMnist({ split: "test", limit: 300 });
  manualSeed(3);
  const m = new ConvVae(VAE_PRESETS.mnist);
  m.eval();
  try {
    for (const loss of [
      { beta: 0.01, reconstruction: "bce" as const },
      { beta: 0.5, reconstruction: "mse" as const },
    ]) {
      const want = reference(m, ds, 128, loss);
      assert.deepEqual(validateVae(m, ds, 128, loss, true), want);
      // Without the floor, the other sums are unchanged (and the noise stream too).
      assert.deepEqual(validateVae(m, ds, 128, loss, false), { ...want, floor: 0 });
    }
    assert.equal(datasetSize(ds), 300);
  } finally {
    m.dispose();
    dispose([ds.images, ds.labels]);
  }
});

test("lossOfEncoding(x, encode(x)) is loss(x) for the same seed", () => {
  const ds = loadMnist({ split: "test", limit: 64 });
  manualSeed(5);
  const m = new ConvVae(VAE_PRESETS.mnist);
  try {
    const terms = (f: () => { loss: { item(): number }; reconstruction: { item(): number }; kl: { item(): number } }) =>
      tidy(() => {
        manualSeed(11);
        const r = f();
        return [r.loss.item(), r.reconstruction.item(), r.kl.item()];
      });
    const a = terms(() => m.loss(ds.images, { beta: 0.01 }));
    const b = terms(() => {
      const { mu, logvar } = m.encode(ds.images);
      return m.lossOfEncoding(ds.images, mu, logvar, { beta: 0.01 });
    });
    assert.deepEqual(b, a);
  } finally {
    m.dispose();
    dispose([ds.images, ds.labels]);
  }
});
