/**
 * `vaeguard serve` as a user runs it: bad usage exits 2 with one line; with
 * checkpoints it listens on 127.0.0.1 (port 0 here), answers, and stops
 * cleanly on SIGTERM.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveCheckpoint } from "../../src/models/checkpoint.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import { ConvVae } from "../../src/models/vae.js";
import { TINY_VAE } from "../serve/helpers.js";

const bin = join(process.cwd(), "bin", "vaeguard.js");
const env = { ...process.env, VAEGUARD_THREADS: "1" };
let dir = "";

before(() => {
  dir = mkdtempSync(join(tmpdir(), "vaeguard-cli-serve-"));
  const clf = new MnistCnn();
  const vae = new ConvVae(TINY_VAE);
  saveCheckpoint(join(dir, "clf.safetensors"), clf);
  saveCheckpoint(join(dir, "vae.safetensors"), vae);
  clf.dispose();
  vae.dispose();
});
after(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]) {
  const r = spawnSync(process.execPath, [bin, "serve", ...args], { encoding: "utf8", env });
  return { code: r.status, stderr: r.stderr.trim() };
}

test("bad usage exits 2 with one line", () => {
  const none = run([]);
  assert.equal(none.code, 2);
  assert.equal(
    none.stderr,
    "vaeguard: error: --classifier is required: a classifier checkpoint (e.g. runs/checkpoints/mnist-classifier.safetensors from `vaeguard reproduce mnist`)",
  );
  const missing = run(["--classifier", join(dir, "nope.safetensors")]);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr, `vaeguard: error: ${join(dir, "nope.safetensors")}: no such checkpoint file`);
  const vaeAsClassifier = run(["--classifier", join(dir, "vae.safetensors")]);
  assert.equal(vaeAsClassifier.code, 2);
  assert.match(vaeAsClassifier.stderr, /holds a 'conv-vae' model but the classifier must be a classifier$/);
  const noVae = run(["--classifier", join(dir, "clf.safetensors"), "--defenses", "vae"]);
  assert.equal(noVae.code, 2);
  assert.equal(
    noVae.stderr,
    'vaeguard: error: Defense "vae" needs a VAE: pass --vae with a VAE checkpoint (e.g. runs/checkpoints/mnist-vae-b0.01-bce.safetensors)',
  );
  const key = run(["--classifier", join(dir, "clf.safetensors"), "--api-key-env", "VAEGUARD_TEST_UNSET_KEY"]);
  assert.equal(key.code, 2);
  assert.equal(
    key.stderr,
    "vaeguard: error: --api-key-env VAEGUARD_TEST_UNSET_KEY: that environment variable is not set or empty",
  );
});

test("serves on 127.0.0.1 and stops on SIGTERM", async () => {
  const child = spawn(
    process.execPath,
    [
      bin,
      "serve",
      "--classifier",
      join(dir, "clf.safetensors"),
      "--vae",
      join(dir, "vae.safetensors"),
      "--port",
      "0",
      "--samples",
      "5",
    ],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d.toString();
        const m =
          /^vaeguard serve: listening on (http:\/\/127\.0\.0\.1:\d+) \(defenses none, vae, jpeg:23; attack endpoint on\)$/m.exec(
            out,
          );
        if (m) resolve(m[1]);
      });
      child.on("exit", (code) => reject(new Error(`exited with ${code} before listening: ${out}`)));
    });
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { samples: { count: number } };
    assert.equal(models.samples.count, 5);
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
  } finally {
    child.kill("SIGKILL");
  }
});
