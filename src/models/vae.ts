/**
 * Convolutional beta-VAEs of the paper's Tables 2 and 3. The encoder is a stack
 * of 3x3 "same" convolutions (ReLU, optional 2x2 max pooling) and a dense layer
 * to the latent mean and log-variance; the decoder mirrors it with a dense
 * layer, 2x upsampling where the encoder pooled, and transposed convolutions,
 * ending in a sigmoid so reconstructions are in [0, 1].
 *
 * Sampling: z = mu + sigma * clip(eps, -c, c), eps ~ N(0, I) (the authors clip
 * the noise, default c = 5), or z = mu in deterministic mode.
 */
import { Tensor, randn } from "../core/tensor.js";
import { tidy } from "../core/engine.js";
import { checkInt, checkNumber, checkOneOf, fail } from "../core/validate.js";
import { ArgumentError } from "../core/errors.js";
import { Module } from "../nn/module.js";
import { Conv2d, ConvTranspose2d, Linear } from "../nn/layers.js";
import * as F from "../nn/functional.js";

export interface ConvVaeConfig {
  /** [C, H, W] of the images (or patches) the VAE reconstructs. */
  inputShape: [number, number, number];
  /** Encoder convolutions, first to last. */
  encoder: { channels: number; pool: boolean }[];
  latentDim: number;
  kernelSize?: number;
}

/** The paper's architectures (Table 2: MNIST, CIFAR-10; Table 3: NIPS 2017 patches). */
export const VAE_PRESETS: Record<string, ConvVaeConfig> = {
  mnist: {
    inputShape: [1, 28, 28],
    encoder: [
      { channels: 16, pool: true },
      { channels: 8, pool: true },
    ],
    latentDim: 256,
  },
  cifar10: {
    inputShape: [3, 32, 32],
    encoder: [
      { channels: 64, pool: true },
      { channels: 32, pool: false },
      { channels: 16, pool: false },
    ],
    latentDim: 1024,
  },
  patch16: {
    inputShape: [3, 16, 16],
    encoder: [
      { channels: 64, pool: true },
      { channels: 32, pool: false },
      { channels: 16, pool: false },
    ],
    latentDim: 512,
  },
  patch32: {
    inputShape: [3, 32, 32],
    encoder: [
      { channels: 64, pool: true },
      { channels: 32, pool: false },
      { channels: 16, pool: false },
    ],
    latentDim: 512,
  },
  patch64: {
    inputShape: [3, 64, 64],
    encoder: [
      { channels: 128, pool: true },
      { channels: 64, pool: false },
      { channels: 32, pool: false },
    ],
    latentDim: 1024,
  },
};

export interface SampleOptions {
  /** Clip the standard-normal noise to [-clip, clip] (default 5). */
  clip?: number;
  /** Use z = mu (no noise). */
  deterministic?: boolean;
}

export interface VaeLossOptions {
  /** Weight of the KL term (beta-VAE); the authors use 0.01. */
  beta?: number;
  /** Reconstruction term: sum of squared error or binary cross-entropy over pixels. */
  reconstruction?: "mse" | "bce";
  clip?: number;
}

export class ConvVae extends Module {
  static readonly arch = "conv-vae";
  readonly inputShape: [number, number, number];
  readonly latentDim: number;
  private readonly encConvs: Conv2d[] = [];
  private readonly decConvs: ConvTranspose2d[] = [];
  private readonly fcMu: Linear;
  private readonly fcLogvar: Linear;
  private readonly fcDec: Linear;
  private readonly bottleneck: [number, number, number];
  private readonly pools: boolean[];

  constructor(readonly cfg: ConvVaeConfig) {
    super();
    const [c, h, w] = cfg.inputShape;
    checkInt(c, "inputShape[0]", 1);
    checkInt(cfg.latentDim, "latentDim", 1);
    const k = checkInt(cfg.kernelSize ?? 3, "kernelSize", 1);
    if (k % 2 !== 1) fail("odd integer", "kernelSize", k);
    this.inputShape = cfg.inputShape;
    this.latentDim = cfg.latentDim;
    this.pools = cfg.encoder.map((l) => l.pool);
    const pools = this.pools.filter(Boolean).length;
    const scale = 2 ** pools;
    if (h % scale !== 0 || w % scale !== 0) {
      throw new ArgumentError(`Input ${h}x${w} is not divisible by 2^${pools} (one halving per pooling layer)`);
    }
    let inC = c;
    cfg.encoder.forEach((l, i) => {
      this.encConvs.push(
        this.registerModule(
          `enc${i}`,
          new Conv2d(inC, checkInt(l.channels, "channels", 1), k, { padding: (k - 1) / 2 }),
        ),
      );
      inC = l.channels;
    });
    this.bottleneck = [inC, h / scale, w / scale];
    const flat = this.bottleneck[0] * this.bottleneck[1] * this.bottleneck[2];
    this.fcMu = this.registerModule("fcMu", new Linear(flat, cfg.latentDim));
    this.fcLogvar = this.registerModule("fcLogvar", new Linear(flat, cfg.latentDim));
    this.fcDec = this.registerModule("fcDec", new Linear(cfg.latentDim, flat));
    // Mirror: decoder layer i undoes encoder layer n-1-i, mapping its output channels back to its input channels.
    const chans = [c, ...cfg.encoder.map((l) => l.channels)];
    for (let i = cfg.encoder.length - 1, j = 0; i >= 0; i--, j++) {
      this.decConvs.push(
        this.registerModule(`dec${j}`, new ConvTranspose2d(chans[i + 1], chans[i], k, { padding: (k - 1) / 2 })),
      );
    }
  }

  config(): Record<string, unknown> {
    return { ...this.cfg };
  }

  encode(x: Tensor): { mu: Tensor; logvar: Tensor } {
    return tidy(() => {
      let h = x;
      this.encConvs.forEach((conv, i) => {
        h = conv.forward(h).relu();
        if (this.pools[i]) h = F.maxPool2d(h, 2);
      });
      const f = h.flatten(1);
      return { mu: this.fcMu.forward(f), logvar: this.fcLogvar.forward(f) };
    });
  }

  sample(mu: Tensor, logvar: Tensor, options: SampleOptions = {}): Tensor {
    if (options.deterministic) return mu.clone();
    const clip = checkNumber(options.clip ?? 5, "clip", 0);
    return tidy(() => {
      let eps = randn(mu.shape);
      if (Number.isFinite(clip)) eps = eps.clamp(-clip, clip);
      return mu.add(logvar.mul(0.5).exp().mul(eps));
    });
  }

  decode(z: Tensor): Tensor {
    return tidy(() => {
      let h = this.fcDec
        .forward(z)
        .relu()
        .reshape([z.dims[0], ...this.bottleneck]);
      const n = this.decConvs.length;
      this.decConvs.forEach((conv, j) => {
        if (this.pools[n - 1 - j]) h = F.interpolate(h, { scaleFactor: 2, mode: "nearest" });
        h = conv.forward(h);
        h = j < n - 1 ? h.relu() : h.sigmoid();
      });
      return h;
    });
  }

  /** One sampled reconstruction (clipped noise, c = 5). */
  forward(x: Tensor): Tensor {
    return this.reconstruct(x);
  }

  /** Reconstruction; with `samples` > 1 the average of that many sampled reconstructions. */
  reconstruct(x: Tensor, options: SampleOptions & { samples?: number } = {}): Tensor {
    const samples = checkInt(options.samples ?? 1, "samples", 1);
    return tidy(() => {
      const { mu, logvar } = this.encode(x);
      if (options.deterministic) return this.decode(mu);
      let acc: Tensor | null = null;
      for (let s = 0; s < samples; s++) {
        const r = this.decode(this.sample(mu, logvar, options));
        acc = acc === null ? r : acc.add(r);
      }
      return samples === 1 ? acc! : acc!.div(samples);
    });
  }

  /**
   * The beta-VAE loss, averaged over the batch: reconstruction summed over
   * pixels plus beta times KL(q(z|x) || N(0, I)) summed over latent dimensions.
   */
  loss(x: Tensor, options: VaeLossOptions = {}): { loss: Tensor; reconstruction: Tensor; kl: Tensor } {
    const beta = checkNumber(options.beta ?? 0.01, "beta", 0);
    const kind = checkOneOf(options.reconstruction ?? "bce", "reconstruction", ["mse", "bce"] as const);
    return tidy(() => {
      const { mu, logvar } = this.encode(x);
      return this.lossOfEncoding(x, mu, logvar, { ...options, beta, reconstruction: kind });
    });
  }

  /**
   * `loss` from an encoding of x already made (`encode(x)`): one sampled decoding
   * (drawing the same noise as `loss` would), the reconstruction term and the KL term.
   * For a caller that needs the encoding for more than the loss, so x is encoded once.
   */
  lossOfEncoding(
    x: Tensor,
    mu: Tensor,
    logvar: Tensor,
    options: VaeLossOptions = {},
  ): { loss: Tensor; reconstruction: Tensor; kl: Tensor } {
    const beta = checkNumber(options.beta ?? 0.01, "beta", 0);
    const kind = checkOneOf(options.reconstruction ?? "bce", "reconstruction", ["mse", "bce"] as const);
    return tidy(() => {
      const n = x.dims[0];
      const r = this.decode(this.sample(mu, logvar, { clip: options.clip }));
      const rec = (kind === "mse" ? F.mseLoss(r, x, "sum") : F.bceLoss(r, x, "sum")).div(n);
      const kl = logvar
        .add(1)
        .sub(mu.square())
        .sub(logvar.exp())
        .sum()
        .mul(-0.5 / n);
      return { loss: rec.add(kl.mul(beta)), reconstruction: rec, kl };
    });
  }
}
