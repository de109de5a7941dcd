/**
 * Random square patches of a set of images, for training the patch VAEs of
 * the paper's Table 3 (Luo & Pfister 2018, section 5: "we decided to train
 * our VAE on patches randomly extracted from the ... original images").
 *
 * Positions are drawn in JavaScript from a seeded generator (mulberry32 of
 * deriveSeed(seed, patch size)), so the same seed gives the same patches on
 * every machine and independently of libtorch's generator. The image of each
 * patch is drawn uniformly, then its top-left corner uniformly among all
 * positions where the patch fits; an optional horizontal mirror doubles the
 * variety of a small training set.
 *
 * The result is an ordinary ImageDataset (labels all 0, one class "patch"),
 * so trainVae and the seeded batching take it as they take MNIST.
 */
import { ArgumentError, ShapeError } from "../core/errors.js";
import { tensor, type Tensor } from "../core/tensor.js";
import { checkBool, checkInt, fail } from "../core/validate.js";
import { datasetSize, type ImageDataset } from "./dataset.js";
import { deriveSeed, mulberry32 } from "./random.js";

export interface PatchSampleOptions {
  /** Side p of the square patches. */
  patchSize: number;
  /** How many patches to draw. */
  count: number;
  /** Seed of the positions (default 0). */
  seed?: number;
  /** Mirror each patch horizontally with probability 1/2 (default false). */
  flip?: boolean;
}

export interface PatchPosition {
  /** Index of the source image in the batch. */
  image: number;
  top: number;
  left: number;
  flipped: boolean;
}

/** A stream id mixed into the seed, so patch positions never coincide with other seeded streams. */
const PATCH_STREAM = 0x9a7c4;

function checkPatchOptions(o: PatchSampleOptions): Required<PatchSampleOptions> {
  if (typeof o !== "object" || o === null) fail("an options object", "options", o);
  return {
    patchSize: checkInt(o.patchSize, "patchSize", 1),
    count: checkInt(o.count, "count", 1),
    seed: checkInt(o.seed ?? 0, "seed", 0),
    flip: checkBool(o.flip ?? false, "flip"),
  };
}

/**
 * The positions samplePatches uses for `images` images of height h and width w:
 * deterministic from (seed, patchSize), every patch inside its image.
 */
export function samplePatchPositions(
  images: number,
  height: number,
  width: number,
  options: PatchSampleOptions,
): PatchPosition[] {
  const o = checkPatchOptions(options);
  checkInt(images, "images", 1);
  checkInt(height, "height", 1);
  checkInt(width, "width", 1);
  if (o.patchSize > height || o.patchSize > width) {
    throw new ShapeError(`${o.patchSize}x${o.patchSize} patches do not fit images of ${height}x${width}`);
  }
  const rng = mulberry32(deriveSeed(o.seed, PATCH_STREAM, o.patchSize));
  const pick = (n: number) => Math.min(n - 1, Math.floor(rng() * n));
  const out: PatchPosition[] = new Array(o.count);
  for (let i = 0; i < o.count; i++) {
    const image = pick(images);
    const top = pick(height - o.patchSize + 1);
    const left = pick(width - o.patchSize + 1);
    const flipped = o.flip ? rng() < 0.5 : false;
    out[i] = { image, top, left, flipped };
  }
  return out;
}

/**
 * Cut `count` random patches out of images [N, C, H, W] (float32): returns
 * patches [count, C, p, p] and where each came from. The images stay as they are.
 */
export function samplePatches(
  images: Tensor,
  options: PatchSampleOptions,
): { patches: Tensor; positions: PatchPosition[] } {
  if (images.rank !== 4)
    throw new ShapeError(`samplePatches: expected images [N, C, H, W] but received [${images.shape.join(", ")}]`);
  if (images.dtype !== "float32") {
    throw new ArgumentError(`samplePatches: expected float32 images but received ${images.dtype}`);
  }
  const [n, c, h, w] = images.dims;
  const positions = samplePatchPositions(n, h, w, options);
  const p = options.patchSize;
  const src = images.contiguous();
  let data: Float32Array;
  try {
    data = src.dataSync() as Float32Array;
  } finally {
    if (src !== images) src.dispose();
  }
  return { patches: cutPatches(data, 1, [n, c, h, w], positions, p), positions };
}

/**
 * Copy the patches at `positions` out of images stored flat as [N, C, H, W]
 * (float values, or bytes with scale 1/255) into a float32 tensor [P, C, p, p].
 */
function cutPatches(
  data: Float32Array | Uint8Array,
  scale: number,
  dims: readonly [number, number, number, number],
  positions: readonly PatchPosition[],
  p: number,
): Tensor {
  const [, c, h, w] = dims;
  const per = c * p * p;
  const out = new Float32Array(positions.length * per);
  positions.forEach((pos, i) => {
    for (let ch = 0; ch < c; ch++) {
      for (let r = 0; r < p; r++) {
        const from = ((pos.image * c + ch) * h + pos.top + r) * w + pos.left;
        const to = i * per + (ch * p + r) * p;
        if (scale === 1 && !pos.flipped) {
          out.set(data.subarray(from, from + p), to);
        } else {
          for (let q = 0; q < p; q++) out[to + q] = data[pos.flipped ? from + p - 1 - q : from + q] * scale;
        }
      }
    }
  });
  return tensor(out, [positions.length, c, p, p]);
}

/**
 * Images kept as 8-bit values (a quarter of float32's memory, and exact for
 * images decoded from 8-bit files) from which fresh random patches are drawn,
 * for example a new set every training epoch.
 */
export class PatchSource {
  readonly dims: [number, number, number, number];
  private readonly bytes: Uint8Array;

  /** From images [N, C, H, W] float32 in [0, 1] (values are rounded to multiples of 1/255). */
  constructor(images: Tensor) {
    if (images.rank !== 4) {
      throw new ShapeError(`PatchSource: expected images [N, C, H, W] but received [${images.shape.join(", ")}]`);
    }
    if (images.dtype !== "float32") {
      throw new ArgumentError(`PatchSource: expected float32 images but received ${images.dtype}`);
    }
    this.dims = images.dims as [number, number, number, number];
    const src = images.contiguous();
    try {
      const f = src.dataSync() as Float32Array;
      this.bytes = new Uint8Array(f.length);
      for (let i = 0; i < f.length; i++) this.bytes[i] = Math.round(Math.min(1, Math.max(0, f[i])) * 255);
    } finally {
      if (src !== images) src.dispose();
    }
  }

  /** Random patches [count, C, p, p] float32 in [0, 1], as samplePatches would draw them. */
  sample(options: PatchSampleOptions): { patches: Tensor; positions: PatchPosition[] } {
    const [n, , h, w] = this.dims;
    const positions = samplePatchPositions(n, h, w, options);
    return { patches: cutPatches(this.bytes, 1 / 255, this.dims, positions, options.patchSize), positions };
  }

  /** A data set of random patches (labels all 0); the caller disposes it. */
  dataset(options: PatchDatasetOptions): ImageDataset {
    const o = checkPatchOptions(options);
    return patchSetOf(this.sample(o).patches, o, options.name, options.source ?? `${this.dims[0]} images`);
  }
}

export interface PatchDatasetOptions extends PatchSampleOptions {
  /** Data set id (default "patches<p>"). */
  name?: string;
  /** Where the images came from, for reports (default: the data set's source). */
  source?: string;
}

/**
 * A training set of random patches of `images` (a tensor [N, C, H, W] or an
 * ImageDataset), as an ImageDataset with all labels 0. The caller disposes it.
 */
export function patchDataset(images: Tensor | ImageDataset, options: PatchDatasetOptions): ImageDataset {
  const t = "images" in images && "labels" in images ? images.images : (images as Tensor);
  const from =
    "images" in images && "labels" in images ? `${datasetSize(images)} images of ${images.source}` : undefined;
  const o = checkPatchOptions(options);
  const { patches } = samplePatches(t, o);
  return patchSetOf(patches, o, options.name, options.source ?? from ?? `${t.dims[0]} images`);
}

function patchSetOf(
  patches: Tensor,
  o: Required<PatchSampleOptions>,
  name: string | undefined,
  source: string,
): ImageDataset {
  let labels: Tensor;
  try {
    labels = tensor(new BigInt64Array(o.count), [o.count]);
  } catch (e) {
    patches.dispose();
    throw e;
  }
  const what = `${o.count} random ${o.patchSize}x${o.patchSize} patches (seed ${o.seed}${o.flip ? ", random horizontal flips" : ""})`;
  return {
    images: patches,
    labels,
    classNames: ["patch"],
    name: name ?? `patches${o.patchSize}`,
    split: "train",
    source: `${what} of ${source}`,
  };
}
