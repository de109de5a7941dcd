/**
 * The binary version of CIFAR-10 (https://www.cs.toronto.edu/~kriz/cifar.html,
 * cifar-10-binary.tar.gz): files of 3073-byte records, each one label byte
 * (0..9) followed by the 32x32 red plane, then green, then blue, every plane
 * row-major. A record is therefore already in (C, H, W) order.
 */
import { ArgumentError, DataError } from "../core/errors.js";
import { writeFileAtomic } from "./atomic.js";
import { readFileOr } from "./read-file.js";

export const CIFAR10_CLASSES: readonly string[] = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
];
export const CIFAR10_TRAIN_FILES: readonly string[] = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const CIFAR10_TEST_FILES: readonly string[] = ["test_batch.bin"];
export const CIFAR10_IMAGE_BYTES = 3 * 32 * 32;
export const CIFAR10_RECORD_BYTES = 1 + CIFAR10_IMAGE_BYTES;

export interface CifarBatch {
  /** count * 3 * 32 * 32 bytes, in (N, C, H, W) order. */
  images: Uint8Array;
  /** count labels, 0..9. */
  labels: Uint8Array;
  count: number;
}

/** Parse one CIFAR-10 binary batch. `source` names the file in error messages. */
export function decodeCifarBatch(bytes: Uint8Array, source = "<bytes>"): CifarBatch {
  if (bytes.byteLength === 0) throw new DataError(source, "is empty; download the CIFAR-10 binary version again");
  if (bytes.byteLength % CIFAR10_RECORD_BYTES !== 0) {
    const whole = Math.floor(bytes.byteLength / CIFAR10_RECORD_BYTES);
    throw new DataError(
      source,
      `is ${bytes.byteLength} bytes, not a multiple of the ${CIFAR10_RECORD_BYTES}-byte record size ` +
        `(${whole} whole records and ${bytes.byteLength % CIFAR10_RECORD_BYTES} stray bytes): the file is truncated ` +
        `or not from the binary version of CIFAR-10 (cifar-10-binary.tar.gz); download it again`,
    );
  }
  const count = bytes.byteLength / CIFAR10_RECORD_BYTES;
  const images = new Uint8Array(count * CIFAR10_IMAGE_BYTES);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const at = i * CIFAR10_RECORD_BYTES;
    const label = bytes[at];
    if (label >= CIFAR10_CLASSES.length) {
      throw new DataError(
        source,
        `record ${i} (byte ${at}) has label ${label} but CIFAR-10 labels are 0..9: the file is damaged ` +
          `or is not CIFAR-10 (CIFAR-100 records have 2 label bytes)`,
      );
    }
    labels[i] = label;
    images.set(bytes.subarray(at + 1, at + CIFAR10_RECORD_BYTES), i * CIFAR10_IMAGE_BYTES);
  }
  return { images, labels, count };
}

/** Serialise images (N*3*32*32 bytes in (N, C, H, W) order) and labels to the binary record format. */
export function encodeCifarBatch(batch: { images: Uint8Array; labels: Uint8Array | readonly number[] }): Uint8Array {
  const n = batch.labels.length;
  if (batch.images.byteLength !== n * CIFAR10_IMAGE_BYTES) {
    throw new ArgumentError(
      `CIFAR-10: ${n} labels need ${n * CIFAR10_IMAGE_BYTES} image bytes but received ${batch.images.byteLength}`,
    );
  }
  const out = new Uint8Array(n * CIFAR10_RECORD_BYTES);
  for (let i = 0; i < n; i++) {
    const label = batch.labels[i];
    // Writing an invalid label is allowed on purpose: tests build damaged files with it.
    if (!Number.isInteger(label) || label < 0 || label > 255) {
      throw new ArgumentError(`Expected integer between 0 and 255 for labels[${i}] but received ${label}`);
    }
    out[i * CIFAR10_RECORD_BYTES] = label;
    out.set(
      batch.images.subarray(i * CIFAR10_IMAGE_BYTES, (i + 1) * CIFAR10_IMAGE_BYTES),
      i * CIFAR10_RECORD_BYTES + 1,
    );
  }
  return out;
}

export function readCifarBatch(path: string): CifarBatch {
  const bytes = readFileOr(
    path,
    (message, cause) =>
      new DataError(path, `${message}; get the binary version of CIFAR-10 (cifar-10-binary.tar.gz)`, { cause }),
  );
  return decodeCifarBatch(bytes, path);
}

export function writeCifarBatch(
  path: string,
  batch: { images: Uint8Array; labels: Uint8Array | readonly number[] },
): void {
  writeFileAtomic(path, encodeCifarBatch(batch));
}
