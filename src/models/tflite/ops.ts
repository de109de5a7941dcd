/**
 * The TFLite operators an image classifier such as MobileNetV2 needs, each a
 * small Module over float tensors (quantised weights are dequantised once at
 * load time, activations run in float32).
 *
 * Layout: TFLite is channel-last (NHWC); inside the rebuilt graph every
 * rank-4 value is held channel-first (NCHW) for libtorch's convolutions, every
 * other value in TFLite's own order. Ops whose meaning depends on the element
 * order (RESHAPE, MEAN, SOFTMAX, PAD, broadcasting ADD) convert explicitly.
 */
import { Tensor, tensor } from "../../core/tensor.js";
import { tidy } from "../../core/engine.js";
import { ShapeError } from "../../core/errors.js";
import { Module } from "../../nn/module.js";
import * as F from "../../nn/functional.js";
import type { ActivationName, PaddingName } from "./schema.js";

/** Failure while building an op: the loader adds the file name and the operator index. */
export class OpBuildError extends Error {}

export function toNhwc(x: Tensor): Tensor {
  return x.rank === 4 ? x.permute(0, 2, 3, 1) : x;
}

export function toNchw(x: Tensor): Tensor {
  return x.rank === 4 ? x.permute(0, 3, 1, 2).contiguous() : x;
}

/** A fresh handle on the same values, so that graph values never alias each other's JS objects. */
export function alias(x: Tensor): Tensor {
  return x.reshape(x.shape);
}

/** A fused activation; throws for one that float execution cannot reproduce. */
export function fusedActivation(name: ActivationName): (x: Tensor) => Tensor {
  switch (name) {
    case "NONE":
      return alias;
    case "RELU":
      return (x) => x.relu();
    case "RELU6":
      return (x) => x.clamp(0, 6);
    case "RELU_N1_TO_1":
      return (x) => x.clamp(-1, 1);
    case "TANH":
      return (x) => x.tanh();
    default:
      throw new OpBuildError(`unsupported fused activation ${name}`);
  }
}

/** A float constant in TFLite order, plus its shape. */
export interface FloatConstant {
  data: Float32Array;
  shape: number[];
}

/** One rebuilt operator. `run` may create temporaries freely: the graph runs it inside tidy. */
export abstract class TfliteOp extends Module {
  constructor(
    readonly opName: string,
    readonly index: number,
  ) {
    super();
  }
  abstract run(inputs: Tensor[]): Tensor;
  forward(x: Tensor): Tensor {
    return tidy(() => this.run([x]));
  }
  protected image(x: Tensor): Tensor {
    if (x.rank !== 4)
      throw new ShapeError(`${this.opName} needs an image [N, H, W, C] but the input has rank ${x.rank}`);
    return x;
  }
}

function positive(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 1) throw new OpBuildError(`${what} is ${v}; expected a positive integer`);
  return v;
}

export interface ConvSpec {
  padding: PaddingName;
  stride: [number, number];
  dilation: [number, number];
  activation: ActivationName;
}

/**
 * CONV_2D (filter [out, kh, kw, in]) and DEPTHWISE_CONV_2D (filter
 * [1, kh, kw, in * multiplier]; output channel i * multiplier + m belongs to
 * input channel i, which is libtorch's grouped-convolution order).
 */
export class ConvOp extends TfliteOp {
  private weight: Tensor;
  private bias: Tensor | null;
  private readonly act: (x: Tensor) => Tensor;
  readonly groups: number;
  constructor(
    opName: "CONV_2D" | "DEPTHWISE_CONV_2D",
    index: number,
    readonly spec: ConvSpec,
    filter: FloatConstant,
    bias: FloatConstant | null,
    inChannels: number,
    depthMultiplier = 1,
  ) {
    super(opName, index);
    spec.stride.forEach((s) => positive(s, "stride"));
    spec.dilation.forEach((d) => positive(d, "dilation"));
    this.act = fusedActivation(spec.activation);
    if (filter.shape.length !== 4)
      throw new OpBuildError(`filter has shape [${filter.shape.join(", ")}]; expected rank 4`);
    const [a, kh, kw, d] = filter.shape;
    let outC: number;
    if (opName === "CONV_2D") {
      if (d !== inChannels) {
        throw new OpBuildError(
          `filter [${filter.shape.join(", ")}] expects ${d} input channels but the input has ${inChannels}`,
        );
      }
      outC = a;
      this.groups = 1;
      this.weight = this.registerParameter(
        "weight",
        tidy(() => tensor(filter.data, filter.shape).permute(0, 3, 1, 2).contiguous()),
      );
    } else {
      if (a !== 1)
        throw new OpBuildError(`depthwise filter has shape [${filter.shape.join(", ")}]; expected [1, kh, kw, C]`);
      const mult = positive(depthMultiplier, "depth_multiplier");
      if (d !== inChannels * mult) {
        throw new OpBuildError(
          `depthwise filter [${filter.shape.join(", ")}] does not fit ${inChannels} input channels with depth multiplier ${mult}`,
        );
      }
      outC = d;
      this.groups = inChannels;
      this.weight = this.registerParameter(
        "weight",
        tidy(() => tensor(filter.data, filter.shape).permute(3, 0, 1, 2).contiguous()),
      );
      void kh;
      void kw;
    }
    if (bias && (bias.shape.length !== 1 || bias.shape[0] !== outC)) {
      throw new OpBuildError(`bias has shape [${bias.shape.join(", ")}] but the filter has ${outC} outputs`);
    }
    this.bias = bias ? this.registerParameter("bias", tensor(bias.data, bias.shape)) : null;
  }
  protected override onMoved(): void {
    const p = new Map(this.namedParameters());
    this.weight = p.get("weight")!;
    this.bias = p.get("bias") ?? null;
  }
  run([x]: Tensor[]): Tensor {
    const y = F.conv2d(this.image(x), this.weight, this.bias, {
      stride: this.spec.stride,
      dilation: this.spec.dilation,
      // F.conv2d's "same" is TensorFlow's rule, which TFLite shares: output ceil(in / stride),
      // total padding max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0), the odd pixel after.
      padding: this.spec.padding === "SAME" ? "same" : "valid",
      groups: this.groups,
    });
    return this.act(y);
  }
}

/**
 * AVERAGE_POOL_2D. TFLite averages over the window's pixels inside the image
 * only (padding is not counted), so SAME pooling divides by a pooled mask.
 */
export class AvgPoolOp extends TfliteOp {
  private readonly act: (x: Tensor) => Tensor;
  constructor(
    index: number,
    readonly padding: PaddingName,
    readonly filter: [number, number],
    readonly stride: [number, number],
    activation: ActivationName,
  ) {
    super("AVERAGE_POOL_2D", index);
    filter.forEach((f) => positive(f, "filter size"));
    stride.forEach((s) => positive(s, "stride"));
    this.act = fusedActivation(activation);
  }
  run([x]: Tensor[]): Tensor {
    const img = this.image(x);
    const [, c, h, w] = img.dims;
    if (this.padding === "VALID") {
      if (h < this.filter[0] || w < this.filter[1]) {
        throw new ShapeError(`AVERAGE_POOL_2D: filter ${this.filter.join("x")} is larger than the input ${h}x${w}`);
      }
      return this.act(F.avgPool2d(img, this.filter, { stride: this.stride }));
    }
    const p = F.samePadding(h, w, this.filter, this.stride, [1, 1]);
    if (p.every((v) => v === 0)) return this.act(F.avgPool2d(img, this.filter, { stride: this.stride }));
    const sums = F.avgPool2d(img.pad(p), this.filter, { stride: this.stride });
    const mask = tensor(new Float32Array(h * w).fill(1), [1, 1, h, w]).pad(p);
    const counts = F.avgPool2d(mask, this.filter, { stride: this.stride });
    void c;
    return this.act(sums.div(counts));
  }
}

/** ADD with broadcasting in TFLite's (NHWC) order; either operand may be a constant. */
export class AddOp extends TfliteOp {
  private readonly act: (x: Tensor) => Tensor;
  private constant: Tensor | null;
  constructor(
    index: number,
    activation: ActivationName,
    constant: FloatConstant | null,
    /** Which input the constant replaces (0 or 1). */
    readonly constantSlot: number,
  ) {
    super("ADD", index);
    this.act = fusedActivation(activation);
    this.constant = constant ? this.registerBuffer("constant", tensor(constant.data, constant.shape)) : null;
  }
  protected override onMoved(): void {
    this.constant = new Map(this.namedBuffers()).get("constant") ?? null;
  }
  run(inputs: Tensor[]): Tensor {
    const operands = [...inputs];
    if (this.constant) operands.splice(this.constantSlot, 0, this.constant);
    const [a, b] = operands;
    if (a.rank === 4 && b.rank === 4) return this.act(a.add(b)); // both NCHW: same broadcasting
    // Broadcast in NHWC order, then back.
    const y = toNhwc(a).add(toNhwc(b));
    return this.act(toNchw(y));
  }
}

/** MEAN over constant axes (TFLite order), with keep_dims. */
export class MeanOp extends TfliteOp {
  constructor(
    index: number,
    readonly axes: number[],
    readonly keepDims: boolean,
  ) {
    super("MEAN", index);
  }
  run([x]: Tensor[]): Tensor {
    const r = x.rank;
    const axes = [...new Set(this.axes.map((a) => (a < 0 ? a + r : a)))];
    if (axes.some((a) => a < 0 || a >= r))
      throw new ShapeError(`MEAN: axes [${this.axes.join(", ")}] do not fit rank ${r}`);
    if (axes.includes(0)) throw new ShapeError("MEAN over the batch dimension is not supported");
    return toNchw(toNhwc(x).mean(axes, this.keepDims));
  }
}

/** RESHAPE in TFLite's order. The first dimension is the batch: the file's batch size (1) is replaced by the input's. */
export class ReshapeOp extends TfliteOp {
  constructor(
    index: number,
    readonly target: number[],
  ) {
    super("RESHAPE", index);
    if (target.length === 0 || target[0] !== 1) {
      throw new OpBuildError(
        `RESHAPE to [${target.join(", ")}] changes the batch dimension; only reshapes that keep a batch of 1 are supported`,
      );
    }
  }
  run([x]: Tensor[]): Tensor {
    const shape = [x.dims[0], ...this.target.slice(1)];
    return toNchw(toNhwc(x).contiguous().reshape(shape));
  }
}

/** SOFTMAX over the last axis (TFLite's channels), with beta. */
export class SoftmaxOp extends TfliteOp {
  constructor(
    index: number,
    readonly beta: number,
  ) {
    super("SOFTMAX", index);
  }
  run([x]: Tensor[]): Tensor {
    const scaled = this.beta === 1 ? x : x.mul(this.beta);
    return F.softmax(scaled, x.rank === 4 ? 1 : -1);
  }
}

/**
 * PAD with constant paddings [[before, after] per dimension] in TFLite order.
 * The value is zero: a quantised PAD fills with the zero point, which is 0 in float.
 */
export class PadOp extends TfliteOp {
  constructor(
    index: number,
    readonly paddings: [number, number][],
  ) {
    super("PAD", index);
    if (paddings.some(([a, b]) => !Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b < 0)) {
      throw new OpBuildError(`paddings ${JSON.stringify(paddings)} must be non-negative integers`);
    }
    if (paddings.length > 0 && (paddings[0][0] !== 0 || paddings[0][1] !== 0)) {
      throw new OpBuildError("PAD along the batch dimension is not supported");
    }
  }
  run([x]: Tensor[]): Tensor {
    if (x.rank !== this.paddings.length) {
      throw new ShapeError(`PAD: ${this.paddings.length} paddings for an input of rank ${x.rank}`);
    }
    // torch pads the last dimension first; NCHW order for images.
    const order = x.rank === 4 ? [0, 3, 1, 2] : [...Array(x.rank).keys()];
    const pads: number[] = [];
    for (let i = order.length - 1; i >= 0; i--) pads.push(...this.paddings[order[i]]);
    return x.pad(pads);
  }
}

/** QUANTIZE and DEQUANTIZE: in float execution a value and its quantised form are the same number. */
export class IdentityOp extends TfliteOp {
  run([x]: Tensor[]): Tensor {
    return alias(x);
  }
}
