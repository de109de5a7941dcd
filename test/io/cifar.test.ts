import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CIFAR10_CLASSES,
  CIFAR10_RECORD_BYTES,
  decodeCifarBatch,
  encodeCifarBatch,
  readCifarBatch,
  writeCifarBatch,
} from "../../src/io/cifar.js";
import { DataError } from "../../src/core/errors.js";

/** The value of pixel (channel c, row y, column x) of record r in these fixtures. */
const pixel = (r: number, c: number, y: number, x: number) => (r * 31 + c * 100 + y * 3 + x) % 256;

/** Records written exactly as the format describes: label byte, then red, green, blue planes, each row-major. */
function handMadeRecords(labels: number[]): Uint8Array {
  const out = new Uint8Array(labels.length * 3073);
  labels.forEach((label, r) => {
    const at = r * 3073;
    out[at] = label;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) out[at + 1 + c * 1024 + y * 32 + x] = pixel(r, c, y, x);
      }
    }
  });
  return out;
}

function throwsData(fn: () => unknown, file: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.match(e.message, pattern);
    return true;
  });
}

test("ten classes in the official order", () => {
  assert.equal(CIFAR10_CLASSES.length, 10);
  assert.equal(CIFAR10_CLASSES[0], "airplane");
  assert.equal(CIFAR10_CLASSES[9], "truck");
  assert.equal(CIFAR10_RECORD_BYTES, 3073);
});

test("records decode to labels and (C, H, W) pixels in the right order", () => {
  const batch = decodeCifarBatch(handMadeRecords([3, 0, 9]));
  assert.equal(batch.count, 3);
  assert.deepEqual([...batch.labels], [3, 0, 9]);
  assert.equal(batch.images.length, 3 * 3072);
  for (const [r, c, y, x] of [
    [0, 0, 0, 0],
    [0, 0, 0, 31],
    [1, 1, 5, 7],
    [2, 2, 31, 31],
    [2, 0, 31, 0],
  ]) {
    assert.equal(batch.images[r * 3072 + c * 1024 + y * 32 + x], pixel(r, c, y, x), `pixel ${[r, c, y, x]}`);
  }
  // The writer produces exactly the hand-made bytes.
  assert.deepEqual(encodeCifarBatch(batch), handMadeRecords([3, 0, 9]));
});

test("a truncated record, a label of 10 and a missing file give DataError naming the file", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-cifar-"));
  try {
    const truncated = join(dir, "data_batch_1.bin");
    writeFileSync(truncated, handMadeRecords([1, 2]).subarray(0, 2 * 3073 - 5));
    throwsData(
      () => readCifarBatch(truncated),
      truncated,
      /is 6141 bytes, not a multiple of the 3073-byte record size \(1 whole records and 3068 stray bytes\)/,
    );

    const badLabel = join(dir, "test_batch.bin");
    writeCifarBatch(badLabel, { images: new Uint8Array(2 * 3072), labels: [4, 10] });
    throwsData(
      () => readCifarBatch(badLabel),
      badLabel,
      /record 1 \(byte 3073\) has label 10 but CIFAR-10 labels are 0\.\.9/,
    );

    const empty = join(dir, "empty.bin");
    writeFileSync(empty, new Uint8Array(0));
    throwsData(() => readCifarBatch(empty), empty, /is empty/);

    const missing = join(dir, "data_batch_5.bin");
    throwsData(() => readCifarBatch(missing), missing, /file not found; get the binary version of CIFAR-10/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the writer checks its input", () => {
  assert.throws(
    () => encodeCifarBatch({ images: new Uint8Array(3072), labels: [1, 2] }),
    /2 labels need 6144 image bytes but received 3072/,
  );
  assert.throws(
    () => encodeCifarBatch({ images: new Uint8Array(3072), labels: [256] }),
    /between 0 and 255 for labels\[0\]/,
  );
});
