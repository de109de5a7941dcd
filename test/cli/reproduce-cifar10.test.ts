import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeCifarBatch, CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILES, CIFAR10_IMAGE_BYTES } from "../../src/io/cifar.js";

/** A small data set in the exact CIFAR-10 binary format: each class is a colour tint plus noise, so it is learnable. */
function writeFixture(dir: string, perFile: number): void {
  mkdirSync(dir, { recursive: true });
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (const f of [...CIFAR10_TRAIN_FILES, ...CIFAR10_TEST_FILES]) {
    const labels = Array.from({ length: perFile }, (_, i) => i % 10);
    const images = new Uint8Array(perFile * CIFAR10_IMAGE_BYTES);
    labels.forEach((label, i) => {
      for (let ch = 0; ch < 3; ch++) {
        const base = ((label * (ch + 3)) % 10) * 25;
        for (let p = 0; p < 1024; p++)
          images[i * CIFAR10_IMAGE_BYTES + ch * 1024 + p] = Math.min(255, base + Math.floor(rnd() * 30));
      }
    });
    writeCifarBatch(join(dir, f), { images, labels });
  }
}

test("reproduce cifar10 on a fixture in the official binary format produces every output file", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-cifar-"));
  try {
    writeFixture(join(dir, "data"), 40);
    const out = join(dir, "out");
    const r = spawnSync(
      process.execPath,
      [
        join(process.cwd(), "bin", "vaeguard.js"),
        "reproduce",
        "cifar10",
        "--quick",
        "--data-dir",
        join(dir, "data"),
        "--out",
        out,
        "--checkpoints",
        join(dir, "ck"),
        "--eps",
        "0,0.05",
        "--samples",
        "20",
        "--quiet",
        "--json",
      ],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout) as {
      rows: { attack: string; epsilon: number; relL2: number }[];
      cleanAccuracy: number;
    };
    assert.deepEqual(
      result.rows.map((x) => `${x.attack}@${x.epsilon}`),
      ["FGSM@0", "FGSM@0.05", "I-FGSM@0", "I-FGSM@0.05"],
    );
    assert.ok(result.rows[1].relL2 > 0);
    for (const f of [
      "report.md",
      "results.json",
      "results.csv",
      "grid.png",
      "plot-fgsm-gray-box.png",
      "plot-i-fgsm-gray-box.svg",
    ]) {
      assert.ok(readdirSync(out).includes(f), `missing ${f}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("reproduce cifar10 without data says how to get it", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-cifar-missing-"));
  try {
    const r = spawnSync(
      process.execPath,
      [join(process.cwd(), "bin", "vaeguard.js"), "reproduce", "cifar10", "--data-dir", join(dir, "nothing")],
      {
        encoding: "utf8",
      },
    );
    assert.equal(r.status, 2);
    assert.match(r.stderr, /data_batch_1\.bin/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Compiled, this file lives in dist/test/cli/; the fixture stays in test/fixtures/.
const FOLDER_FIXTURE = fileURLToPath(new URL("../../../test/fixtures/cifar10-folders", import.meta.url));

test("reproduce cifar10 --quick reads a class-folder copy and labels the report as the JPEG copy", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-cifar-folders-cli-"));
  try {
    const out = join(dir, "out");
    const r = spawnSync(
      process.execPath,
      [
        join(process.cwd(), "bin", "vaeguard.js"),
        "reproduce",
        "cifar10",
        "--quick",
        "--data-dir",
        FOLDER_FIXTURE,
        "--out",
        out,
        "--checkpoints",
        join(dir, "ck"),
        "--eps",
        "0,0.05",
        "--quiet",
        "--json",
      ],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { rows: { attack: string; defense: string; samples?: number }[] };
    assert.deepEqual([...new Set(result.rows.map((x) => x.attack))], ["FGSM", "I-FGSM"]);
    const report = readFileSync(join(out, "report.md"), "utf8");
    assert.match(report, /CIFAR-10 lossy JPEG copy \(class folders\), a proxy for the official test set/);
    assert.match(report, /1 per class/);

    // The adaptive twin on the checkpoints reproduce just trained: PGD with EOT through the VAE, BPDA through JPEG.
    const ev = join(dir, "evaluate");
    const e = spawnSync(
      process.execPath,
      [
        join(process.cwd(), "bin", "vaeguard.js"),
        "evaluate",
        "--dataset",
        "cifar10",
        "--data-dir",
        FOLDER_FIXTURE,
        "--classifier",
        join(dir, "ck", "cifar10-classifier-quick.safetensors"),
        "--vae",
        join(dir, "ck", "cifar10-vae-b0.01-bce-quick.safetensors"),
        "--samples",
        "all",
        "--defenses",
        "none,jpeg:10,jpeg:23,vae",
        "--attacks",
        "pgd:steps=2",
        "--eps",
        String(8 / 255),
        "--mode",
        "both",
        "--eot",
        "2",
        "--passes",
        "1",
        "--out",
        ev,
        "--quiet",
        "--json",
      ],
      { encoding: "utf8", env: { ...process.env, VAEGUARD_THREADS: "1" } },
    );
    assert.equal(e.status, 0, e.stderr);
    const evRows = (JSON.parse(e.stdout) as { rows: { mode: string; defense: string; attack: string }[] }).rows;
    assert.deepEqual([...new Set(evRows.map((x) => x.mode))].sort(), ["adaptive", "gray-box"]);
    assert.ok(
      evRows.some((x) => x.mode === "adaptive" && x.attack.includes("EOT 2")),
      JSON.stringify(evRows),
    );
    assert.match(readFileSync(join(ev, "report.md"), "utf8"), /CIFAR-10 lossy JPEG copy \(class folders\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("reproduce cifar10 names unknown class folders in one line and exits with 2", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-cifar-folders-bad-"));
  try {
    cpSync(FOLDER_FIXTURE, join(dir, "data"), { recursive: true });
    mkdirSync(join(dir, "data", "train", "kitten"));
    const r = spawnSync(
      process.execPath,
      [
        join(process.cwd(), "bin", "vaeguard.js"),
        "reproduce",
        "cifar10",
        "--quick",
        "--data-dir",
        join(dir, "data"),
        "--checkpoints",
        join(dir, "ck"),
        "--out",
        join(dir, "out"),
      ],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 2);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /unknown class folder "kitten"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
