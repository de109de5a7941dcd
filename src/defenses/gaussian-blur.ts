/**
 * Gaussian blur, a low-pass basis transformation of the kind Shaham et al.
 * (2018) compare with JPEG: each channel is convolved with a separable
 * Gaussian of standard deviation sigma (in pixels).
 *
 * As scipy.ndimage.gaussian_filter by default: kernel radius
 * round(4 * sigma) (truncate 4.0), weights normalised to sum to one, border
 * extended symmetrically (scipy's "reflect").
 *
 * Differentiable (index gathers and convolutions): attacks get the exact
 * gradient. Input [N, C, H, W]; output the same shape, in [0, 1] when the
 * input is.
 */
import { noGrad, tidy } from "../core/engine.js";
import { readOptions, type OptionsOf, type Schema } from "../core/params.js";
import { Tensor, tensor } from "../core/tensor.js";
import { fail } from "../core/validate.js";
import * as F from "../nn/functional.js";
import { checkImages, padImages, PADDING_PARAM, type PadMode } from "./common.js";
import type { Defense, DefenseDefinition, GradientKind } from "./types.js";

const PARAMS = {
  sigma: {
    type: "number",
    min: 0,
    max: 100,
    default: 1,
    positional: true,
    doc: "standard deviation in pixels",
    check: (sigma: number) => {
      if (sigma === 0) fail("number greater than 0 and at most 100", "sigma", sigma);
    },
  },
  kernelSize: {
    type: "int",
    key: "size",
    min: 1,
    max: 801,
    positional: true,
    placeholder: "KERNEL",
    default: (v) => 2 * Math.round(4 * (v.sigma as number)) + 1,
    defaultText: "2 * round(4 * sigma) + 1, scipy's truncate 4.0",
    doc: "odd kernel size",
    check: (size: number) => {
      if (size % 2 !== 1) fail("odd integer", "kernelSize", size);
    },
  },
  padding: PADDING_PARAM,
} as const satisfies Schema;

export type GaussianBlurOptions = OptionsOf<typeof PARAMS>;

export const GAUSSIAN_BLUR_DEFINITION: DefenseDefinition = {
  kind: "gauss",
  description: "Gaussian blur of std SIGMA pixels (default 1), kernel 2*round(4*SIGMA)+1; exact gradient",
  params: PARAMS,
  build: (o) => new GaussianBlurDefense(o as GaussianBlurOptions),
};

/** The normalised 1-D Gaussian weights of odd length `size`. */
export function gaussianWeights(sigma: number, size: number): number[] {
  const r = (size - 1) / 2;
  const raw = Array.from({ length: size }, (_, i) => Math.exp(-0.5 * ((i - r) / sigma) ** 2));
  const total = raw.reduce((a, b) => a + b, 0);
  return raw.map((v) => v / total);
}

/** Separable Gaussian blur of images [N, C, H, W]; differentiable. */
export function gaussianBlur(x: Tensor, sigma: number, size: number, padding: PadMode = "symmetric"): Tensor {
  checkImages(x, "gaussianBlur");
  const c = x.dims[1];
  const r = (size - 1) / 2;
  return tidy(() => {
    const g = tensor(gaussianWeights(sigma, size)).to(x.dtype).to(x.device);
    const vertical = g.reshape([1, 1, size, 1]).expand([c, 1, size, 1]).contiguous();
    const horizontal = g.reshape([1, 1, 1, size]).expand([c, 1, 1, size]).contiguous();
    const padded = padImages(x, [r, r, r, r], padding);
    return F.conv2d(F.conv2d(padded, vertical, null, { groups: c }), horizontal, null, { groups: c });
  });
}

export class GaussianBlurDefense implements Defense {
  readonly name: string;
  readonly randomized = false;
  readonly gradient: GradientKind = "exact";
  readonly sigma: number;
  readonly kernelSize: number;
  readonly padding: PadMode;

  constructor(options: GaussianBlurOptions = {}) {
    const o = readOptions("Gaussian blur", PARAMS, options);
    this.sigma = o.sigma;
    this.kernelSize = o.kernelSize;
    this.padding = o.padding;
    this.name = `Gaussian blur ${this.sigma}`;
  }

  async apply(x: Tensor): Promise<Tensor> {
    checkImages(x, this.name);
    return noGrad(() => gaussianBlur(x, this.sigma, this.kernelSize, this.padding));
  }

  async attackView(x: Tensor): Promise<Tensor> {
    checkImages(x, this.name);
    return gaussianBlur(x, this.sigma, this.kernelSize, this.padding);
  }

  describe(): Record<string, number | string | boolean> {
    return {
      defense: "gauss",
      sigma: this.sigma,
      kernelSize: this.kernelSize,
      padding: this.padding,
      gradient: this.gradient,
    };
  }
}
