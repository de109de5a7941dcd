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
import { ArgumentError, ShapeError } from "../core/errors.js";
import { readOptions, type OptionsOf, type Schema } from "../core/params.js";
import type { Tensor } from "../core/tensor.js";
import type { Purifier } from "../models/purifier.js";
import { checkImages } from "./common.js";
import type { Defense, DefenseDefinition, GradientKind } from "./types.js";

export const VAE_DEFAULT_CLIP = 5;

/** Parameters shared by the VAE and patch-VAE defenses. */
export const VAE_PARAMS = {
  clip: {
    type: "number",
    min: 0,
    default: VAE_DEFAULT_CLIP,
    placeholder: "C",
    doc: "clip the standard-normal latent noise to [-clip, clip] (the authors' 5)",
  },
  deterministic: { type: "bool", default: false, flag: true, doc: "decode the latent mean instead of a sample" },
  samples: { type: "int", min: 1, default: 1, placeholder: "K", doc: "average this many sampled reconstructions" },
} as const satisfies Schema;

export type VaeDefenseOptions = OptionsOf<typeof VAE_PARAMS>;

/** The name suffix of the VAE options that differ from the paper's ("K=8", "clip 2", "deterministic"). */
export function vaeNameSuffix(o: { clip: number; deterministic: boolean; samples: number }): string[] {
  if (o.deterministic) return ["deterministic"];
  const suffix: string[] = [];
  if (o.samples !== 1) suffix.push(`K=${o.samples}`);
  if (o.clip !== VAE_DEFAULT_CLIP) suffix.push(`clip ${o.clip}`);
  return suffix;
}

export const VAE_DEFINITION: DefenseDefinition = {
  kind: "vae",
  description:
    "VAE reconstruction (Luo & Pfister 2018), noise clipped to [-5, 5], average of K samples; exact gradient",
  params: VAE_PARAMS,
  build: (o, ctx, spec) => {
    if (!ctx.vae) throw new ArgumentError(`Defense spec "${spec}" needs a VAE (ctx.vae) but none was given`);
    return new VaeDefense(ctx.vae, o as VaeDefenseOptions);
  },
};

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
    const o = readOptions("the VAE defense", VAE_PARAMS, options);
    this.clip = o.clip;
    this.deterministic = o.deterministic;
    this.samples = o.samples;
    this.randomized = !this.deterministic;
    const suffix = vaeNameSuffix(o);
    this.name = suffix.length > 0 ? `VAE (${suffix.join(", ")})` : "VAE";
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
