/** loadClassifierFile: one loader for every --model / --classifier file, with resizing and label maps. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CheckpointError, DataError } from "../../src/core/errors.js";
import { classifierFormat, loadClassifierFile } from "../../src/models/load-classifier.js";
import { ResizedClassifier } from "../../src/models/resized-classifier.js";
import { TfliteClassifier } from "../../src/models/tflite/model.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import { saveCheckpoint } from "../../src/models/checkpoint.js";

const fixture = fileURLToPath(new URL("../../../test/fixtures/tflite/ops-uint8.tflite", import.meta.url));

test("formats are told apart by extension", () => {
  assert.equal(classifierFormat("m.tflite"), "tflite");
  assert.equal(classifierFormat("m.TFLITE"), "tflite");
  assert.equal(classifierFormat("m.pt"), "torchscript");
  assert.equal(classifierFormat("clf.safetensors"), "checkpoint");
  assert.equal(classifierFormat("model.json"), "tfjs");
});

test("a .tflite file loads as is, or wrapped to take images of another size", () => {
  const plain = loadClassifierFile(fixture);
  assert.equal(plain.format, "tflite");
  assert.ok(plain.classifier instanceof TfliteClassifier);
  assert.match(
    plain.description,
    /TFLite model .*ops-uint8\.tflite: 10 operators, 240 parameters \(quantised, run in float32\), input 3x9x9, input UINT8 scale 0\.0078125 zero point 128, 8 classes \(logits before its softmax\)/,
  );
  assert.deepEqual(plain.classNames, ["0", "1", "2", "3", "4", "5", "6", "7"]);
  plain.classifier.dispose?.();
  const big = loadClassifierFile(fixture, { imageSize: 15 });
  assert.ok(big.classifier instanceof ResizedClassifier);
  assert.deepEqual(big.classifier.inputShape, [3, 15, 15]);
  assert.match(big.description, /takes 15x15 images, resized to 9x9 inside the model \(bilinear\)/);
  big.classifier.dispose?.();
});

test("class names come from a labels file with one line per class", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-clf-"));
  try {
    writeFileSync(join(dir, "labels.txt"), "a\nb\nc\nd\ne\nf\ng\nh\n");
    const m = loadClassifierFile(fixture, { labelsFile: join(dir, "labels.txt") });
    assert.deepEqual(m.classNames, ["a", "b", "c", "d", "e", "f", "g", "h"]);
    m.classifier.dispose?.();
    writeFileSync(join(dir, "short.txt"), "a\nb\n");
    assert.throws(() => loadClassifierFile(fixture, { labelsFile: join(dir, "short.txt") }), DataError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("vaeguard checkpoints load as classifiers; missing files are named", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-clf-"));
  try {
    const cnn = new MnistCnn();
    saveCheckpoint(join(dir, "clf.safetensors"), cnn);
    cnn.dispose();
    const m = loadClassifierFile(join(dir, "clf.safetensors"));
    assert.equal(m.format, "checkpoint");
    assert.equal(m.classifier.numClasses, 10);
    m.classifier.dispose?.();
    assert.throws(
      () => loadClassifierFile(join(dir, "nope.tflite")),
      (e: unknown) => e instanceof CheckpointError && /nope\.tflite: file not found/.test((e as Error).message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
