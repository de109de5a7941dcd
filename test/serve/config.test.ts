/** Settings of `vaeguard serve`: defaults, flags over a config file, and one-line messages for bad values. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadResultsFile, resolveServeConfig } from "../../src/serve/config.js";

test("defaults: loopback, port 8080, vae and jpeg:23 with a VAE, attack on, bounded batcher", () => {
  const c = resolveServeConfig({ classifier: "clf.safetensors", vae: "vae.safetensors" }, { cwd: "/srv" });
  assert.equal(c.host, "127.0.0.1");
  assert.equal(c.port, 8080);
  assert.equal(c.models.classifier, "/srv/clf.safetensors");
  assert.deepEqual(c.models.defenses, ["vae", "jpeg:23"]);
  assert.equal(c.attack.enabled, true);
  assert.equal(c.modelThread, "worker");
  assert.deepEqual(c.batching, { maxBatchSize: 64, windowMs: 0, concurrency: 1, queueLimit: 512, timeoutMs: 30000 });
  assert.deepEqual(resolveServeConfig({ classifier: "c" }).models.defenses, ["jpeg:23"]);
});

test("a config file gives settings (paths from its folder); flags override it", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-serve-config-"));
  try {
    const file = join(dir, "serve.yaml");
    writeFileSync(
      file,
      "classifier: models/clf.safetensors\nvae: models/vae.safetensors\ndefenses: [vae, 'jpeg:10']\nport: 9000\nattack: false\nmaxBatch: 16\npatch-vae: ['16=p16.safetensors']\n",
    );
    const c = resolveServeConfig({ port: "9100" }, { configFile: file, cwd: "/elsewhere" });
    assert.equal(c.models.classifier, join(dir, "models/clf.safetensors"));
    assert.deepEqual(c.models.defenses, ["vae", "jpeg:10"]);
    assert.deepEqual(c.models.patchVaes, { "16": join(dir, "p16.safetensors") });
    assert.equal(c.port, 9100);
    assert.equal(c.attack.enabled, false);
    assert.equal(c.batching.maxBatchSize, 16);
    writeFileSync(file, "classifier: c\nlisten: 0.0.0.0\n");
    assert.throws(() => resolveServeConfig({}, { configFile: file }), {
      message: `${file}: unknown key "listen" (known keys: ${[
        "classifier",
        "input-shape",
        "vae",
        "patch-vae",
        "defenses",
        "host",
        "port",
        "attack",
        "api-key-env",
        "max-batch",
        "batch-window-ms",
        "concurrency",
        "queue-limit",
        "queue-timeout-ms",
        "body-limit",
        "max-pixels",
        "max-images",
        "request-timeout-ms",
        "max-attack-steps",
        "max-eot",
        "samples",
        "results",
        "threads",
        "model-thread",
        "seed",
        "log",
      ].join(", ")})`,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad settings are one line naming the flag", () => {
  assert.throws(() => resolveServeConfig({}), /^ArgumentError: --classifier is required/);
  assert.throws(() => resolveServeConfig({ classifier: "c", port: "http" }), {
    message: 'Expected integer between 0 and 65535 for --port but received "http"',
  });
  assert.throws(() => resolveServeConfig({ classifier: "c", "queue-limit": "0" }), {
    message: 'Expected integer of at least 1 for --queue-limit but received "0"',
  });
  assert.throws(() => resolveServeConfig({ classifier: "c", "patch-vae": ["p16.safetensors"] }), {
    message:
      'Expected SIZE=FILE (e.g. 16=runs/checkpoints/patch16.safetensors) for --patch-vae but received "p16.safetensors"',
  });
  assert.throws(() => resolveServeConfig({ classifier: "c", "input-shape": "3,224" }), {
    message: 'Expected C,H,W (e.g. 3,224,224) for --input-shape but received "3,224"',
  });
  assert.throws(() => resolveServeConfig({ classifier: "c", "model-thread": "gpu" }), {
    message: 'Expected "worker" or "main" for --model-thread but received "gpu"',
  });
  assert.equal(resolveServeConfig({ classifier: "c", "model-thread": "main" }).modelThread, "main");
});

test("a results file is checked before it is served", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-serve-results-"));
  try {
    const file = join(dir, "results.json");
    writeFileSync(
      file,
      JSON.stringify({
        metadata: {},
        rows: [{ attack: "FGSM", mode: "gray-box", epsilon: 0.1, relL2: 0.1, accuracy: { VAE: 2 } }],
      }),
    );
    assert.throws(() => loadResultsFile(file), {
      message: `${file}: Expected number between 0 and 1 for rows[0].accuracy["VAE"] but received 2`,
    });
    writeFileSync(file, "[1, 2]");
    assert.throws(() => loadResultsFile(file), {
      message: `${file}: not a vaeguard results file (expected {"metadata": ..., "rows": [...]})`,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
