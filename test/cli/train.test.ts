import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { dispose, tidy } from "../../src/core/engine.js";

const bin = join(process.cwd(), "bin", "vaeguard.js");
const args = (out: string) => [
  bin,
  "train",
  "classifier",
  "--dataset",
  "mnist",
  "--train-samples",
  "800",
  "--validation",
  "200",
  "--epochs",
  "3",
  "--batch-size",
  "100",
  "--out",
  out,
];

test("a killed training run resumes from its last checkpoint and ends where an uninterrupted run ends", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-train-"));
  try {
    const whole = join(dir, "whole.safetensors");
    const r = spawnSync(process.execPath, args(whole), { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);

    // Kill the second run as soon as its first epoch's checkpoint exists.
    const cut = join(dir, "cut.safetensors");
    const child = spawn(process.execPath, args(cut), { stdio: "ignore" });
    await new Promise<void>((resolveWait, reject) => {
      const timer = setInterval(() => {
        if (existsSync(cut)) {
          clearInterval(timer);
          child.kill("SIGKILL");
          resolveWait();
        }
      }, 20);
      child.on("exit", () => {
        clearInterval(timer);
        if (!existsSync(cut)) reject(new Error("training ended before writing a checkpoint"));
        else resolveWait();
      });
    });
    await new Promise((r2) => setTimeout(r2, 100));
    const resumed = spawnSync(process.execPath, args(cut), { encoding: "utf8" });
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming .* at epoch [23] of 3/);

    const a = loadSafetensors(whole);
    const b = loadSafetensors(cut);
    assert.deepEqual([...a.tensors.keys()], [...b.tensors.keys()]);
    for (const [name, t] of a.tensors) {
      const diff = tidy(() => t.sub(b.tensors.get(name)!).abs().max().item());
      assert.ok(diff <= 1e-6, `${name} differs by ${diff}`);
    }
    assert.equal(JSON.parse(b.metadata.training).epoch, 3);
    dispose([...a.tensors.values(), ...b.tensors.values()]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("train rejects a bad model kind with exit code 2", () => {
  const r = spawnSync(process.execPath, [bin, "train", "gan", "--dataset", "mnist", "--out", "x"], {
    encoding: "utf8",
  });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Expected "classifier", "vae" or "purifier" for model but received "gan"/);
});
