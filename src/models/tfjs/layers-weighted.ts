/** The Keras layers with weights: convolutions (plain, depthwise, separable), dense, batch normalisation. */
import type { Tensor } from "../../core/tensor.js";
import { tidy } from "../../core/engine.js";
import { ShapeError } from "../../core/errors.js";
import * as F from "../../nn/functional.js";
import { tensor } from "../../core/tensor.js";
import type { DecodedWeight } from "./weights.js";
import {
  Cfg,
  KerasLayer,
  lookupActivation,
  takeWeight,
  toNchw,
  toNhwc,
  weightTensor,
  type Activation,
  type LayerContext,
} from "./layer.js";

/** What the three convolutions read alike (strides, dilation, padding, activation, an optional bias) and how they run. */
abstract class ConvolutionLayer extends KerasLayer {
  readonly stride: [number, number];
  readonly dilation: [number, number];
  readonly pad: "same" | "valid";
  activation: { name: string; fn: Activation };
  constructor(name: string, cls: string, cfg: Cfg, ctx: LayerContext) {
    super(name, cls);
    cfg.channelsLast();
    this.stride = cfg.pair("strides", [1, 1]);
    this.dilation = cfg.pair("dilation_rate", [1, 1]);
    this.pad = cfg.padding();
    this.activation = lookupActivation(cfg.c.activation, name, ctx.file);
  }
  /** The bias of `outputs` channels, unless use_bias is false. */
  protected biasOf(cfg: Cfg, ctx: LayerContext, outputs: number): Tensor | null {
    if (!cfg.bool("use_bias", true)) return null;
    return this.registerParameter(
      "bias",
      weightTensor(takeWeight(ctx, this.kerasName, this.className, "bias", [outputs])),
    );
  }
  protected convolve(x: Tensor, weight: Tensor, bias: Tensor | null, groups: number): Tensor {
    return F.conv2d(x, weight, bias, { stride: this.stride, padding: this.pad, dilation: this.dilation, groups });
  }
}

export class Conv2DLayer extends ConvolutionLayer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly groups: number;
  constructor(name: string, cfg: Cfg, ctx: LayerContext) {
    super(name, "Conv2D", cfg, ctx);
    const filters = cfg.int("filters", undefined, 1);
    const [kh, kw] = cfg.pair("kernel_size");
    this.groups = cfg.int("groups", 1, 1);
    const k = takeWeight(ctx, name, "Conv2D", "kernel", [kh, kw, null, filters]);
    // [kh, kw, in/groups, out] -> [out, in/groups, kh, kw]
    this.weight = this.registerParameter("weight", weightTensor(k, [3, 2, 0, 1]));
    this.bias = this.biasOf(cfg, ctx, filters);
  }
  call(inputs: Tensor[]): Tensor {
    return this.activation.fn(this.convolve(this.image(inputs), this.weight, this.bias, this.groups));
  }
}

export class DepthwiseConv2DLayer extends ConvolutionLayer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly inChannels: number;
  constructor(name: string, cfg: Cfg, ctx: LayerContext) {
    super(name, "DepthwiseConv2D", cfg, ctx);
    const [kh, kw] = cfg.pair("kernel_size");
    const mult = cfg.int("depth_multiplier", 1, 1);
    const k = takeWeight(ctx, name, "DepthwiseConv2D", "depthwise_kernel", [kh, kw, null, mult]);
    this.inChannels = k.shape[2];
    this.weight = this.registerParameter("weight", depthwiseWeight(k));
    this.bias = this.biasOf(cfg, ctx, this.inChannels * mult);
  }
  call(inputs: Tensor[]): Tensor {
    return this.activation.fn(this.convolve(this.image(inputs), this.weight, this.bias, this.inChannels));
  }
}

/** [kh, kw, in, mult] -> [in * mult, 1, kh, kw]: TF's output channel i * mult + m is group i's m-th filter. */
export function depthwiseWeight(k: DecodedWeight): Tensor {
  const [kh, kw, inC, mult] = k.shape;
  return tidy(() =>
    tensor(k.data, k.shape)
      .permute(2, 3, 0, 1)
      .contiguous()
      .reshape([inC * mult, 1, kh, kw]),
  );
}

export class SeparableConv2DLayer extends ConvolutionLayer {
  readonly depthwise: Tensor;
  readonly pointwise: Tensor;
  readonly bias: Tensor | null;
  readonly inChannels: number;
  constructor(name: string, cfg: Cfg, ctx: LayerContext) {
    super(name, "SeparableConv2D", cfg, ctx);
    const filters = cfg.int("filters", undefined, 1);
    const [kh, kw] = cfg.pair("kernel_size");
    const mult = cfg.int("depth_multiplier", 1, 1);
    const dk = takeWeight(ctx, name, "SeparableConv2D", "depthwise_kernel", [kh, kw, null, mult]);
    this.inChannels = dk.shape[2];
    const pk = takeWeight(ctx, name, "SeparableConv2D", "pointwise_kernel", [1, 1, this.inChannels * mult, filters]);
    this.depthwise = this.registerParameter("depthwise_weight", depthwiseWeight(dk));
    this.pointwise = this.registerParameter("pointwise_weight", weightTensor(pk, [3, 2, 0, 1]));
    this.bias = this.biasOf(cfg, ctx, filters);
  }
  call(inputs: Tensor[]): Tensor {
    const d = this.convolve(this.image(inputs), this.depthwise, null, this.inChannels);
    return this.activation.fn(F.conv2d(d, this.pointwise, this.bias));
  }
}

export class DenseLayer extends KerasLayer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  activation: { name: string; fn: Activation };
  constructor(name: string, cfg: Cfg, ctx: LayerContext) {
    super(name, "Dense");
    const units = cfg.int("units", undefined, 1);
    this.activation = lookupActivation(cfg.c.activation, name, ctx.file);
    // [in, out] -> [out, in]
    this.weight = this.registerParameter(
      "weight",
      weightTensor(takeWeight(ctx, name, "Dense", "kernel", [null, units]), [1, 0]),
    );
    this.bias = cfg.bool("use_bias", true)
      ? this.registerParameter("bias", weightTensor(takeWeight(ctx, name, "Dense", "bias", [units])))
      : null;
  }
  call(inputs: Tensor[]): Tensor {
    const x = this.one(inputs);
    // Dense acts on Keras's last axis: the channels of an image.
    const y = x.rank === 4 ? toNchw(F.linear(toNhwc(x), this.weight, this.bias)) : F.linear(x, this.weight, this.bias);
    return this.activation.fn(y);
  }
}

export class BatchNormLayer extends KerasLayer {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly eps: number;
  readonly momentum: number;
  readonly axis: number;
  constructor(name: string, cfg: Cfg, ctx: LayerContext) {
    super(name, "BatchNormalization");
    const axis = Array.isArray(cfg.c.axis) && cfg.c.axis.length === 1 ? cfg.c.axis[0] : (cfg.c.axis ?? -1);
    if (!Number.isInteger(axis)) cfg.bad("axis", "one integer");
    this.axis = axis as number;
    this.eps = cfg.num("epsilon", 1e-3);
    // PyTorch's convention: the weight of the new batch (Keras gives the weight of the old statistics).
    this.momentum = 1 - cfg.num("momentum", 0.99);
    const mean = takeWeight(ctx, name, "BatchNormalization", "moving_mean", [null]);
    const c = mean.shape[0];
    this.weight = cfg.bool("scale", true)
      ? this.registerParameter("weight", weightTensor(takeWeight(ctx, name, "BatchNormalization", "gamma", [c])))
      : null;
    this.bias = cfg.bool("center", true)
      ? this.registerParameter("bias", weightTensor(takeWeight(ctx, name, "BatchNormalization", "beta", [c])))
      : null;
    this.runningMean = this.registerBuffer("running_mean", weightTensor(mean));
    this.runningVar = this.registerBuffer(
      "running_var",
      weightTensor(takeWeight(ctx, name, "BatchNormalization", "moving_variance", [c])),
    );
  }
  call(inputs: Tensor[]): Tensor {
    const x = this.one(inputs);
    const a = this.axis < 0 ? this.axis + x.rank : this.axis;
    if (a !== x.rank - 1 || (x.rank !== 2 && x.rank !== 4)) {
      throw new ShapeError(
        `BatchNormalization over axis ${this.axis} of a rank-${x.rank} input is not supported (only the channel axis of rank-2 or rank-4 inputs)`,
      );
    }
    // The layer holds exactly batchNorm's options: weights, running statistics, mode, momentum, eps.
    return F.batchNorm(x, this);
  }
}
