/**
 * Median smoothing (Xu, Evans & Qi 2018, "Feature Squeezing", section 3.2):
 * each value becomes the median of its k x k neighbourhood in its channel.
 *
 * As EvadeML-Zoo (scipy.ndimage.median_filter, mode "reflect"): the border is
 * extended symmetrically (edge pixel repeated, our "symmetric"); for even k
 * the window spans k/2 pixels before and k/2 - 1 after, and the median of an
 * even count is the upper of the two middle values (scipy's rank k*k // 2).
 *
 * Not differentiable in a useful way: attacks see it through BPDA with the
 * identity. Input [N, C, H, W]; output the same shape.
 */
import { noGrad, tidy } from "../core/engine.js";
import { readOptions, type OptionsOf, type Schema } from "../core/params.js";
import { Tensor, cat } from "../core/tensor.js";
import { checkInt, checkOneOf } from "../core/validate.js";
import * as F from "../nn/functional.js";
import { BpdaDefense, checkImages, padImages, PADDING_PARAM, PAD_MODES, type PadMode } from "./common.js";
import type { DefenseDefinition } from "./types.js";

const PARAMS = {
  size: { type: "int", min: 1, max: 99, default: 3, positional: true, placeholder: "K", doc: "window size k" },
  padding: PADDING_PARAM,
} as const satisfies Schema;

export type MedianOptions = OptionsOf<typeof PARAMS>;

export const MEDIAN_DEFINITION: DefenseDefinition = {
  kind: "median",
  description: "K x K median filter per channel (default 3; feature squeezing); BPDA identity gradient",
  params: PARAMS,
  build: (o) => new MedianDefense(o as MedianOptions),
};

/** Most window values (N * C * k*k * H * W) held at once; larger batches are filtered in slices. */
const MAX_WINDOW_VALUES = 2 ** 25;

/** The k x k median filter per channel of images [N, C, H, W]. */
export function medianFilter(x: Tensor, size: number, padding: PadMode = "symmetric"): Tensor {
  checkImages(x, "medianFilter");
  const k = checkInt(size, "size", 1);
  checkOneOf(padding, "padding", PAD_MODES);
  const [n, c, h, w] = x.dims;
  const before = Math.floor(k / 2);
  const after = k - 1 - before;
  const window = k * k;
  // Median = the ceil(window / 2)-th largest value (scipy's rank window // 2 from the bottom).
  const fromTop = window - Math.floor(window / 2);
  const perImage = c * window * h * w;
  const slice = Math.max(1, Math.floor(MAX_WINDOW_VALUES / perImage));
  return tidy(() => {
    const parts: Tensor[] = [];
    for (let start = 0; start < n; start += slice) {
      const m = Math.min(slice, n - start);
      parts.push(
        tidy(() => {
          const padded = padImages(x.narrow(0, start, m), [before, after, before, after], padding);
          const cols = F.unfold(padded, k).reshape([m, c, window, h * w]);
          return cols.topk(fromTop, 2, true, false).values.min(2).reshape([m, c, h, w]);
        }),
      );
    }
    return parts.length === 1 ? parts[0] : cat(parts, 0);
  });
}

export class MedianDefense extends BpdaDefense {
  readonly name: string;
  readonly size: number;
  readonly padding: PadMode;

  constructor(options: MedianOptions = {}) {
    super();
    const o = readOptions("median smoothing", PARAMS, options);
    this.size = o.size;
    this.padding = o.padding;
    this.name = `Median ${this.size}x${this.size}`;
  }

  async apply(x: Tensor): Promise<Tensor> {
    checkImages(x, this.name);
    return noGrad(() => medianFilter(x, this.size, this.padding));
  }

  describe(): Record<string, number | string | boolean> {
    return { defense: "median", size: this.size, padding: this.padding, gradient: this.gradient };
  }
}
