import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCifar10 } from "../../src/data/cifar10.js";
import { CIFAR10_CLASSES, CIFAR10_TRAIN_FILES, writeCifarBatch } from "../../src/io/cifar.js";
import { ArgumentError, DataError } from "../../src/core/errors.js";
import { dispose, memory } from "../../src/core/engine.js";

/** Pixel (channel c, row y, column x) of the example with global index g. */
const pixel = (g: number, c: number, y: number, x: number) => (g * 13 + c * 85 + y * 7 + x) % 256;

/** A fake CIFAR-10 folder: `perFile` records in each training batch, 3 in the test batch; label of example g is g % 10. */
function writeFixture(dir: string, perFile: number): void {
  mkdirSync(dir, { recursive: true });
  let g = 0;
  const files = [...CIFAR10_TRAIN_FILES, "test_batch.bin"];
  for (const f of files) {
    const n = f === "test_batch.bin" ? 3 : perFile;
    const images = new Uint8Array(n * 3072);
    const labels: number[] = [];
    for (let i = 0; i < n; i++, g++) {
      labels.push(g % 10);
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < 32; y++)
          for (let x = 0; x < 32; x++) images[i * 3072 + c * 1024 + y * 32 + x] = pixel(g, c, y, x);
      }
    }
    writeCifarBatch(join(dir, f), { images, labels });
  }
}

function inTmp(fn: (dir: string) => void): () => void {
  return () => {
    const before = memory().numTensors;
    const dir = mkdtempSync(join(tmpdir(), "vaeguard-cifar10-"));
    try {
      fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(memory().numTensors, before, "tensors leaked");
  };
}

test(
  "the training split concatenates the five batches in order with the right pixels",
  inTmp((dir) => {
    writeFixture(dir, 2);
    const ds = loadCifar10({ split: "train", dataDir: dir });
    try {
      assert.equal(ds.name, "cifar10");
      assert.deepEqual(ds.classNames, [...CIFAR10_CLASSES]);
      assert.deepEqual(ds.images.shape, [10, 3, 32, 32]);
      assert.deepEqual(ds.labels.toArray(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const data = ds.images.dataSync() as Float32Array;
      for (const [g, c, y, x] of [
        [0, 0, 0, 0],
        [3, 1, 2, 30],
        [9, 2, 31, 31],
        [6, 0, 17, 4],
      ]) {
        const v = data[g * 3072 + c * 1024 + y * 32 + x];
        assert.equal(v, Math.fround(pixel(g, c, y, x) / 255), `pixel ${[g, c, y, x]}`);
      }
      assert.match(ds.source, /data_batch_1\.bin, .*data_batch_5\.bin$/);
    } finally {
      dispose(ds);
    }
  }),
);

test(
  "the test split, the archive's own folder name, and the limit option",
  inTmp((dir) => {
    writeFixture(join(dir, "cifar-10-batches-bin"), 2);
    const testSet = loadCifar10({ split: "test", dataDir: dir });
    assert.deepEqual(
      testSet.labels.toArray(),
      [0, 1, 2],
      "test examples come after the 10 training ones: g = 10, 11, 12",
    );
    assert.deepEqual(testSet.images.shape, [3, 3, 32, 32]);
    dispose(testSet);

    const firstThree = loadCifar10({ split: "train", dataDir: dir, limit: 3 });
    assert.deepEqual(firstThree.labels.toArray(), [0, 1, 2]);
    assert.match(
      firstThree.source,
      /data_batch_1\.bin, .*data_batch_2\.bin \(first 3\)$/,
      "stops reading once it has enough",
    );
    dispose(firstThree);
  }),
);

test(
  "missing, truncated and mislabelled files give DataError naming the file",
  inTmp((dir) => {
    assert.throws(() => loadCifar10({ split: "train" }), ArgumentError);
    assert.throws(
      () => loadCifar10({ split: "train", dataDir: dir }),
      (e: unknown) =>
        e instanceof DataError &&
        e.file === join(dir, "data_batch_1.bin") &&
        /CIFAR-10 train file not found \(nor .*data_batch_5\.bin\)/.test(e.message),
    );
    writeFixture(dir, 2);
    writeFileSync(join(dir, "data_batch_3.bin"), new Uint8Array(3073 + 100));
    assert.throws(
      () => loadCifar10({ split: "train", dataDir: dir }),
      (e: unknown) =>
        e instanceof DataError &&
        e.file === join(dir, "data_batch_3.bin") &&
        /not a multiple of the 3073-byte record size/.test(e.message),
    );
    const bad = new Uint8Array(3073);
    bad[0] = 10;
    writeFileSync(join(dir, "test_batch.bin"), bad);
    assert.throws(
      () => loadCifar10({ split: "test", dataDir: dir }),
      /test_batch\.bin: record 0 \(byte 0\) has label 10/,
    );
  }),
);
