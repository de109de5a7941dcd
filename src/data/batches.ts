/**
 * Mini-batches over an ImageDataset, reproducible from a seed: the order and
 * the augmentation of epoch e depend only on (seed, e), never on libtorch's
 * global generator or on what ran before.
 *
 * Each yielded batch's tensors belong to the caller: dispose them (for
 * example with `dispose(batch)`) when the step is done.
 */
import { ArgumentError } from "../core/errors.js";
import { tidy } from "../core/engine.js";
import { stack, tensor, type Tensor } from "../core/tensor.js";
import { checkBool, checkInt } from "../core/validate.js";
import { datasetSize, type ImageDataset } from "./dataset.js";
import { deriveSeed, mulberry32, permutation } from "./random.js";

export interface AugmentOptions {
  /** Zero-pad each side by this many pixels, then crop back to the original size at a random place (0: no crop). */
  cropPadding?: number;
  /** Mirror left-right with probability 1/2. */
  horizontalFlip?: boolean;
}

/** The standard CIFAR-10 training augmentation: 4-pixel padded random crop and horizontal flip. */
export const CIFAR_AUGMENTATION: Readonly<Required<AugmentOptions>> = { cropPadding: 4, horizontalFlip: true };

export interface BatchOptions {
  batchSize: number;
  /** Visit the examples in a seeded random order (default false: dataset order). */
  shuffle?: boolean;
  seed?: number;
  /** Which epoch (default 0); each epoch gets its own order and augmentation. */
  epoch?: number;
  /** Skip the last batch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /** "cifar" for CIFAR_AUGMENTATION, or explicit options; none by default. */
  augment?: "cifar" | AugmentOptions | null;
}

export interface Batch {
  /** (B, C, H, W) images. */
  x: Tensor;
  /** (B) int64 labels. */
  y: Tensor;
  /** Which dataset examples this batch holds. */
  indices: Int32Array;
}

// Separate streams, so turning shuffling on or off does not change the augmentation draws.
const ORDER_STREAM = 1;
const AUGMENT_STREAM = 2;

function checkAugment(a: BatchOptions["augment"]): Required<AugmentOptions> | null {
  if (a === undefined || a === null) return null;
  if (a === "cifar") return { ...CIFAR_AUGMENTATION };
  if (typeof a !== "object")
    throw new ArgumentError(`Expected "cifar", null or an options object for augment but received ${String(a)}`);
  return {
    cropPadding: checkInt(a.cropPadding ?? 0, "augment.cropPadding", 0),
    horizontalFlip: checkBool(a.horizontalFlip ?? false, "augment.horizontalFlip"),
  };
}

/** The example order of one epoch. */
export function epochOrder(n: number, options: { shuffle?: boolean; seed?: number; epoch?: number }): Int32Array {
  if (!options.shuffle) return Int32Array.from({ length: n }, (_, i) => i);
  return permutation(n, mulberry32(deriveSeed(options.seed ?? 0, options.epoch ?? 0, ORDER_STREAM)));
}

/**
 * Random crop (after zero padding) and flip, image by image, drawing
 * (top, left, flip) per image from `rng` in that order. Works on any device.
 */
export function augmentBatch(x: Tensor, options: AugmentOptions, rng: () => number): Tensor {
  const pad = options.cropPadding ?? 0;
  const flip = options.horizontalFlip ?? false;
  if (x.rank !== 4)
    throw new ArgumentError(
      `Expected a (N, C, H, W) batch for augmentBatch but received shape [${x.shape.join(", ")}]`,
    );
  return tidy(() => {
    const [n, , h, w] = x.dims;
    if (n === 0) return x.clone();
    const padded = pad > 0 ? x.pad([pad, pad, pad, pad]) : x;
    const out: Tensor[] = [];
    for (let i = 0; i < n; i++) {
      const top = pad > 0 ? Math.floor(rng() * (2 * pad + 1)) : 0;
      const left = pad > 0 ? Math.floor(rng() * (2 * pad + 1)) : 0;
      let img = padded.select(0, i).narrow(1, top, h).narrow(2, left, w);
      if (flip && rng() < 0.5) img = img.flip([2]);
      out.push(img);
    }
    return stack(out);
  });
}

/** Number of batches one epoch yields. */
export function batchCount(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** One epoch of batches. Options are checked now, not at the first batch. */
export function batches(ds: ImageDataset, options: BatchOptions): Generator<Batch, void, undefined> {
  const batchSize = checkInt(options.batchSize, "batchSize", 1);
  const seed = checkInt(options.seed ?? 0, "seed", 0);
  const epoch = checkInt(options.epoch ?? 0, "epoch", 0);
  const augment = checkAugment(options.augment);
  const shuffle = checkBool(options.shuffle ?? false, "shuffle");
  const dropLast = checkBool(options.dropLast ?? false, "dropLast");
  return generateBatches(ds, { batchSize, seed, epoch, augment, shuffle, dropLast });
}

function* generateBatches(
  ds: ImageDataset,
  o: {
    batchSize: number;
    seed: number;
    epoch: number;
    augment: Required<AugmentOptions> | null;
    shuffle: boolean;
    dropLast: boolean;
  },
): Generator<Batch, void, undefined> {
  const { batchSize, seed, epoch, augment } = o;
  const n = datasetSize(ds);
  const order = epochOrder(n, o);
  const rng = mulberry32(deriveSeed(seed, epoch, AUGMENT_STREAM));
  const count = batchCount(n, batchSize, o.dropLast);
  const device = ds.images.device;
  for (let b = 0; b < count; b++) {
    const indices = order.slice(b * batchSize, Math.min(n, (b + 1) * batchSize));
    const batch = tidy(() => {
      const idx = tensor(
        BigInt64Array.from(indices, (i) => BigInt(i)),
        [indices.length],
        { device },
      );
      const x = ds.images.indexSelect(0, idx);
      return { x: augment ? augmentBatch(x, augment, rng) : x, y: ds.labels.indexSelect(0, idx) };
    });
    yield { ...batch, indices };
  }
}

/**
 * Batches over many epochs: each `for (const batch of batcher)` runs the next
 * epoch (0, 1, 2, ...) with its own order; `epochBatches(e)` replays any epoch.
 */
export class Batcher implements Iterable<Batch> {
  private nextEpoch = 0;
  private readonly options: BatchOptions;

  constructor(
    readonly dataset: ImageDataset,
    options: BatchOptions,
  ) {
    batches(dataset, options); // validates the options; a generator does nothing until iterated
    this.options = { ...options };
  }

  /** Batches per epoch. */
  get length(): number {
    return batchCount(datasetSize(this.dataset), this.options.batchSize, this.options.dropLast);
  }

  /** The epoch the next iteration will run. */
  get epoch(): number {
    return this.nextEpoch;
  }

  epochBatches(epoch: number): Generator<Batch, void, undefined> {
    return batches(this.dataset, { ...this.options, epoch });
  }

  [Symbol.iterator](): Iterator<Batch> {
    return this.epochBatches(this.nextEpoch++);
  }
}
