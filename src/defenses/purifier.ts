/**
 * A trained purifier as a defense (issue 12): the VAE defense's behaviour —
 * reconstruction with latent noise clipped to [-C, C], the average of K
 * samples, or the deterministic decoding of the latent mean; exact gradients
 * for adaptive attacks — under its own name, so a report can put the paper's
 * VAE and a purifier trained against adaptive attacks side by side.
 *
 * Input [N, C, H, W] in [0, 1] with [C, H, W] the purifier's inputShape;
 * output the same shape in [0, 1].
 */
import { ArgumentError } from "../core/errors.js";
import type { Purifier } from "../models/purifier.js";
import type { DefenseDefinition } from "./types.js";
import { VAE_PARAMS, VaeDefense, type VaeDefenseOptions } from "./vae.js";

export const PURIFIER_DEFINITION: DefenseDefinition = {
  kind: "purifier",
  description:
    "a purifier trained against adaptive attacks (vaeguard train purifier), used as the vae defense; exact gradient",
  params: VAE_PARAMS,
  build: (o, ctx, spec) => {
    if (!ctx.purifier)
      throw new ArgumentError(`Defense spec "${spec}" needs a trained purifier (ctx.purifier) but none was given`);
    return new PurifierDefense(ctx.purifier, o as VaeDefenseOptions);
  },
};

export class PurifierDefense extends VaeDefense {
  constructor(purifier: Purifier, options: VaeDefenseOptions = {}) {
    super(purifier, options);
    // The VAE defense names itself "VAE (options)"; the options part is kept.
    Object.defineProperty(this, "name", { value: this.name.replace(/^VAE/, "Purifier"), enumerable: true });
  }

  override describe(): Record<string, number | string | boolean> {
    return { ...super.describe(), defense: "purifier" };
  }
}
