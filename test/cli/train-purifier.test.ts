import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { rand, randint } from "../../src/core/tensor.js";
import { saveReplaySet } from "../../src/train/replay.js";
import { assertUsageError } from "../helpers/cli-assert.js";
import { writeTinyCheckpoints, type TinyCheckpoints } from "../helpers/tiny-checkpoints.js";

const bin = join(process.cwd(), "bin", "vaeguard.js");
let dir: string;
let files: TinyCheckpoints["files"];

before(() => {
  ({ dir, files } = writeTinyCheckpoints("vaeguard-train-purifier-"));
});

after(() => rmSync(dir, { recursive: true, force: true }));

const train = (...args: string[]) =>
  spawnSync(process.execPath, [bin, "train", "purifier", "--dataset", "mnist", ...args], { encoding: "utf8" });

/** A one-epoch run of the MLP's purifier from the VAE on `samples` training images, at eps 0.1. */
const tinyRun = (out: string, samples: string) => [
  "--classifier",
  files.mlp,
  "--init",
  files.vae,
  "--out",
  out,
  "--train-samples",
  samples,
  "--validation",
  "32",
  "--epochs",
  "1",
  "--batch-size",
  "32",
  "--eps",
  "0.1",
];

test("train purifier: bad input is one line and exit code 2, before any data is loaded", () => {
  const out = join(dir, "p.safetensors");
  assertUsageError(train("--out", out), /train purifier needs --classifier/);
  assertUsageError(
    train("--out", out, "--classifier", files.mlp, "--eps", "1.5"),
    /Expected number between 0 and 1 for eps but received 1.5/,
  );
  assertUsageError(
    train("--out", out, "--classifier", files.mlp, "--attack", "square"),
    /Unsupported training attack "square"/,
  );
  assertUsageError(
    train("--out", out, "--classifier", files.cifar),
    /holds a 'cifar10-cnn' classifier of images \[3, 32, 32\] but MNIST images are \[1, 28, 28\]/,
  );
  assertUsageError(train("--out", out, "--classifier", files.vae), /holds a 'conv-vae' model, not a classifier/);
  assertUsageError(
    train("--out", out, "--classifier", files.mlp, "--init", files.mlp),
    /holds a 'mlp' model but a purifier/,
  );
  assertUsageError(
    train("--out", out, "--classifier", files.mlp, "--init", files.vae, "--arch", "conv"),
    /holds a 'conv-vae' purifier but --arch conv needs a 'conv-purifier'/,
  );
  assertUsageError(
    train("--out", out, "--classifier", files.mlp, "--arch", "unet"),
    /Expected "vae" or "conv" for --arch of a purifier/,
  );
  assertUsageError(
    train("--out", out, "--classifier", files.mlp, "--replay", files.mlp),
    /mlp\.safetensors: is not a replay set: it has no 'clean', 'adversarial', 'labels' tensor/,
  );
});

/** A replay set of `n` random MNIST-shaped images, as scripts/make-replay-set.mjs writes them. */
function writeReplay(file: string, n: number, start: number): void {
  const set = {
    clean: rand([n, 1, 28, 28]),
    adversarial: rand([n, 1, 28, 28]),
    labels: randint(0, 10, [n]),
    about: { attack: "square:queries=5", rows: `rows ${start}..${start + n - 1}` },
  };
  saveReplaySet(file, set);
  for (const t of [set.clean, set.adversarial, set.labels]) t.dispose();
}

test("train purifier: --replay mixes several replay sets into the batches and records each file", () => {
  const a = join(dir, "replay-a.safetensors");
  const b = join(dir, "replay-b.safetensors");
  writeReplay(a, 6, 0);
  writeReplay(b, 5, 6);
  const out = join(dir, "replayed.safetensors");
  const r = train(
    ...tinyRun(out, "32"),
    "--replay",
    `${a},${b}`,
    "--replay-batch",
    "4",
    "--val-attack-samples",
    "0",
    "--quiet",
  );
  assert.equal(r.status, 0, r.stderr);
  const saved = loadSafetensors(out);
  const info = JSON.parse(saved.metadata.info);
  assert.equal(info.replay.attack, "square:queries=5", "what the sets share is kept once");
  assert.equal(info.replay.rows, "rows 0..5; rows 6..10");
  assert.equal(info.replay.file, "replay-a.safetensors; replay-b.safetensors");
  assert.match(info.replay.sha256, /^[0-9a-f]{12}; [0-9a-f]{12}$/);
  assert.equal(info.replay.images, undefined);
  assert.equal(info.replay.rowsPerBatch, 4);
  const history = JSON.parse(saved.metadata.training).history;
  assert.ok(history[0].train.replayAcc >= 0 && history[0].train.replayAcc <= 1);
  for (const t of saved.tensors.values()) t.dispose();
});

test("train purifier: a tiny run from the paper's VAE leaves the classifier file untouched and records what it was trained for, validation split included", () => {
  const out = join(dir, "tiny.safetensors");
  const sha = () => createHash("sha256").update(readFileSync(files.mlp)).digest("hex");
  const beforeSha = sha();
  const r = train(
    ...tinyRun(out, "64"),
    "--eps-ramp",
    "0",
    "--eot",
    "2",
    "--val-attack-samples",
    "16",
    "--val-attack-steps",
    "1",
    "--seed",
    "3",
    "--quiet",
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /trained with fgsm-rs:alpha=1.25 at eps 0.1 in front of the frozen mlp \(weights unchanged\)/);
  assert.equal(sha(), beforeSha);
  const saved = loadSafetensors(out);
  const info = JSON.parse(saved.metadata.info);
  assert.equal(info.kind, "purifier");
  assert.equal(info.classifierArch, "mlp");
  assert.equal(info.classifierSha256, beforeSha);
  assert.match(info.init, /^vae\.safetensors/);
  // --seed 3 draws the training noise; the held-out images stay those of --split-seed (default 0).
  assert.equal(info.seed, 3);
  assert.match(info.validation, /validation split of 32\/\d+ \(seed 0\)/);
  const history = JSON.parse(saved.metadata.training).history;
  assert.equal(history.length, 1);
  assert.ok("pgd1Acc" in history[0].validation && "cleanAcc" in history[0].validation);
  for (const t of saved.tensors.values()) t.dispose();
});

test("train purifier: without --quiet the run shows its progress bar, as the other trainers do", () => {
  const r = train(...tinyRun(join(dir, "progress.safetensors"), "32"), "--val-attack-samples", "0");
  assert.equal(r.status, 0, r.stderr);
  // The bar's line (stderr is not a terminal here, so it is written as plain lines); it was never shown before.
  assert.match(r.stderr, /purifier epoch 1\/1: 32\/32 images \(100%\)/);
});

test("train purifier: --lr-milestones lowers the learning rate as for the other trainers (it was ignored before)", () => {
  const args = [...tinyRun(join(dir, "milestones.safetensors"), "32"), "--val-attack-samples", "0"];
  const r = train(...args.map((a, i) => (args[i - 1] === "--epochs" ? "2" : a)), "--lr-milestones", "1");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /purifier epoch 1\/2: .*lr 1\.0e-3/);
  assert.match(r.stderr, /purifier epoch 2\/2: .*lr 1\.0e-4/);
});
