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
import { Tensor, cat } from "../core/tensor.js";
import { checkInt, checkOneOf } from "../core/validate.js";
import * as F from "../nn/functional.js";
import { bpdaIdentity, checkImages, checkOptions, padImages, PAD_MODES, type PadMode } from "./common.js";
import type { Defense, GradientKind } from "./types.js";

export interface MedianOptions {
  /** Window size k (default 3). */
  size?: number;
  /** Border extension (default "symmetric", scipy's "reflect"). */
  padding?: PadMode;
}

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

export class MedianDefense implements Defense {
  readonly name: string;
  readonly randomized = false;
  readonly gradient: GradientKind = "bpda-identity";
  readonly size: number;
  readonly padding: PadMode;

  constructor(options: MedianOptions = {}) {
    const o = checkOptions("median smoothing", options, ["size", "padding"]);
    this.size = checkInt(o.size ?? 3, "size", 1, 99);
    this.padding = checkOneOf(o.padding ?? "symmetric", "padding", PAD_MODES);
    this.name = `Median ${this.size}x${this.size}`;
  }

  async apply(x: Tensor): Promise<Tensor> {
    checkImages(x, this.name);
    return noGrad(() => medianFilter(x, this.size, this.padding));
  }

  async attackView(x: Tensor): Promise<Tensor> {
    const y = await this.apply(x);
    try {
      return bpdaIdentity(x, y);
    } finally {
      y.dispose();
    }
  }

  describe(): Record<string, number | string | boolean> {
    return { defense: "median", size: this.size, padding: this.padding, gradient: this.gradient };
  }
}
