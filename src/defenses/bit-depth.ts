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
import { readOptions, type OptionsOf, type Schema } from "../core/params.js";
import type { Tensor } from "../core/tensor.js";
import { BpdaDefense, checkImages } from "./common.js";
import type { DefenseDefinition } from "./types.js";

const PARAMS = {
  bits: { type: "int", min: 1, max: 8, default: 4, positional: true, placeholder: "B", doc: "bits per value" },
} as const satisfies Schema;

export type BitDepthOptions = OptionsOf<typeof PARAMS>;

export const BIT_DEPTH_DEFINITION: DefenseDefinition = {
  kind: "bits",
  description: "bit-depth reduction to B bits, 1..8 (default 4; feature squeezing); BPDA identity gradient",
  params: PARAMS,
  build: (o) => new BitDepthDefense(o as BitDepthOptions),
};

export class BitDepthDefense extends BpdaDefense {
  readonly name: string;
  readonly bits: number;

  constructor(options: BitDepthOptions = {}) {
    super();
    this.bits = readOptions("bit-depth reduction", PARAMS, options).bits;
    this.name = `Bit depth ${this.bits}`;
  }

  async apply(x: Tensor): Promise<Tensor> {
    checkImages(x, this.name);
    const levels = 2 ** this.bits - 1;
    return noGrad(() => tidy(() => x.clamp(0, 1).mul(levels).round().div(levels)));
  }

  describe(): Record<string, number | string | boolean> {
    return { defense: "bits", bits: this.bits, gradient: this.gradient };
  }
}
