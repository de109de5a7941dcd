import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import {
  CIFAR10_FOLDER_LABEL_SOURCE,
  isCifar10ClassFolders,
  loadCifar10Auto,
  loadCifar10ClassFolders,
} from "../../src/data/cifar10-folders.js";
import { dispose, memory } from "../../src/core/engine.js";
import { DataError } from "../../src/core/errors.js";
import { CIFAR10_CLASSES, CIFAR10_TEST_FILES, CIFAR10_TRAIN_FILES, writeCifarBatch } from "../../src/io/cifar.js";

// Compiled, this file lives in dist/test/data/; the fixture stays in test/fixtures/.
const FIXTURE = fileURLToPath(new URL("../../../test/fixtures/cifar10-folders", import.meta.url));

/** A scratch copy of the fixture (tests change it), removed afterwards; also checks that no tensor leaks. */
function withCopy(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const before = memory().numTensors;
    const dir = mkdtempSync(join(tmpdir(), "vaeguard-cifar-folders-"));
    try {
      cpSync(join(FIXTURE, "train"), join(dir, "train"), { recursive: true });
      cpSync(join(FIXTURE, "test"), join(dir, "test"), { recursive: true });
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(memory().numTensors, before, "tensors leaked");
  };
}

/** Expect a DataError whose one-line message matches every pattern. */
async function rejectsWith(p: Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof DataError, `expected a DataError, got ${String(e)}`);
    assert.ok(!e.message.includes("\n"), `message is not one line: ${e.message}`);
    for (const re of patterns) assert.match(e.message, re);
    return true;
  });
}

const pixel = (c: number, y: number, x: number) => (c * 90 + y * 5 + x * 3) % 256;

/** A lossless 32x32 image with known pixels, as PNG (HWC order on disk). */
async function writeKnownPng(file: string): Promise<void> {
  const rgb = Buffer.alloc(32 * 32 * 3);
  for (let y = 0; y < 32; y++)
    for (let x = 0; x < 32; x++) for (let c = 0; c < 3; c++) rgb[(y * 32 + x) * 3 + c] = pixel(c, y, x);
  await sharp(rgb, { raw: { width: 32, height: 32, channels: 3 } })
    .png()
    .toFile(file);
}

test(
  "the fixture loads with CIFAR-10's class order, dealt round-robin, and says it is the JPEG copy",
  withCopy(async (dir) => {
    assert.equal(isCifar10ClassFolders(dir), true);
    const testSet = await loadCifar10ClassFolders({ split: "test", dataDir: dir });
    const trainSet = await loadCifar10ClassFolders({ split: "train", dataDir: dir });
    try {
      assert.deepEqual(testSet.images.shape, [10, 3, 32, 32]);
      assert.deepEqual(testSet.labels.toArray(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      assert.deepEqual(testSet.classNames, [...CIFAR10_CLASSES]);
      assert.equal(testSet.name, "cifar10");
      assert.equal(testSet.split, "test");
      assert.ok(testSet.source.startsWith(CIFAR10_FOLDER_LABEL_SOURCE), testSet.source);
      assert.deepEqual(trainSet.images.shape, [20, 3, 32, 32]);
      assert.deepEqual(
        trainSet.labels.toArray(),
        [...Array(20).keys()].map((i) => i % 10),
      );
      const px = trainSet.images.dataSync() as Float32Array;
      assert.ok(px.every((v) => v >= 0 && v <= 1));
    } finally {
      dispose([testSet, trainSet]);
    }
  }),
);

test(
  "pixels come out in (C, H, W) order scaled by 1/255, and a limit keeps the first images",
  withCopy(async (dir) => {
    rmSync(join(dir, "test", "bird", "0000.jpg"));
    await writeKnownPng(join(dir, "test", "bird", "0000.png"));
    const ds = await loadCifar10ClassFolders({ split: "test", dataDir: dir, limit: 3 });
    try {
      assert.deepEqual(ds.images.shape, [3, 3, 32, 32]);
      assert.deepEqual(ds.labels.toArray(), [0, 1, 2]);
      assert.match(ds.source, /first 3/);
      const data = ds.images.dataSync() as Float32Array;
      for (const [c, y, x] of [
        [0, 0, 0],
        [1, 2, 30],
        [2, 31, 7],
      ]) {
        assert.equal(Math.round(data[2 * 3072 + c * 1024 + y * 32 + x] * 255), pixel(c, y, x), `pixel ${c},${y},${x}`);
      }
    } finally {
      dispose(ds);
    }
  }),
);

test(
  "files without leading zeros keep their numeric order",
  withCopy(async (dir) => {
    const before = await loadCifar10ClassFolders({ split: "train", dataDir: dir });
    for (const c of CIFAR10_CLASSES) {
      renameSync(join(dir, "train", c, "0000.jpg"), join(dir, "train", c, "2.jpg"));
      renameSync(join(dir, "train", c, "0001.jpg"), join(dir, "train", c, "10.jpg"));
    }
    const after = await loadCifar10ClassFolders({ split: "train", dataDir: dir });
    try {
      assert.deepEqual(
        Array.from(after.images.dataSync() as Float32Array),
        Array.from(before.images.dataSync() as Float32Array),
      );
    } finally {
      dispose([before, after]);
    }
  }),
);

test(
  "unknown class folders are named in one line",
  withCopy(async (dir) => {
    mkdirSync(join(dir, "test", "kitten"));
    mkdirSync(join(dir, "test", "plane"));
    await rejectsWith(
      loadCifar10ClassFolders({ split: "test", dataDir: dir }),
      /"kitten", "plane"/,
      /airplane, automobile/,
    );
  }),
);

test(
  "a missing class folder or split is named",
  withCopy(async (dir) => {
    rmSync(join(dir, "test", "truck"), { recursive: true });
    await rejectsWith(loadCifar10ClassFolders({ split: "test", dataDir: dir }), /"truck" missing/);
    rmSync(join(dir, "train"), { recursive: true });
    await rejectsWith(loadCifar10ClassFolders({ split: "train", dataDir: dir }), /train: not found/, /train\/<class>/);
  }),
);

test(
  "unequal counts per class mean an incomplete copy",
  withCopy(async (dir) => {
    cpSync(join(dir, "train", "cat", "0000.jpg"), join(dir, "train", "cat", "0002.jpg"));
    await rejectsWith(
      loadCifar10ClassFolders({ split: "train", dataDir: dir }),
      /cat 3, deer 2/,
      /5000 per class in train: the copy is incomplete/,
    );
  }),
);

test(
  "an image that is not 32x32 RGB, a non-image file and an undecodable file are each named",
  withCopy(async (dir) => {
    const target = join(dir, "test", "dog", "0000.jpg");
    await sharp({ create: { width: 16, height: 32, channels: 3, background: "#808080" } })
      .jpeg()
      .toFile(target);
    await rejectsWith(loadCifar10ClassFolders({ split: "test", dataDir: dir }), /dog\/0000\.jpg: is 16x32 with 3/);
    await sharp(Buffer.alloc(32 * 32, 7), { raw: { width: 32, height: 32, channels: 1 } })
      .toColourspace("b-w")
      .png()
      .toFile(join(dir, "grey.png"));
    rmSync(target);
    renameSync(join(dir, "grey.png"), join(dir, "test", "dog", "0000.png"));
    await rejectsWith(loadCifar10ClassFolders({ split: "test", dataDir: dir }), /0000\.png: is 32x32 with 1 channel/);
    rmSync(join(dir, "test", "dog", "0000.png"));
    writeFileSync(join(dir, "test", "dog", "0000.jpg"), "not a jpeg");
    await rejectsWith(loadCifar10ClassFolders({ split: "test", dataDir: dir }), /dog\/0000\.jpg: cannot be decoded/);
    writeFileSync(join(dir, "test", "dog", "notes.txt"), "x");
    await rejectsWith(loadCifar10ClassFolders({ split: "test", dataDir: dir }), /notes\.txt: is not an image file/);
  }),
);

test(
  "the decoded-bytes cache is used, rebuilt when damaged, and keyed by the files",
  withCopy(async (dir) => {
    const cacheDir = join(dir, "cache");
    const load = async () => {
      const ds = await loadCifar10ClassFolders({ split: "test", dataDir: dir, cacheDir, cacheMinImages: 1 });
      try {
        return Array.from(ds.images.dataSync() as Float32Array);
      } finally {
        dispose(ds);
      }
    };
    const first = await load();
    const files = readdirSync(cacheDir);
    assert.equal(files.length, 1);
    assert.match(files[0], /^cifar10-folders-test-[0-9a-f]{16}\.safetensors$/);
    const cacheFile = join(cacheDir, files[0]);

    // A cache hit: a marked pixel in the cache comes back (the JPEGs are not decoded again).
    const bytes = readFileSync(cacheFile);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as {
      pixels: { data_offsets: [number, number] };
    };
    const firstPixel = 8 + headerLength + header.pixels.data_offsets[0];
    bytes[firstPixel] = 255 - bytes[firstPixel];
    writeFileSync(cacheFile, bytes);
    const marked = await load();
    assert.equal(Math.round(marked[0] * 255), 255 - Math.round(first[0] * 255));

    // A damaged cache is rebuilt from the images.
    writeFileSync(cacheFile, bytes.subarray(0, 100));
    assert.deepEqual(await load(), first);

    // Another file list makes another cache.
    cpSync(join(dir, "test", "cat", "0000.jpg"), join(dir, "test", "cat", "0000.jpeg"));
    rmSync(join(dir, "test", "cat", "0000.jpg"));
    await load();
    assert.equal(readdirSync(cacheDir).length, 2);
  }),
);

test(
  "loadCifar10Auto reads either layout and names both when it finds neither",
  withCopy(async (dir) => {
    const folders = await loadCifar10Auto({ split: "test", dataDir: dir });
    const binDir = join(dir, "bin", "cifar-10-batches-bin");
    mkdirSync(binDir, { recursive: true });
    for (const f of [...CIFAR10_TRAIN_FILES, ...CIFAR10_TEST_FILES]) {
      writeCifarBatch(join(binDir, f), { images: new Uint8Array(2 * 3072).fill(200), labels: [3, 4] });
    }
    const binary = await loadCifar10Auto({ split: "test", dataDir: join(dir, "bin") });
    try {
      assert.ok(folders.source.startsWith(CIFAR10_FOLDER_LABEL_SOURCE));
      assert.match(binary.source, /^CIFAR-10 binary: /);
      assert.deepEqual(binary.labels.toArray(), [3, 4]);
    } finally {
      dispose([folders, binary]);
    }
    mkdirSync(join(dir, "empty"));
    await rejectsWith(
      loadCifar10Auto({ split: "test", dataDir: join(dir, "empty") }),
      /data_batch_1\.bin/,
      /train\/<class>\//,
    );
  }),
);
