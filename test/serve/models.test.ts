/** Loading what a server serves: other classifier formats (TorchScript) and what the defenses need. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { saveCheckpoint } from "../../src/models/checkpoint.js";
import { ConvVae, VAE_PRESETS } from "../../src/models/vae.js";
import { loadServeModels, serveModels } from "../../src/serve/models.js";
import { createServer } from "../../src/serve/server.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import { TINY_VAE, digitImage } from "./helpers.js";

const TINY_CNN = join(process.cwd(), "test", "fixtures", "torchscript", "tiny_cnn.pt");

test("a TorchScript classifier is served with its input shape; colour images are resized to it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-serve-models-"));
  const patchFile = join(dir, "patch8.safetensors");
  const patchVae = new ConvVae({ inputShape: [3, 8, 8], encoder: [{ channels: 4, pool: true }], latentDim: 8 });
  saveCheckpoint(patchFile, patchVae);
  patchVae.dispose();
  assert.throws(() => loadServeModels({ classifier: TINY_CNN, defenses: [] }), {
    message: `${TINY_CNN}: a TorchScript classifier needs its input shape (--input-shape C,H,W)`,
  });
  const models = loadServeModels({
    classifier: TINY_CNN,
    inputShape: [3, 8, 8],
    patchVaes: { "8": patchFile },
    defenses: ["jpeg:50", "patchvae:8/4"],
  });
  const s = createServer({ models });
  try {
    const m = (await s.app.inject({ method: "GET", url: "/v1/models" })).json();
    assert.deepEqual(m.classifier, { inputShape: [3, 8, 8], numClasses: 3, classNames: ["0", "1", "2"] });
    assert.deepEqual(m.sources, { classifier: "tiny_cnn.pt", patchVae8: "patch8.safetensors" });
    const png = await digitImage("png", 20, 20);
    const r = await s.app.inject({
      method: "POST",
      url: "/v1/classify",
      headers: { "content-type": "image/png" },
      payload: png,
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(
      r.json().predictions.map((p: { defense: string; top: unknown[] }) => [p.defense, p.top.length]),
      [
        ["none", 3],
        ["jpeg:50", 3],
        ["patchvae:8/4", 3],
      ],
    );
    // A large image goes through the patch VAE whole, at its own size.
    const big = await s.app.inject({
      method: "POST",
      url: "/v1/purify?defense=patchvae:8/4",
      headers: { "content-type": "image/png" },
      payload: await digitImage("png", 40, 30),
    });
    assert.equal(big.statusCode, 200, big.body);
    const meta = await sharp(big.rawPayload).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [40, 30, 3]);
    // Gradients flow through the JIT module: a gray-box FGSM on the uploaded image.
    const a = await s.app.inject({
      method: "POST",
      url: "/v1/attack",
      payload: { image: png.toString("base64"), attack: "fgsm", eps: 0.1, mode: "gray-box" },
    });
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(a.json().runs[0].adversarial.top.length, 3);
  } finally {
    await s.close();
    models.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a defense whose VAE does not fit the classifier's images is refused at start-up", () => {
  const clf = new MnistCnn();
  const cifarVae = new ConvVae(VAE_PRESETS.cifar10);
  const patchVae = new ConvVae(VAE_PRESETS.patch16);
  const vae = new ConvVae(TINY_VAE);
  try {
    assert.throws(() => serveModels(clf, ["vae"], { vae: cifarVae }), {
      message: 'Defense "vae" works on images of shape [3, 32, 32] but the classifier takes [1, 28, 28]',
    });
    assert.throws(() => serveModels(clf, ["patchvae:16/8"], { patchVaes: { "16": patchVae } }), {
      message: 'Defense "patchvae:16/8" works on 3-channel images but the classifier takes [1, 28, 28]',
    });
    assert.throws(() => serveModels(clf, ["vae", "vae"], { vae }), { message: 'Defense "vae" is listed twice' });
    const grayPatch = new ConvVae({ inputShape: [1, 32, 32], encoder: [{ channels: 2, pool: true }], latentDim: 4 });
    try {
      assert.throws(() => serveModels(clf, ["patchvae:32/16"], { patchVaes: { "32": grayPatch } }), {
        message: 'Defense "patchvae:32/16" cuts 32x32 patches, larger than the classifier\'s 28x28 images',
      });
    } finally {
      grayPatch.dispose();
    }
    assert.deepEqual(
      serveModels(clf, ["none", "vae"], { vae }).defenses.map((d) => d.id),
      ["none", "vae"],
    );
  } finally {
    for (const m of [clf, cifarVae, patchVae, vae]) m.dispose();
  }
});
