/**
 * The in-memory image data set every loader returns, and the operations on it
 * that keep its provenance (`source`) honest for reports.
 */
import { ArgumentError, DataError } from "../core/errors.js";
import { tidy } from "../core/engine.js";
import { tensor, type Tensor } from "../core/tensor.js";
import { checkInt } from "../core/validate.js";
import { deriveSeed, mulberry32, permutation } from "./random.js";

export type Split = "train" | "test";

export interface ImageDataset {
  /** (N, C, H, W) float32 in [0, 1]. */
  images: Tensor;
  /** (N) int64 class indices into classNames. */
  labels: Tensor;
  classNames: string[];
  /** Short id of the data set, e.g. "mnist". */
  name: string;
  /** Which part: the loaders' split, or "validation" after splitValidation. */
  split?: Split | "validation";
  /** Where the data came from (files, package, subset), for reports. */
  source: string;
}

/** Options shared by the loaders. */
export interface LoadOptions {
  split: Split;
  /** Folder with the data files; each loader has its own default. */
  dataDir?: string;
  /** Keep only the first `limit` examples (quick runs, tests). */
  limit?: number;
}

export function checkSplit(split: unknown): Split {
  if (split !== "train" && split !== "test") {
    throw new ArgumentError(`Expected one of "train", "test" for split but received ${JSON.stringify(split)}`);
  }
  return split;
}

/** How many examples to keep of `available`, honouring an optional limit. */
export function applyLimit(limit: number | undefined, available: number): number {
  if (limit === undefined) return available;
  checkInt(limit, "limit", 1);
  return Math.min(limit, available);
}

/** The dataset's size (N). */
export function datasetSize(ds: ImageDataset): number {
  return ds.labels.dims[0];
}

/**
 * Build a dataset from 8-bit pixels in (N, C, H, W) order and byte labels. The
 * pixel scaling is x / 255 in float32, as torchvision's ToTensor does, so
 * models trained on either side see the same numbers.
 */
export function datasetFromBytes(args: {
  pixels: Uint8Array;
  labels: Uint8Array;
  shape: [number, number, number, number];
  classNames: readonly string[];
  name: string;
  split?: ImageDataset["split"];
  source: string;
  /** File to blame when a label is out of range. */
  labelsFile?: string;
}): ImageDataset {
  const [n, c, h, w] = args.shape;
  if (args.pixels.length !== n * c * h * w || args.labels.length !== n) {
    throw new ArgumentError(
      `datasetFromBytes: shape [${args.shape.join(", ")}] needs ${n * c * h * w} pixels and ${n} labels ` +
        `but received ${args.pixels.length} and ${args.labels.length}`,
    );
  }
  const k = args.classNames.length;
  const bad = args.labels.findIndex((l) => l >= k);
  if (bad >= 0) {
    throw new DataError(
      args.labelsFile ?? args.name,
      `label ${args.labels[bad]} at index ${bad} is outside 0..${k - 1} (${k} classes); the labels file is damaged or belongs to another data set`,
    );
  }
  return tidy(() => ({
    images: tensor(args.pixels, [n, c, h, w]).to("float32").div(255),
    labels: tensor(args.labels, [n]).to("int64"),
    classNames: [...args.classNames],
    name: args.name,
    split: args.split,
    source: args.source,
  }));
}

function indexTensor(indices: ArrayLike<number>, device: string): Tensor {
  return tensor(BigInt64Array.from(Array.from(indices, BigInt)), [indices.length], { device });
}

/** A new dataset holding the given examples, in the given order. */
export function subsetDataset(ds: ImageDataset, indices: ArrayLike<number>, sourceNote?: string): ImageDataset {
  const n = datasetSize(ds);
  for (let i = 0; i < indices.length; i++) {
    const v = indices[i];
    if (!Number.isInteger(v) || v < 0 || v >= n)
      throw new ArgumentError(`Expected integer between 0 and ${n - 1} for indices[${i}] but received ${v}`);
  }
  return tidy(() => {
    const idx = indexTensor(indices, ds.images.device);
    return {
      ...ds,
      images: ds.images.indexSelect(0, idx),
      labels: ds.labels.indexSelect(0, idx),
      classNames: [...ds.classNames],
      source: sourceNote === undefined ? ds.source : `${ds.source}; ${sourceNote}`,
    };
  });
}

/** A new dataset with the first `count` examples (copies: disposing `ds` leaves it intact). */
export function takeFirst(ds: ImageDataset, count: number): ImageDataset {
  const n = datasetSize(ds);
  checkInt(count, "count", 1, n);
  return tidy(() => ({
    ...ds,
    images: ds.images.narrow(0, 0, count).clone(),
    labels: ds.labels.narrow(0, 0, count).clone(),
    classNames: [...ds.classNames],
    source: firstSource(ds.source, count, n),
  }));
}

/** How takeFirst describes the first `count` of the `n` examples from `source`. */
export function firstSource(source: string, count: number, n: number): string {
  return count === n ? source : `${source}; first ${count} of ${n}`;
}

/**
 * Hold out a validation set: `size` is a fraction in (0, 1) or a count of at
 * least 1. The held-out examples are chosen by a seeded permutation, and both
 * parts keep the original order (so a split is stable when `ds` is reloaded).
 * The caller disposes both results; `ds` is left as it is.
 */
export function splitValidation(
  ds: ImageDataset,
  size: number,
  seed = 0,
): { train: ImageDataset; validation: ImageDataset } {
  const n = datasetSize(ds);
  checkInt(seed, "seed", 0);
  let count: number;
  if (typeof size === "number" && size > 0 && size < 1) count = Math.round(size * n);
  else if (Number.isInteger(size) && size >= 1) count = size;
  else
    throw new ArgumentError(
      `Expected a fraction between 0 and 1 or an integer count of at least 1 for size but received ${size}`,
    );
  if (count < 1 || count > n - 1) {
    throw new ArgumentError(
      `splitValidation: a validation set of ${count} leaves no training examples or is empty (the dataset has ${n})`,
    );
  }
  const perm = permutation(n, mulberry32(deriveSeed(seed, 0x5eed)));
  const held = perm.slice(0, count).sort();
  const kept = perm.slice(count).sort();
  const note = `validation split of ${count}/${n} (seed ${seed})`;
  const validation = { ...subsetDataset(ds, held, note), split: "validation" as const };
  try {
    const train = { ...subsetDataset(ds, kept, `training part of a ${note}`), split: ds.split };
    return { train, validation };
  } catch (e) {
    validation.images.dispose();
    validation.labels.dispose();
    throw e;
  }
}
