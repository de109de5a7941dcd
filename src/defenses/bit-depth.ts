/**
 * Bit-depth reduction (Xu, Evans & Qi 2018, "Feature Squeezing", section 3.1):
 * each value becomes round(x * (2^b - 1)) / (2^b - 1), as EvadeML-Zoo's
 * reduce_precision (np.rint, ties to even, as libtorch's round).
 *
 * Not differentiable (a staircase with zero gradient almost everywhere):
 * attacks see it through BPDA with the identity. Input [N, C, H, W] in
 * [0, 1] (clamped); output the same shape with values in {k / (2^b - 1)}.
 */
import { noGrad, tidy } from "../core/engine.js";
import type { Tensor } from "../core/tensor.js";
import { checkInt } from "../core/validate.js";
import { bpdaIdentity, checkImages, checkOptions } from "./common.js";
import type { Defense, GradientKind } from "./types.js";

export interface BitDepthOptions {
  /** Bits per value, 1..8 (default 4). */
  bits?: number;
}

export class BitDepthDefense implements Defense {
  readonly name: string;
  readonly randomized = false;
  readonly gradient: GradientKind = "bpda-identity";
  readonly bits: number;

  constructor(options: BitDepthOptions = {}) {
    const o = checkOptions("bit-depth reduction", options, ["bits"]);
    this.bits = checkInt(o.bits ?? 4, "bits", 1, 8);
    this.name = `Bit depth ${this.bits}`;
  }

  async apply(x: Tensor): Promise<Tensor> {
    checkImages(x, this.name);
    const levels = 2 ** this.bits - 1;
    return noGrad(() => tidy(() => x.clamp(0, 1).mul(levels).round().div(levels)));
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
    return { defense: "bits", bits: this.bits, gradient: this.gradient };
  }
}
