/** Layers, initialised as PyTorch initialises them, with PyTorch parameter names. */
import { Tensor, ones, zeros } from "../core/tensor.js";
import { checkInt, checkNumber, pair } from "../core/validate.js";
import { Module } from "./module.js";
import { defaultBias_, kaimingUniformDefault_ } from "./init.js";
import * as F from "./functional.js";

type Pair = number | [number, number];

export interface Conv2dConfig {
  stride?: Pair;
  padding?: Pair | "same" | "valid";
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: Pair,
    readonly config: Conv2dConfig = {},
  ) {
    super();
    const groups = checkInt(config.groups ?? 1, "groups", 1);
    checkInt(inChannels, "inChannels", 1);
    checkInt(outChannels, "outChannels", 1);
    const [kh, kw] = pair(kernelSize, "kernelSize", 1);
    const shape = [outChannels, inChannels / groups, kh, kw];
    this.weight = this.registerParameter("weight", kaimingUniformDefault_(zeros(shape)));
    this.bias =
      config.bias === false ? null : this.registerParameter("bias", defaultBias_(zeros([outChannels]), shape));
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, this.config);
  }
}

export interface ConvTranspose2dConfig {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

export class ConvTranspose2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: Pair,
    readonly config: ConvTranspose2dConfig = {},
  ) {
    super();
    const groups = checkInt(config.groups ?? 1, "groups", 1);
    const [kh, kw] = pair(kernelSize, "kernelSize", 1);
    const shape = [inChannels, outChannels / groups, kh, kw];
    this.weight = this.registerParameter("weight", kaimingUniformDefault_(zeros(shape)));
    this.bias =
      config.bias === false ? null : this.registerParameter("bias", defaultBias_(zeros([outChannels]), shape));
  }
  forward(x: Tensor): Tensor {
    return F.convTranspose2d(x, this.weight, this.bias, this.config);
  }
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    bias = true,
  ) {
    super();
    checkInt(inFeatures, "inFeatures", 1);
    checkInt(outFeatures, "outFeatures", 1);
    const shape = [outFeatures, inFeatures];
    this.weight = this.registerParameter("weight", kaimingUniformDefault_(zeros(shape)));
    this.bias = bias ? this.registerParameter("bias", defaultBias_(zeros([outFeatures]), shape)) : null;
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly numBatchesTracked: Tensor;
  constructor(
    readonly numFeatures: number,
    readonly eps = 1e-5,
    readonly momentum = 0.1,
  ) {
    super();
    checkInt(numFeatures, "numFeatures", 1);
    checkNumber(eps, "eps", 0);
    checkNumber(momentum, "momentum", 0, 1);
    this.weight = this.registerParameter("weight", ones([numFeatures]));
    this.bias = this.registerParameter("bias", zeros([numFeatures]));
    this.runningMean = this.registerBuffer("running_mean", zeros([numFeatures]));
    this.runningVar = this.registerBuffer("running_var", ones([numFeatures]));
    // Kept for state-dict compatibility with PyTorch.
    this.numBatchesTracked = this.registerBuffer("num_batches_tracked", zeros([], { dtype: "int64" }));
  }
  forward(x: Tensor): Tensor {
    if (this.training) this.numBatchesTracked.add_(1);
    // The module holds exactly batchNorm's options: weights, running statistics, mode, momentum, eps.
    return F.batchNorm(x, this);
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    checkNumber(p, "p", 0, 1);
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }
}

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly options: F.Pool2dOptions = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, this.options);
  }
}

export class AvgPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly options: F.Pool2dOptions = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.avgPool2d(x, this.kernelSize, this.options);
  }
}

export class Upsample extends Module {
  constructor(readonly options: F.InterpolateOptions) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.interpolate(x, this.options);
  }
}

export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
}

export class Unflatten extends Module {
  constructor(readonly shape: number[]) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.reshape([x.dims[0], ...this.shape]);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}

export class LeakyReLU extends Module {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.leakyRelu(this.negativeSlope);
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return x.sigmoid();
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return x.tanh();
  }
}

/** Modules applied in order; children are named "0", "1", ... as in PyTorch. */
export class Sequential extends Module {
  readonly layers: Module[];
  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
    layers.forEach((m, i) => this.registerModule(String(i), m));
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const m of this.layers) {
      const next = m.forward(h);
      if (h !== x) h.dispose();
      h = next;
    }
    return h === x ? x.clone() : h;
  }
}
