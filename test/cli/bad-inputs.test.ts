/**
 * The bad-input corpus (test/fixtures/bad-inputs, made by make.ts there): every
 * case ends with one line naming the problem, the documented exit code, and
 * nothing written. The CLI cases run the real program; the library cases call
 * the loaders directly, since building a whole run around them would only add time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CheckpointError, DataError, VaeguardError } from "../../src/core/errors.js";
import { memory } from "../../src/core/engine.js";
import { loadCheckpoint } from "../../src/models/checkpoint.js";
import { loadSafetensors } from "../../src/io/safetensors.js";
import { loadTfjsLayersModel } from "../../src/models/tfjs.js";
import { loadMnist } from "../../src/data/mnist.js";
import { decodeImage } from "../../src/data/image-folder.js";

const bin = join(process.cwd(), "bin", "vaeguard.js");
const corpus = join(process.cwd(), "test", "fixtures", "bad-inputs");
const at = (name: string) => join(corpus, name);

/** Files under `dir` (recursively); [] when it does not exist. */
function filesIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

test("bad CLI input: one line, the exit code, nothing written", () => {
  const tmp = mkdtempSync(join(tmpdir(), "vaeguard-bad-"));
  const aFile = join(tmp, "a-file");
  writeFileSync(aFile, "x");
  const out = join(tmp, "out");
  const ck = join(out, "clf.safetensors");
  const train = ["train", "classifier", "--dataset", "mnist", "--epochs", "1", "--train-samples", "50"];
  const evaluate = ["evaluate", "--samples", "4", "--out", out];
  const cases: [string, string[], number, RegExp][] = [
    [
      "truncated IDX",
      [...train, "--data-dir", at("idx-truncated"), "--out", ck],
      2,
      /idx-truncated.*train-images-idx3-ubyte: .*/,
    ],
    [
      "IDX of a wrong type",
      [...train, "--data-dir", at("idx-wrong-type"), "--out", ck],
      2,
      /idx-wrong-type.*train-images-idx3-ubyte: /,
    ],
    [
      "--out in a folder nobody may write",
      [...train, "--out", "/sys/vaeguard-test/clf.safetensors"],
      2,
      /^vaeguard: error: \/sys\/vaeguard-test: cannot write the checkpoint here: .* \((EPERM|EACCES|EROFS)\)$/,
    ],
    [
      "--out below a regular file",
      [...train, "--out", join(aFile, "clf.safetensors")],
      2,
      /^vaeguard: error: .*a-file: cannot write the checkpoint here: .*\(ENOTDIR\)|is a file, not a folder$/,
    ],
    [
      "--out is a folder",
      [...train, "--out", tmp],
      2,
      /cannot write the checkpoint here: it exists and is not a regular file$/,
    ],
    [
      "--out under /proc (used to loop forever)",
      ["reproduce", "mnist", "--quick", "--out", "/proc/vaeguard-x/y"],
      2,
      /^vaeguard: error: \/proc\/vaeguard-x\/y: cannot write the report here: no such file or folder \(ENOENT\)$/,
    ],
    [
      "--threads 1000",
      [...train, "--out", ck, "--threads", "1000"],
      2,
      /Expected integer between 1 and \d+ for --threads but received 1000 \(at most 4 threads per core, \d+ cores\)/,
    ],
    [
      "--threads 1000000 (used to hang the machine)",
      [...evaluate, "--classifier", at("vae-ok.safetensors"), "--threads", "1000000"],
      2,
      /for --threads but received 1000000/,
    ],
    [
      "--epochs 1e12",
      [...train, "--out", ck, "--epochs", "1000000000000"],
      2,
      /Expected integer between 1 and 100000 for epochs/,
    ],
    [
      "pgd:steps=1e15 (used to run forever)",
      [...evaluate, "--classifier", at("vae-ok.safetensors"), "--attacks", "pgd:steps=1e15"],
      2,
      /Expected integer between 1 and 100000 for steps but received 1000000000000000 \(in attack spec "pgd:steps=1e15"\)$/,
    ],
    [
      "--eot 1e6",
      [...evaluate, "--classifier", at("vae-ok.safetensors"), "--eot", "1000000"],
      2,
      /between 1 and 10000 for --eot/,
    ],
    [
      "a missing classifier",
      [...evaluate, "--classifier", join(tmp, "none.safetensors")],
      2,
      /none\.safetensors: cannot read the classifier checkpoint: no such file or folder \(ENOENT\)$/,
    ],
    [
      "a safetensors header claiming 1 TB",
      [...evaluate, "--classifier", at("safetensors-huge-header.safetensors")],
      2,
      /safetensors-huge-header\.safetensors: /,
    ],
    [
      "a classifier with NaN weights",
      [...evaluate, "--classifier", at("vae-nan-weights.safetensors")],
      2,
      /vae-nan-weights\.safetensors: tensor '.*bias' holds NaN values; the model would be meaningless$/,
    ],
    [
      "a classifier with int32 weights",
      [...evaluate, "--classifier", at("vae-int32-weights.safetensors")],
      2,
      /vae-int32-weights\.safetensors: tensor '.*' is int32 but architecture 'conv-vae' needs float32$/,
    ],
    [
      "an unknown architecture",
      [...evaluate, "--classifier", at("vae-unknown-arch.safetensors")],
      2,
      /names the architecture "resnet-9000", which vaeguard does not know \(known: .*conv-vae.*\)$/,
    ],
    [
      "a config whose path leaves its folder",
      ["evaluate", "--config", at("config-escaping-path.yaml"), "--out", out],
      2,
      /which lies outside the config file's folder .*; give it on the command line \(--classifier\) instead$/,
    ],
  ];
  try {
    for (const [label, args, code, message] of cases) {
      const r = spawnSync(process.execPath, [bin, ...args], {
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, VAEGUARD_THREADS: "1" },
      });
      const lines = r.stderr.trim().split("\n");
      assert.equal(r.signal, null, `${label}: killed by ${r.signal}`);
      assert.equal(r.status, code, `${label}: exit ${r.status}\n${r.stderr}`);
      assert.equal(lines.length, 1, `${label}: ${lines.length} lines on stderr\n${r.stderr}`);
      assert.match(lines[0], /^vaeguard: error: /, label);
      assert.match(lines[0], message, label);
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${label}: a stack trace`);
      assert.deepEqual(filesIn(out), [], `${label}: wrote files`);
      assert.deepEqual(filesIn(tmp).sort(), [aFile], `${label}: wrote files next to the output`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("--debug prints the stack trace; without it, one line", () => {
  const args = [bin, "evaluate", "--classifier", at("vae-unknown-arch.safetensors"), "--samples", "2"];
  const quiet = spawnSync(process.execPath, args, { encoding: "utf8", env: { ...process.env, VAEGUARD_THREADS: "1" } });
  const debug = spawnSync(process.execPath, [...args, "--debug"], {
    encoding: "utf8",
    env: { ...process.env, VAEGUARD_THREADS: "1" },
  });
  assert.equal(quiet.status, 2);
  assert.equal(debug.status, 2);
  assert.equal(quiet.stderr.trim().split("\n").length, 1);
  assert.match(debug.stderr, /^vaeguard: error: .*\nCheckpointError: .*\n\s+at /);
});

test("bad files through the library: the error class, the message naming the file, no tensor left", async () => {
  const start = memory().numTensors;
  const cases: [string, () => unknown, new (...a: never[]) => VaeguardError, RegExp][] = [
    [
      "truncated IDX",
      () => loadMnist({ split: "train", dataDir: at("idx-truncated") }),
      DataError,
      /train-images-idx3-ubyte: /,
    ],
    [
      "safetensors header length of 1 TB",
      () => loadSafetensors(at("safetensors-huge-header.safetensors")),
      VaeguardError,
      /safetensors-huge-header\.safetensors: /,
    ],
    [
      "safetensors header that is not JSON",
      () => loadSafetensors(at("safetensors-bad-json.safetensors")),
      VaeguardError,
      /safetensors-bad-json\.safetensors: /,
    ],
    [
      "safetensors offsets past the end",
      () => loadSafetensors(at("safetensors-offsets-outside.safetensors")),
      VaeguardError,
      /safetensors-offsets-outside\.safetensors: /,
    ],
    ["NaN weights", () => loadCheckpoint(at("vae-nan-weights.safetensors")), CheckpointError, /holds NaN values/],
    [
      "int32 weights",
      () => loadCheckpoint(at("vae-int32-weights.safetensors")),
      CheckpointError,
      /is int32 but architecture 'conv-vae' needs float32/,
    ],
    [
      "unknown architecture",
      () => loadCheckpoint(at("vae-unknown-arch.safetensors")),
      CheckpointError,
      /"resnet-9000", which vaeguard does not know/,
    ],
    [
      "a config the architecture cannot use",
      () => loadCheckpoint(at("vae-bad-config.safetensors")),
      CheckpointError,
      /vae-bad-config\.safetensors: its 'config' metadata does not describe a valid 'conv-vae' model/,
    ],
    [
      "model.json that is not JSON",
      () => loadTfjsLayersModel(at("model-json-not-json.json")),
      CheckpointError,
      /model-json-not-json\.json: is not valid JSON/,
    ],
    [
      "model.json declaring a 9000x9000 input (refused before allocation)",
      () => loadTfjsLayersModel(at("model-json-huge-input.json")),
      CheckpointError,
      /model-json-huge-input\.json: the model input \[3, 9000, 9000\] .* needs 972000000 bytes per image, more than the limit of 268435456$/,
    ],
    [
      "model.json whose shard path leaves its folder",
      () => loadTfjsLayersModel(at("model-json-escaping-shard.json")),
      CheckpointError,
      /model-json-escaping-shard\.json: weight shard '\.\.\/escape\.bin' (lies outside the model folder|not found)/,
    ],
  ];
  for (const [label, fn, cls, message] of cases) {
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof cls, `${label}: ${String(e)}`);
      assert.match((e as Error).message, message, label);
      assert.doesNotMatch((e as Error).message, /\n/, `${label}: more than one line`);
      return true;
    });
  }
  await assert.rejects(decodeImage(at("bomb.png"), [8, 8]), (e: unknown) => {
    assert.ok(e instanceof DataError, String(e));
    assert.match((e as Error).message, /bomb\.png: cannot be decoded as an image: .*pixel limit/);
    return true;
  });
  // The committed good checkpoint loads: the refusals above are about the damage, not the file family.
  loadCheckpoint(at("vae-ok.safetensors")).model.dispose();
  assert.equal(memory().numTensors, start);
});
