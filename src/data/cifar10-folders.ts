/**
 * CIFAR-10 as class folders: `train/<class>/*.jpg|png` and `test/<class>/...`,
 * with CIFAR-10's ten class names (label i = CIFAR10_CLASSES[i]). This is the
 * shape of the copies published as image files, most of them re-encoded as
 * JPEG: their pixels are not the official ones, so everything made from them
 * says so (CIFAR10_FOLDER_LABEL_SOURCE).
 *
 * Every class folder of a split must hold the same number of images, at most
 * CIFAR-10's (5,000 per class in train, 1,000 in test): unequal counts mean an
 * incomplete copy. Every image must decode to 32x32 with 3 channels.
 *
 * Order: the copies lose the official interleaving of classes, so images are
 * dealt round-robin (image 0 of each class in class order, then image 1, ...),
 * with each class's files in numeric name order. The first N images are then a
 * class-balanced subset, which `limit`, `--samples` and quick runs rely on.
 *
 * Decoding 60,000 JPEGs takes about half a minute; with `cacheDir` the decoded
 * bytes of a whole split are kept in a safetensors file whose name is a hash of
 * the split's file names, sizes and modification times, so any change to the
 * folder makes a new cache rather than a stale one.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { extname, join, resolve } from "node:path";
import sharp from "sharp";
import { DataError } from "../core/errors.js";
import { checkInt } from "../core/validate.js";
import { writeFileAtomic } from "../io/atomic.js";
import { CIFAR10_CLASSES, CIFAR10_IMAGE_BYTES, CIFAR10_TEST_FILES, CIFAR10_TRAIN_FILES } from "../io/cifar.js";
import { loadCifar10 } from "./cifar10.js";
import { decodeSafetensors, encodeSafetensors } from "../io/safetensors.js";
import {
  applyLimit,
  checkSplit,
  datasetFromBytes,
  type ImageDataset,
  type LoadOptions,
  type Split,
} from "./dataset.js";

/** What reports name as the label source of data loaded from class folders. */
export const CIFAR10_FOLDER_LABEL_SOURCE =
  "CIFAR-10 lossy JPEG copy (class folders), a proxy for the official test set";

/** Images per class in the official data set. */
export const CIFAR10_PER_CLASS: Readonly<Record<Split, number>> = { train: 5000, test: 1000 };

const IMAGE_EXT = new Set([".jpg", ".jpeg", ".png"]);

export interface Cifar10FolderOptions extends LoadOptions {
  /** Folder for the decoded-bytes cache; none when absent. */
  cacheDir?: string;
  /** Cache only splits of at least this many images (default 5,000: smaller ones decode in moments). */
  cacheMinImages?: number;
  /** Images decoded at once (default 8). */
  concurrency?: number;
}

interface SplitIndex {
  dir: string;
  /** Files in dataset order (round-robin over classes) with their labels. */
  files: string[];
  labels: Uint8Array;
  perClass: number;
  key: string;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** True when `dataDir` looks like the class-folder layout (a train/ or test/ sub-folder). */
export function isCifar10ClassFolders(dataDir: string): boolean {
  return isDir(join(dataDir, "train")) || isDir(join(dataDir, "test"));
}

/** "2.jpg" before "10.jpg": copies number their files, not always with leading zeros. */
const byNumberedName = new Intl.Collator("en", { numeric: true });

const quoteList = (names: string[]) => names.map((n) => JSON.stringify(n)).join(", ");

/** List and check one split without decoding. */
export function indexCifar10Split(dataDir: string, split: Split): SplitIndex {
  const dir = resolve(dataDir, split);
  if (!isDir(dir)) {
    throw new DataError(
      dir,
      `not found; a CIFAR-10 class-folder copy holds train/<class>/ and test/<class>/ with the classes ${CIFAR10_CLASSES.join(", ")}`,
    );
  }
  const entries = readdirSync(dir)
    .filter((n) => !n.startsWith("."))
    .sort();
  const unknown = entries.filter((n) => !CIFAR10_CLASSES.includes(n) || !isDir(join(dir, n)));
  if (unknown.length > 0) {
    throw new DataError(
      dir,
      `unknown class folder${unknown.length > 1 ? "s" : ""} ${quoteList(unknown)}; CIFAR-10's classes are ${CIFAR10_CLASSES.join(", ")}`,
    );
  }
  const missing = CIFAR10_CLASSES.filter((c) => !entries.includes(c));
  if (missing.length > 0) {
    throw new DataError(
      dir,
      `class folder${missing.length > 1 ? "s" : ""} ${quoteList(missing)} missing; CIFAR-10 has ten classes`,
    );
  }
  const hash = createHash("sha256");
  hash.update(`cifar10-class-folders/1\n${split}\n`);
  const perClassFiles = CIFAR10_CLASSES.map((c) => {
    const classDir = join(dir, c);
    const names = readdirSync(classDir)
      .filter((n) => !n.startsWith("."))
      .sort(byNumberedName.compare);
    for (const n of names) {
      const p = join(classDir, n);
      const st = statSync(p);
      if (!st.isFile() || !IMAGE_EXT.has(extname(n).toLowerCase())) {
        throw new DataError(p, "is not an image file (a class folder holds only .jpg, .jpeg or .png files)");
      }
      hash.update(`${c}/${n}\t${st.size}\t${st.mtimeMs}\n`);
    }
    return names.map((n) => join(classDir, n));
  });
  const counts = perClassFiles.map((f) => f.length);
  const perClass = counts[0];
  const official = CIFAR10_PER_CLASS[split];
  if (counts.some((n) => n !== perClass) || perClass === 0) {
    throw new DataError(
      dir,
      `class folders hold unequal or no images (${CIFAR10_CLASSES.map((c, i) => `${c} ${counts[i]}`).join(", ")}); ` +
        `CIFAR-10 has ${official} per class in ${split}: the copy is incomplete`,
    );
  }
  if (perClass > official) {
    throw new DataError(dir, `holds ${perClass} images per class but CIFAR-10 has ${official} per class in ${split}`);
  }
  const files: string[] = [];
  const labels = new Uint8Array(perClass * CIFAR10_CLASSES.length);
  for (let i = 0; i < perClass; i++) {
    for (let c = 0; c < CIFAR10_CLASSES.length; c++) {
      labels[files.length] = c;
      files.push(perClassFiles[c][i]);
    }
  }
  return { dir, files, labels, perClass, key: hash.digest("hex").slice(0, 16) };
}

/** Decode one image to CIFAR-10's (C, H, W) byte order, checking that it is 32x32 with 3 channels. */
async function decodeCifarImage(file: string, out: Uint8Array, at: number): Promise<void> {
  let decoded: { data: Buffer; info: sharp.OutputInfo };
  let channels: number | undefined;
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new DataError(file, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      cause: e,
    });
  }
  try {
    // From bytes, not the file name: libvips caches decodes by file name, so a replaced file could come back stale.
    const image = sharp(bytes);
    // The stored channels: raw() would turn a grey image into three equal ones.
    channels = (await image.metadata()).channels;
    decoded = await image.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new DataError(file, `cannot be decoded as an image: ${(e as Error).message}`, { cause: e });
  }
  const { data, info } = decoded;
  if (info.width !== 32 || info.height !== 32 || info.channels !== 3 || channels !== 3) {
    throw new DataError(
      file,
      `is ${info.width}x${info.height} with ${channels ?? info.channels} channel(s); CIFAR-10 images are 32x32 with 3 (RGB)`,
    );
  }
  for (let p = 0; p < 1024; p++) {
    out[at + p] = data[3 * p];
    out[at + 1024 + p] = data[3 * p + 1];
    out[at + 2048 + p] = data[3 * p + 2];
  }
}

async function decodeAll(files: readonly string[], concurrency: number): Promise<Uint8Array> {
  const pixels = new Uint8Array(files.length * CIFAR10_IMAGE_BYTES);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < files.length; i = next++)
      await decodeCifarImage(files[i], pixels, i * CIFAR10_IMAGE_BYTES);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  return pixels;
}

/** The cached pixels of a split, or null when there is no usable cache (a damaged one is rebuilt). */
function readCache(path: string, index: SplitIndex): Uint8Array | null {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    return null;
  }
  try {
    const { tensors, metadata } = decodeSafetensors(bytes, path);
    const pixels = tensors.get("pixels");
    if (metadata.key !== index.key || !pixels || pixels.dtype !== "U8") return null;
    if (pixels.data.byteLength !== index.files.length * CIFAR10_IMAGE_BYTES) return null;
    return pixels.data;
  } catch {
    return null;
  }
}

/** The pixels of a whole split, decoded or from the cache. */
async function splitPixels(index: SplitIndex, split: Split, o: Cifar10FolderOptions): Promise<Uint8Array> {
  const n = index.files.length;
  const useCache = o.cacheDir !== undefined && n >= (o.cacheMinImages ?? 5000);
  const cachePath = useCache ? join(o.cacheDir!, `cifar10-folders-${split}-${index.key}.safetensors`) : "";
  if (useCache) {
    const cached = readCache(cachePath, index);
    if (cached) return cached;
  }
  const pixels = await decodeAll(index.files, o.concurrency ?? 8);
  if (useCache) {
    writeFileAtomic(
      cachePath,
      encodeSafetensors(
        {
          pixels: { dtype: "U8", shape: [n, 3, 32, 32], data: pixels },
          labels: { dtype: "U8", shape: [n], data: index.labels },
        },
        { key: index.key, root: index.dir, split, order: "round-robin over classes" },
      ),
    );
  }
  return pixels;
}

/** Load one split of a CIFAR-10 class-folder copy. */
export async function loadCifar10ClassFolders(options: Cifar10FolderOptions): Promise<ImageDataset> {
  const split = checkSplit(options.split);
  if (typeof options.dataDir !== "string" || options.dataDir === "") {
    throw new DataError(String(options.dataDir), "a CIFAR-10 class-folder copy needs dataDir");
  }
  if (options.concurrency !== undefined) checkInt(options.concurrency, "concurrency", 1);
  const index = indexCifar10Split(options.dataDir, split);
  const total = index.files.length;
  const keep = applyLimit(options.limit, total);
  // A limited load decodes only what it keeps; the cache always holds whole splits.
  const pixels =
    keep < total
      ? await decodeAll(index.files.slice(0, keep), options.concurrency ?? 8)
      : await splitPixels(index, split, options);
  return datasetFromBytes({
    pixels: pixels.subarray(0, keep * CIFAR10_IMAGE_BYTES),
    labels: index.labels.subarray(0, keep),
    shape: [keep, 3, 32, 32],
    classNames: CIFAR10_CLASSES,
    name: "cifar10",
    split,
    source:
      `${CIFAR10_FOLDER_LABEL_SOURCE}: ${index.dir} (${index.perClass} per class, classes dealt round-robin)` +
      (keep < total ? ` (first ${keep})` : ""),
  });
}

/**
 * CIFAR-10 from either layout: the official binary version (`dataDir` is the
 * extracted `cifar-10-batches-bin` or the folder holding it; loadCifar10,
 * unchanged) or a class-folder copy (`train/<class>/`, `test/<class>/`).
 */
export async function loadCifar10Auto(options: Cifar10FolderOptions): Promise<ImageDataset> {
  const dataDir = options.dataDir;
  if (typeof dataDir !== "string" || dataDir === "") return loadCifar10(options);
  const binaryFiles = [...CIFAR10_TRAIN_FILES, ...CIFAR10_TEST_FILES];
  const hasBinary = [dataDir, join(dataDir, "cifar-10-batches-bin")].some((d) =>
    binaryFiles.some((f) => existsSync(join(d, f))),
  );
  if (hasBinary) return loadCifar10(options);
  if (isCifar10ClassFolders(dataDir)) return loadCifar10ClassFolders(options);
  throw new DataError(
    resolve(dataDir),
    `holds neither CIFAR-10's binary version (${binaryFiles.join(", ")} from cifar-10-binary.tar.gz; ` +
      "`vaeguard data fetch cifar10` downloads it) nor a class-folder copy (train/<class>/ and test/<class>/)",
  );
}
