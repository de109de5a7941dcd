/**
 * VAE purification (Luo & Pfister 2018, sections 3 and 4): the classifier sees
 * the VAE's reconstruction of the image instead of the image.
 *
 * Defaults are the paper's: one sampled reconstruction with the latent noise
 * clipped to [-5, 5]. `samples` K > 1 classifies the average of K sampled
 * reconstructions (less noise, a weaker random defense); `deterministic`
 * decodes the latent mean (z = mu), which makes the defense a fixed function.
 *
 * Differentiable: attacks get the exact gradient through the VAE (and, as it
 * is random, average it over EOT samples). Input [N, C, H, W] in [0, 1] with
 * [C, H, W] the VAE's inputShape; output the same shape in [0, 1].
 */
import { noGrad } from "../core/engine.js";
import { ShapeError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import { checkBool, checkInt, checkNumber } from "../core/validate.js";
import type { Purifier } from "../models/purifier.js";
import { checkImages, checkOptions } from "./common.js";
import type { Defense, GradientKind } from "./types.js";

export interface VaeDefenseOptions {
  /** Clip the standard-normal latent noise to [-clip, clip] (default 5, the authors' value). */
  clip?: number;
  /** Decode the latent mean instead of a sample (default false). */
  deterministic?: boolean;
  /** Average this many sampled reconstructions (default 1). */
  samples?: number;
}

export const VAE_DEFAULT_CLIP = 5;

/** Parameters shared by the VAE and patch-VAE defenses: checked options and the name suffix. */
export function checkVaeOptions(o: Record<string, unknown>): {
  clip: number;
  deterministic: boolean;
  samples: number;
  suffix: string[];
} {
  const clip = checkNumber(o.clip ?? VAE_DEFAULT_CLIP, "clip", 0);
  const deterministic = checkBool(o.deterministic ?? false, "deterministic");
  const samples = checkInt(o.samples ?? 1, "samples", 1);
  const suffix: string[] = [];
  if (deterministic) suffix.push("deterministic");
  else {
    if (samples !== 1) suffix.push(`K=${samples}`);
    if (clip !== VAE_DEFAULT_CLIP) suffix.push(`clip ${clip}`);
  }
  return { clip, deterministic, samples, suffix };
}

export class VaeDefense implements Defense {
  readonly name: string;
  readonly randomized: boolean;
  readonly gradient: GradientKind = "exact";
  readonly clip: number;
  readonly deterministic: boolean;
  readonly samples: number;

  constructor(
    /** The paper's ConvVae, or any purifier with its interface (a trained ConvPurifier). */
    readonly vae: Purifier,
    options: VaeDefenseOptions = {},
  ) {
    const o = checkOptions("the VAE defense", options, ["clip", "deterministic", "samples"]);
    const v = checkVaeOptions(o);
    this.clip = v.clip;
    this.deterministic = v.deterministic;
    this.samples = v.samples;
    this.randomized = !this.deterministic;
    this.name = v.suffix.length > 0 ? `VAE (${v.suffix.join(", ")})` : "VAE";
  }

  private check(x: Tensor): void {
    checkImages(x, this.name);
    const want = this.vae.inputShape;
    const got = x.dims.slice(1);
    if (got.some((d, i) => d !== want[i])) {
      throw new ShapeError(
        `${this.name}: the VAE reconstructs images of shape [${want.join(", ")}] but received a batch of shape [${x.shape.join(", ")}]`,
      );
    }
  }

  /** The reconstruction under the current grad mode. */
  private reconstruct(x: Tensor): Tensor {
    return this.vae.reconstruct(x, { clip: this.clip, deterministic: this.deterministic, samples: this.samples });
  }

  async apply(x: Tensor): Promise<Tensor> {
    this.check(x);
    return noGrad(() => this.reconstruct(x));
  }

  async attackView(x: Tensor): Promise<Tensor> {
    this.check(x);
    return this.reconstruct(x);
  }

  describe(): Record<string, number | string | boolean> {
    return {
      defense: "vae",
      inputShape: this.vae.inputShape.join("x"),
      latentDim: this.vae.latentDim,
      clip: this.clip,
      deterministic: this.deterministic,
      samples: this.samples,
      gradient: this.gradient,
    };
  }
}
