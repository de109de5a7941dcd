/**
 * Purifiers: models that map an image to a cleaned image of the same shape
 * and are trained to remove adversarial perturbations (issue 12). Two
 * architectures implement the `Purifier` interface:
 *
 * - the paper's convolutional VAE (ConvVae, Table 2), unchanged;
 * - ConvPurifier, a larger convolutional VAE shaped like a U-Net *without its
 *   skip connections*: per resolution level two 3x3 convolutions (the second
 *   with stride 2) down to H/2^L x W/2^L, a spatial latent (a 1x1 convolution to
 *   the mean and log-variance of `latentChannels` maps), and a mirrored
 *   decoder (2x nearest upsampling, two 3x3 convolutions per level, a sigmoid).
 *
 * How a perturbation is kept from passing straight through: a U-Net's skip
 * connections copy encoder activations, perturbation included, to the decoder
 * at full resolution, so it can learn the identity. ConvPurifier has none:
 * everything the decoder sees crosses the latent, which is (a) smaller than
 * the image (for MNIST 4 x 7 x 7 = 196 numbers for 784 pixels), (b) at a
 * quarter of the resolution, so a pixel-level pattern cannot be represented
 * one to one, and (c) noisy: z = mu + sigma * eps with the KL term pulling
 * sigma toward 1. Training on adversarial images with the classifier's loss
 * then rewards dropping what the classifier is sensitive to.
 */
import { tidy } from "../core/engine.js";
import { ArgumentError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import { checkInt, checkIntArray } from "../core/validate.js";
import { Module } from "../nn/module.js";
import { Conv2d } from "../nn/layers.js";
import * as F from "../nn/functional.js";
import { ConvVae, type SampleOptions, type VaeLossOptions } from "./vae.js";

/** What a purifier offers: a variational encoder/decoder over images in [0, 1]. */
export interface PurifierApi {
  readonly inputShape: [number, number, number];
  /** Numbers in the latent code of one image. */
  readonly latentDim: number;
  encode(x: Tensor): { mu: Tensor; logvar: Tensor };
  sample(mu: Tensor, logvar: Tensor, options?: SampleOptions): Tensor;
  decode(z: Tensor): Tensor;
  /** Reconstruction; `samples` > 1 averages that many sampled reconstructions. */
  reconstruct(x: Tensor, options?: SampleOptions & { samples?: number }): Tensor;
  /** The VAE loss of reconstructing x from itself (reconstruction + beta * KL). */
  loss(x: Tensor, options?: VaeLossOptions): { loss: Tensor; reconstruction: Tensor; kl: Tensor };
}

export type Purifier = Module & PurifierApi;

export interface ConvPurifierConfig {
  /** [C, H, W] of the images. */
  inputShape: [number, number, number];
  /** Channels per resolution level; each level halves the resolution. */
  widths: number[];
  /** Channels of the spatial latent code. */
  latentChannels: number;
}

export const CONV_PURIFIER_PRESETS: Record<string, ConvPurifierConfig> = {
  mnist: { inputShape: [1, 28, 28], widths: [32, 64], latentChannels: 4 },
  cifar10: { inputShape: [3, 32, 32], widths: [64, 128], latentChannels: 16 },
};

export class ConvPurifier extends Module implements PurifierApi {
  static readonly arch = "conv-purifier";
  readonly inputShape: [number, number, number];
  readonly latentDim: number;
  private readonly encoder: { a: Conv2d; b: Conv2d }[] = [];
  private readonly decoder: { a: Conv2d; b: Conv2d }[] = [];
  private readonly toMu: Conv2d;
  private readonly toLogvar: Conv2d;
  private readonly fromLatent: Conv2d;
  private readonly out: Conv2d;

  constructor(readonly cfg: ConvPurifierConfig) {
    super();
    const [c, h, w] = checkIntArray(cfg.inputShape, "inputShape", 3, 1);
    const widths = checkIntArray(cfg.widths, "widths", undefined, 1);
    if (widths.length === 0) checkIntArray(cfg.widths, "widths", 1, 1);
    const latent = checkInt(cfg.latentChannels, "latentChannels", 1);
    const scale = 2 ** widths.length;
    if (h % scale !== 0 || w % scale !== 0) {
      throw new ArgumentError(`Input ${h}x${w} is not divisible by 2^${widths.length} (one halving per level)`);
    }
    this.inputShape = [c, h, w];
    this.latentDim = latent * (h / scale) * (w / scale);
    let inC = c;
    widths.forEach((width, i) => {
      const a = this.registerModule(`enc${i}a`, new Conv2d(inC, width, 3, { padding: 1 }));
      const b = this.registerModule(`enc${i}b`, new Conv2d(width, width, 3, { padding: 1, stride: 2 }));
      this.encoder.push({ a, b });
      inC = width;
    });
    const deepest = widths[widths.length - 1];
    this.toMu = this.registerModule("toMu", new Conv2d(deepest, latent, 1));
    this.toLogvar = this.registerModule("toLogvar", new Conv2d(deepest, latent, 1));
    this.fromLatent = this.registerModule("fromLatent", new Conv2d(latent, deepest, 1));
    // Decoder level j undoes encoder level n-1-j and ends with the channels of the level above it.
    for (let i = widths.length - 1, j = 0; i >= 0; i--, j++) {
      const outC = i > 0 ? widths[i - 1] : widths[0];
      const a = this.registerModule(`dec${j}a`, new Conv2d(widths[i], widths[i], 3, { padding: 1 }));
      const b = this.registerModule(`dec${j}b`, new Conv2d(widths[i], outC, 3, { padding: 1 }));
      this.decoder.push({ a, b });
    }
    this.out = this.registerModule("out", new Conv2d(widths[0], c, 3, { padding: 1 }));
  }

  config(): Record<string, unknown> {
    return {
      inputShape: [...this.cfg.inputShape],
      widths: [...this.cfg.widths],
      latentChannels: this.cfg.latentChannels,
    };
  }

  encode(x: Tensor): { mu: Tensor; logvar: Tensor } {
    return tidy(() => {
      let h = x;
      for (const level of this.encoder) h = level.b.forward(level.a.forward(h).relu()).relu();
      return { mu: this.toMu.forward(h), logvar: this.toLogvar.forward(h) };
    });
  }

  decode(z: Tensor): Tensor {
    return tidy(() => {
      let h = this.fromLatent.forward(z).relu();
      for (const level of this.decoder) {
        h = F.interpolate(h, { scaleFactor: 2, mode: "nearest" });
        h = level.b.forward(level.a.forward(h).relu()).relu();
      }
      return this.out.forward(h).sigmoid();
    });
  }

  // Sampling, reconstruction and the VAE loss only use encode/decode/sample, and the
  // KL and noise are elementwise, so ConvVae's implementations apply to a spatial latent as
  // they are; they are borrowed rather than copied.

  sample(mu: Tensor, logvar: Tensor, options: SampleOptions = {}): Tensor {
    return ConvVae.prototype.sample.call(this, mu, logvar, options);
  }

  reconstruct(x: Tensor, options: SampleOptions & { samples?: number } = {}): Tensor {
    return ConvVae.prototype.reconstruct.call(this, x, options);
  }

  loss(x: Tensor, options: VaeLossOptions = {}): { loss: Tensor; reconstruction: Tensor; kl: Tensor } {
    return ConvVae.prototype.loss.call(this, x, options);
  }

  lossOfEncoding(
    x: Tensor,
    mu: Tensor,
    logvar: Tensor,
    options: VaeLossOptions = {},
  ): { loss: Tensor; reconstruction: Tensor; kl: Tensor } {
    return ConvVae.prototype.lossOfEncoding.call(this, x, mu, logvar, options);
  }

  forward(x: Tensor): Tensor {
    return this.reconstruct(x);
  }
}
