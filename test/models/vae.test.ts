import { test } from "node:test";
import assert from "node:assert/strict";
import { ConvVae, VAE_PRESETS } from "../../src/models/vae.js";
import { rand, tensor, zeros } from "../../src/core/tensor.js";
import { memory, manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { Adam } from "../../src/optim/optimizer.js";

test("every preset reconstructs to its input shape in [0, 1] with the paper's latent sizes", () => {
  const before = memory().numTensors;
  const latents: Record<string, number> = { mnist: 256, cifar10: 1024, patch16: 512, patch32: 512, patch64: 1024 };
  for (const [name, cfg] of Object.entries(VAE_PRESETS)) {
    if (name === "patch64") continue; // 100M parameters: too big for a unit test; its shapes follow the same code
    const v = new ConvVae(cfg);
    tidy(() => {
      const x = rand([2, ...cfg.inputShape]);
      const { mu, logvar } = v.encode(x);
      assert.deepEqual(mu.shape, [2, latents[name]]);
      assert.deepEqual(logvar.shape, [2, latents[name]]);
      const r = v.reconstruct(x);
      assert.deepEqual(r.shape, [2, ...cfg.inputShape]);
      assert.ok(r.min().item() >= 0 && r.max().item() <= 1);
    });
    v.dispose();
  }
  assert.equal(VAE_PRESETS.patch64.latentDim, 1024);
  assert.equal(memory().numTensors, before);
});

test("latent noise is clipped: clip 0 gives the deterministic reconstruction, a large clip does not", () => {
  const before = memory().numTensors;
  manualSeed(3);
  const v = new ConvVae(VAE_PRESETS.mnist);
  tidy(() =>
    noGrad(() => {
      const x = rand([3, 1, 28, 28]);
      const det = v.reconstruct(x, { deterministic: true });
      assert.ok(v.reconstruct(x, { clip: 0 }).sub(det).abs().max().item() < 1e-6);
      assert.ok(v.reconstruct(x, { clip: 5 }).sub(det).abs().max().item() > 1e-4);
      // sample(): |z - mu| <= clip * sigma elementwise.
      const mu = zeros([1000, 4]);
      const logvar = tensor(new Float32Array(4000).fill(Math.log(4)), [1000, 4]); // sigma = 2
      const z = v.sample(mu, logvar, { clip: 0.5 });
      assert.ok(z.abs().max().item() <= 1.0 + 1e-6);
      assert.ok(z.abs().max().item() > 0.9, "noise reaches the clipping bound");
    }),
  );
  v.dispose();
  assert.equal(memory().numTensors, before);
});

test("VAE loss falls when training on a small synthetic set (both reconstruction losses)", () => {
  const before = memory().numTensors;
  for (const reconstruction of ["bce", "mse"] as const) {
    manualSeed(0);
    const v = new ConvVae({ inputShape: [1, 8, 8], encoder: [{ channels: 8, pool: true }], latentDim: 4 });
    // Four bar images: horizontal / vertical, top / left.
    const data = new Float32Array(4 * 64);
    for (let k = 0; k < 4; k++)
      for (let i = 0; i < 8; i++) data[k * 64 + (k < 2 ? (k * 4 + 1) * 8 + i : i * 8 + (k - 2) * 4 + 1)] = 1;
    const x = tensor(data, [4, 1, 8, 8]);
    const opt = new Adam(v.parameters(), { lr: 1e-2 });
    const losses: number[] = [];
    for (let s = 0; s < 150; s++) {
      losses.push(
        tidy(() => {
          opt.zeroGrad();
          const { loss } = v.loss(x, { beta: 0.01, reconstruction });
          loss.backward();
          opt.step();
          return loss.item();
        }),
      );
    }
    const first = losses[0];
    const last = losses.slice(-10).reduce((a, b) => a + b, 0) / 10;
    assert.ok(last < 0.5 * first, `${reconstruction}: loss ${first} -> ${last}`);
    const kl = tidy(() => v.loss(x, { beta: 0.01, reconstruction }).kl.item());
    assert.ok(kl >= 0, "KL divergence is non-negative");
    opt.dispose();
    x.dispose();
    v.dispose();
  }
  assert.equal(memory().numTensors, before);
});

test("invalid configurations are rejected with clear messages", () => {
  assert.throws(
    () =>
      new ConvVae({
        inputShape: [1, 30, 30],
        encoder: [
          { channels: 4, pool: true },
          { channels: 4, pool: true },
        ],
        latentDim: 8,
      }),
    /not divisible/,
  );
  assert.throws(
    () => new ConvVae({ inputShape: [1, 8, 8], encoder: [{ channels: 4, pool: false }], latentDim: 0 }),
    /latentDim/,
  );
  const v = new ConvVae({ inputShape: [1, 8, 8], encoder: [{ channels: 4, pool: false }], latentDim: 2 });
  assert.throws(
    () => tidy(() => v.loss(rand([1, 1, 8, 8]), { beta: -1 })),
    /Expected number of at least 0 for beta but received -1/,
  );
  v.dispose();
});
