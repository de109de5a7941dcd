/**
 * The patch-wise VAE defense for large images (Luo & Pfister 2018, section 6,
 * "NIPS 2017"; Tables 6 and 7): a VAE trained on p x p patches reconstructs
 * every patch of a grid with stride s, overlapping reconstructions are summed
 * and divided by how many patches cover each pixel, and the result is smoothed
 * with PIL's 5x5 SMOOTH_MORE filter to hide the seams.
 *
 * The grid follows the authors' code (NIPS-2017/model_utils.py,
 * reconstruct_image): per axis floor((H - (p - s)) / s) + 1 positions, i * s
 * for all but the last, the last anchored at H - p so the border is covered.
 * All patches of a batch go through the VAE as one batched tensor (split into
 * chunks only to bound memory).
 *
 * Differentiable (gather, VAE, fold, convolution): attacks get the exact
 * gradient. Random unless deterministic. Input [N, C, H, W] in [0, 1] with C
 * the VAE's channels and H, W >= p; output the same shape in [0, 1].
 */
import { noGrad, tidy } from "../core/engine.js";
import { ArgumentError, ShapeError } from "../core/errors.js";
import { readOptions, type OptionsOf, type Schema } from "../core/params.js";
import { Tensor, cat, tensor, where } from "../core/tensor.js";
import { checkInt, fail } from "../core/validate.js";
import * as F from "../nn/functional.js";
import type { ConvVae } from "../models/vae.js";
import { checkImages, padImages } from "./common.js";
import { VAE_PARAMS, vaeNameSuffix } from "./vae.js";
import type { Defense, DefenseContext, DefenseDefinition, GradientKind } from "./types.js";

/**
 * Top-left corners of the patches along one axis of length `size`: the
 * authors' floor((size - (p - s)) / s) + 1 positions, i * s and then size - p.
 * When size - p is itself a multiple of s, the anchored position coincides
 * with the last regular one and is listed once (the authors' loop would
 * reconstruct that row of patches twice).
 */
export function patchPositions(size: number, patchSize: number, stride: number): number[] {
  checkInt(size, "size", 1);
  checkInt(patchSize, "patchSize", 1, size);
  checkInt(stride, "stride", 1, patchSize);
  const moves = Math.floor((size - (patchSize - stride)) / stride) + 1;
  const positions: number[] = [];
  for (let i = 0; i < moves - 1; i++) positions.push(i * stride);
  const last = size - patchSize;
  if (positions[positions.length - 1] !== last) positions.push(last);
  return positions;
}

/** How many patches cover each index of the axis. */
function coverCounts(size: number, patchSize: number, positions: readonly number[]): number[] {
  const counts = new Array<number>(size).fill(0);
  for (const p of positions) for (let i = p; i < p + patchSize; i++) counts[i]++;
  return counts;
}

/** Maximal runs of positions spaced by `stride`: each run is one regular unfold. */
function runsOf(positions: readonly number[], stride: number): { start: number; count: number }[] {
  const runs: { start: number; count: number }[] = [];
  for (const p of positions) {
    const r = runs[runs.length - 1];
    if (r !== undefined && p === r.start + r.count * stride) r.count++;
    else runs.push({ start: p, count: 1 });
  }
  return runs;
}

/** PIL's ImageFilter.SMOOTH_MORE: 5x5 weights, divided by 100. */
export const SMOOTH_MORE_WEIGHTS: readonly (readonly number[])[] = [
  [1, 1, 1, 1, 1],
  [1, 5, 5, 5, 1],
  [1, 5, 44, 5, 1],
  [1, 5, 5, 5, 1],
  [1, 1, 1, 1, 1],
];

/** The smoothing kernel [5, 5] (sums to one); the caller disposes it. */
export function smoothingKernel(): Tensor {
  return tidy(() => tensor(SMOOTH_MORE_WEIGHTS.map((r) => [...r])).div(100));
}

export interface SmoothOptions {
  /**
   * What happens within 2 pixels of the border. "copy" (default) keeps the
   * input there, as PIL's 5x5 filters do (ImagingFilter5x5 copies the two
   * outer rows and columns unfiltered); "replicate" filters every pixel with
   * the border pixels repeated outwards.
   */
  border?: "copy" | "replicate";
}

const SMOOTH_PARAMS = {
  border: {
    type: "choice",
    choices: ["copy", "replicate"],
    default: "copy",
    doc: "what happens within 2 pixels of the border",
  },
} as const satisfies Schema;

/** The paper's 5x5 smoothing filter, per channel, on images [N, C, H, W]; differentiable. */
export function smooth(x: Tensor, options: SmoothOptions = {}): Tensor {
  checkImages(x, "smooth");
  const { border } = readOptions("smooth", SMOOTH_PARAMS, options);
  const [, c, h, w] = x.dims;
  return tidy(() => {
    const k = smoothingKernel().to(x.dtype).to(x.device);
    const weight = k.reshape([1, 1, 5, 5]).expand([c, 1, 5, 5]).contiguous();
    const filtered = F.conv2d(padImages(x, [2, 2, 2, 2], "replicate"), weight, null, { groups: c });
    if (border === "replicate") return filtered;
    const inside = (n: number) => Array.from({ length: n }, (_, i) => (i >= 2 && i < n - 2 ? 1 : 0));
    const rows = tensor(inside(h), [1, 1, h, 1]);
    const cols = tensor(inside(w), [1, 1, 1, w]);
    const mask = rows.mul(cols).gt(0).to(x.device);
    return where(mask, filtered, x);
  });
}

export interface PatchReconstructOptions {
  /** Most patches per VAE call (memory only; the result does not depend on it). */
  chunkSize?: number;
}

/** Default chunk: about 4M input values per VAE call, at most 4096 patches. */
export function defaultChunkSize(channels: number, patchSize: number): number {
  return Math.max(1, Math.min(4096, Math.floor(2 ** 22 / (channels * patchSize * patchSize))));
}

/**
 * Reconstruct images [N, C, H, W] patch by patch: cut every patch of the grid
 * (patchPositions per axis), run `reconstruct` on all of them as one batch
 * [P, C, p, p] (in chunks of at most chunkSize), put the results back where
 * they came from and divide each pixel by how many patches cover it.
 * Differentiable when `reconstruct` is. No smoothing here (see smooth()).
 */
export function patchReconstruct(
  x: Tensor,
  reconstruct: (patches: Tensor) => Tensor,
  patchSize: number,
  stride: number,
  options: PatchReconstructOptions = {},
): Tensor {
  checkImages(x, "patchReconstruct");
  const [n, c, h, w] = x.dims;
  if (h < patchSize || w < patchSize) {
    throw new ShapeError(
      `patchReconstruct: ${patchSize}x${patchSize} patches do not fit images of shape [${x.shape.join(", ")}]`,
    );
  }
  const rowPos = patchPositions(h, patchSize, stride);
  const colPos = patchPositions(w, patchSize, stride);
  const chunkSize = checkInt(options.chunkSize ?? defaultChunkSize(c, patchSize), "chunkSize", 1);
  const span = (r: { count: number }) => (r.count - 1) * stride + patchSize;
  const pieces: { top: number; left: number; height: number; width: number; count: number }[] = [];
  for (const r of runsOf(rowPos, stride)) {
    for (const q of runsOf(colPos, stride)) {
      pieces.push({ top: r.start, left: q.start, height: span(r), width: span(q), count: r.count * q.count });
    }
  }
  const total = pieces.reduce((a, p) => a + p.count, 0);
  const kk = c * patchSize * patchSize;
  return tidy(() => {
    // Gather: each piece is a regular grid, cut out by one unfold; [N, C*p*p, L] for all L patches.
    const cols = cat(
      pieces.map((p) => F.unfold(x.narrow(2, p.top, p.height).narrow(3, p.left, p.width), patchSize, { stride })),
      2,
    );
    const patches = cols.permute(0, 2, 1).reshape([n * total, c, patchSize, patchSize]);
    const outs: Tensor[] = [];
    for (let start = 0; start < n * total; start += chunkSize) {
      const chunk = patches.narrow(0, start, Math.min(chunkSize, n * total - start));
      const r = reconstruct(chunk);
      if (!(r instanceof Tensor) || r.dims.some((d, i) => d !== chunk.dims[i]) || r.rank !== 4) {
        const got = r instanceof Tensor ? `shape [${r.shape.join(", ")}]` : String(r);
        throw new ShapeError(
          `patchReconstruct: reconstruct must return patches of shape [${chunk.shape.join(", ")}] but returned ${got}`,
        );
      }
      outs.push(r);
    }
    const rec = (outs.length === 1 ? outs[0] : cat(outs, 0)).reshape([n, total, kk]).permute(0, 2, 1);
    // Scatter: fold each piece back (overlaps summed) and place it in the full image.
    let sum: Tensor | null = null;
    let offset = 0;
    for (const p of pieces) {
      const folded = F.fold(rec.narrow(2, offset, p.count), [p.height, p.width], patchSize, { stride });
      const placed = folded.pad([p.left, w - p.left - p.width, p.top, h - p.top - p.height]);
      sum = sum === null ? placed : sum.add(placed);
      offset += p.count;
    }
    // The grid is a product of the two axes, so the cover count is an outer product.
    const rowCount = tensor(coverCounts(h, patchSize, rowPos), [1, 1, h, 1]);
    const colCount = tensor(coverCounts(w, patchSize, colPos), [1, 1, 1, w]);
    const counts = rowCount.mul(colCount).to(x.dtype).to(x.device);
    return sum!.div(counts);
  });
}

const PARAMS = {
  patchSize: {
    type: "int",
    min: 1,
    positional: true,
    placeholder: "P/S",
    defaultText: "the VAE's input size (it must be)",
    doc: "patch size p, and in a spec the stride s as P/S",
  },
  stride: {
    type: "int",
    default: (v) => v.patchSize as number,
    defaultText: "p (no overlap)",
    doc: "stride s between patches, 1..p",
    check: (s: number, v) => {
      checkInt(s, "stride", 1, v.patchSize as number);
    },
  },
  smooth: {
    type: "bool",
    default: true,
    flag: true,
    doc: "the 5x5 smoothing filter on the reassembled image (the paper's)",
  },
  ...VAE_PARAMS,
  chunkSize: {
    type: "int",
    key: "chunk",
    min: 1,
    placeholder: "M",
    defaultText: "about 4M input values per VAE call",
    doc: "most patches per VAE call (memory only)",
  },
} as const satisfies Schema;

export type PatchVaeOptions = OptionsOf<typeof PARAMS>;

/** "64/32": patch size 64, stride 32; "64": patch size 64 (stride defaults to it). */
function readGeometry(raw: string, label: string): Record<string, number> {
  const m = /^(\d+)(?:\/(\d+))?$/.exec(raw);
  if (!m) fail("patch size and stride as P/S (e.g. 64/32)", `the geometry in ${label}`, raw);
  return m[2] === undefined ? { patchSize: Number(m[1]) } : { patchSize: Number(m[1]), stride: Number(m[2]) };
}

/** The patch VAE for p x p patches: by key ("64", "patch64", "64x64"), else the only one of that size. */
function findPatchVae(spec: string, p: number, ctx: DefenseContext): ConvVae {
  const vaes = ctx.patchVaes ?? {};
  for (const key of [`${p}`, `patch${p}`, `${p}x${p}`]) {
    if (vaes[key] !== undefined) return vaes[key];
  }
  const bySize = Object.values(vaes).filter((v) => v.inputShape[1] === p && v.inputShape[2] === p);
  if (bySize.length === 1) return bySize[0];
  const have = Object.entries(vaes).map(([k, v]) => `${k} (${v.inputShape.join("x")})`);
  throw new ArgumentError(
    `Defense spec "${spec}" needs a VAE for ${p}x${p} patches in patchVaes (key "${p}" or "patch${p}"); ${
      have.length > 0 ? `available: ${have.join(", ")}` : "none was given"
    }`,
  );
}

export const PATCH_VAE_DEFINITION: DefenseDefinition = {
  kind: "patchvae",
  description:
    "patch-wise VAE: P x P patches at stride S, overlaps averaged, 5x5 smoothing (paper's NIPS 2017 defense)",
  params: PARAMS,
  positional: { patchSize: readGeometry },
  build: (o, ctx, spec) => {
    if (o.patchSize === undefined)
      throw new ArgumentError(`Defense spec "${spec}" needs the patch size, as patchvae:P/S`);
    return new PatchVaeDefense(findPatchVae(spec, o.patchSize as number, ctx), o as PatchVaeOptions);
  },
};

export class PatchVaeDefense implements Defense {
  readonly name: string;
  readonly randomized: boolean;
  readonly gradient: GradientKind = "exact";
  readonly patchSize: number;
  readonly stride: number;
  readonly smoothing: boolean;
  readonly clip: number;
  readonly deterministic: boolean;
  readonly samples: number;
  readonly chunkSize: number;

  constructor(
    readonly vae: ConvVae,
    options: PatchVaeOptions = {},
  ) {
    const [vc, vh, vw] = vae.inputShape;
    if (vh !== vw) {
      throw new ShapeError(
        `patch VAE defense: the VAE must take square patches but takes [${vae.inputShape.join(", ")}]`,
      );
    }
    // The defaults that depend on the VAE: its patch size, and a chunk that bounds memory.
    const given = options ?? {};
    const isObject = typeof given === "object" && given !== null && !Array.isArray(given);
    const patchSize = (isObject ? given.patchSize : undefined) ?? vh;
    const chunkSize = (isObject ? given.chunkSize : undefined) ?? defaultChunkSize(vc, patchSize);
    const o = readOptions("the patch VAE defense", PARAMS, isObject ? { ...given, patchSize, chunkSize } : given);
    if (o.patchSize !== vh) {
      throw new ShapeError(
        `patch VAE defense: patchSize ${o.patchSize} does not match the VAE, which takes ${vh}x${vw} patches`,
      );
    }
    this.patchSize = o.patchSize;
    this.stride = o.stride;
    this.smoothing = o.smooth;
    this.clip = o.clip;
    this.deterministic = o.deterministic;
    this.samples = o.samples;
    this.chunkSize = o.chunkSize ?? chunkSize;
    this.randomized = !this.deterministic;
    const extra = [...(this.smoothing ? [] : ["no smoothing"]), ...vaeNameSuffix(o)];
    const p = this.patchSize;
    this.name = `VAE ${p}x${p} s${this.stride}${extra.length > 0 ? ` (${extra.join(", ")})` : ""}`;
  }

  private check(x: Tensor): void {
    checkImages(x, this.name);
    const [, c, h, w] = x.dims;
    if (c !== this.vae.inputShape[0] || h < this.patchSize || w < this.patchSize) {
      throw new ShapeError(
        `${this.name}: the VAE reconstructs ${this.vae.inputShape[0]}-channel ${this.patchSize}x${this.patchSize} patches, which do not fit a batch of shape [${x.shape.join(", ")}]`,
      );
    }
  }

  /** The purified batch under the current grad mode. */
  private run(x: Tensor): Tensor {
    const opts = { clip: this.clip, deterministic: this.deterministic, samples: this.samples };
    return tidy(() => {
      const r = patchReconstruct(x, (p) => this.vae.reconstruct(p, opts), this.patchSize, this.stride, {
        chunkSize: this.chunkSize,
      });
      return this.smoothing ? smooth(r) : r;
    });
  }

  async apply(x: Tensor): Promise<Tensor> {
    this.check(x);
    return noGrad(() => this.run(x));
  }

  async attackView(x: Tensor): Promise<Tensor> {
    this.check(x);
    return this.run(x);
  }

  describe(): Record<string, number | string | boolean> {
    return {
      defense: "patchvae",
      patchSize: this.patchSize,
      stride: this.stride,
      smoothing: this.smoothing,
      latentDim: this.vae.latentDim,
      clip: this.clip,
      deterministic: this.deterministic,
      samples: this.samples,
      gradient: this.gradient,
    };
  }
}
