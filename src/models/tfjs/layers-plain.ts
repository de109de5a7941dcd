/** The Keras layers without weights: activations, pooling, padding and cropping, merges, reshapes. */
import { cat, zeros, type Tensor } from "../../core/tensor.js";
import { ShapeError } from "../../core/errors.js";
import * as F from "../../nn/functional.js";
import { fmt } from "./format.js";
import {
  Cfg,
  KerasLayer,
  alias,
  lookupActivation,
  ourAxis,
  toNchw,
  toNhwc,
  type Activation,
  type LayerContext,
} from "./layer.js";

export class ActivationLayer extends KerasLayer {
  activation: { name: string; fn: Activation };
  constructor(name: string, cfg: Cfg, ctx: LayerContext) {
    super(name, "Activation");
    this.activation = lookupActivation(cfg.c.activation, name, ctx.file);
  }
  call(inputs: Tensor[]): Tensor {
    return this.activation.fn(this.one(inputs));
  }
}

export class ReLULayer extends KerasLayer {
  readonly maxValue: number | null;
  readonly negativeSlope: number;
  readonly threshold: number;
  constructor(name: string, cfg: Cfg) {
    super(name, "ReLU");
    this.maxValue = cfg.optNum("max_value");
    this.negativeSlope = cfg.num("negative_slope", 0);
    this.threshold = cfg.num("threshold", 0);
  }
  call(inputs: Tensor[]): Tensor {
    const x = this.one(inputs);
    let y: Tensor;
    if (this.negativeSlope === 0 && this.threshold === 0) {
      y = this.maxValue === null ? x.relu() : x.clamp(0, this.maxValue);
      return y;
    }
    // Keras: x for threshold <= x < max_value, negative_slope * (x - threshold) below, max_value above.
    const below = x.sub(this.threshold).mul(this.negativeSlope);
    const mask = x.ge(this.threshold);
    y = below.add(x.sub(below).mul(mask.float()));
    return this.maxValue === null ? y : y.clamp(null, this.maxValue);
  }
}

export class LeakyReLULayer extends KerasLayer {
  readonly slope: number;
  constructor(name: string, cfg: Cfg) {
    super(name, "LeakyReLU");
    this.slope = cfg.has("negative_slope") ? cfg.num("negative_slope") : cfg.num("alpha", 0.3);
  }
  call(inputs: Tensor[]): Tensor {
    return this.one(inputs).leakyRelu(this.slope);
  }
}

export class SoftmaxLayer extends KerasLayer {
  readonly axis: number;
  constructor(name: string, cfg: Cfg) {
    super(name, "Softmax");
    const a = Array.isArray(cfg.c.axis) && cfg.c.axis.length === 1 ? cfg.c.axis[0] : (cfg.c.axis ?? -1);
    if (!Number.isInteger(a)) cfg.bad("axis", "one integer");
    this.axis = a as number;
  }
  call(inputs: Tensor[]): Tensor {
    const x = this.one(inputs);
    return F.softmax(x, ourAxis(this.axis, x.rank));
  }
}

export class Pool2DLayer extends KerasLayer {
  readonly size: [number, number];
  readonly stride: [number, number];
  readonly pad: "same" | "valid";
  constructor(name: string, cls: "MaxPooling2D" | "AveragePooling2D", cfg: Cfg) {
    super(name, cls);
    cfg.channelsLast();
    this.size = cfg.pair("pool_size", [2, 2]);
    this.stride = cfg.pair("strides", this.size);
    this.pad = cfg.padding();
  }
  call(inputs: Tensor[]): Tensor {
    const x = this.image(inputs);
    const max = this.className === "MaxPooling2D";
    const k = this.size;
    const s = this.stride;
    if (this.pad === "valid") return max ? F.maxPool2d(x, k, { stride: s }) : F.avgPool2d(x, k, { stride: s });
    const [l, r, t, b] = F.samePadding(x.dims[2], x.dims[3], k, s, [1, 1]);
    if (l === r && t === b && 2 * t <= k[0] && 2 * l <= k[1]) {
      // Symmetric: libtorch pads max pooling with -inf and, without countIncludePad, averages over real pixels only, as TF does.
      return max
        ? F.maxPool2d(x, k, { stride: s, padding: [t, l] })
        : F.avgPool2d(x, k, { stride: s, padding: [t, l], countIncludePad: false });
    }
    if (max) return F.maxPool2d(x.pad([l, r, t, b], "constant", -Infinity), k, { stride: s });
    // TF's "same" average excludes the padding from the count: divide by the pooled mask of real pixels.
    const sums = F.avgPool2d(x.pad([l, r, t, b]), k, { stride: s });
    const ones = zeros([1, 1, x.dims[2], x.dims[3]], { device: x.device }).add(1);
    const counts = F.avgPool2d(ones.pad([l, r, t, b]), k, { stride: s });
    return sums.div(counts);
  }
}

export class GlobalPool2DLayer extends KerasLayer {
  readonly keepdims: boolean;
  constructor(name: string, cls: "GlobalAveragePooling2D" | "GlobalMaxPooling2D", cfg: Cfg) {
    super(name, cls);
    cfg.channelsLast();
    this.keepdims = cfg.bool("keepdims", false);
  }
  call(inputs: Tensor[]): Tensor {
    const x = this.image(inputs);
    return this.className === "GlobalMaxPooling2D" ? x.max([2, 3], this.keepdims) : x.mean([2, 3], this.keepdims);
  }
}

export class ZeroPadding2DLayer extends KerasLayer {
  readonly pads: [number, number, number, number];
  constructor(name: string, cfg: Cfg) {
    super(name, "ZeroPadding2D");
    cfg.channelsLast();
    this.pads = cfg.quad("padding", 1);
  }
  call(inputs: Tensor[]): Tensor {
    const [t, b, l, r] = this.pads;
    return this.image(inputs).pad([l, r, t, b]);
  }
}

export class Cropping2DLayer extends KerasLayer {
  readonly crops: [number, number, number, number];
  constructor(name: string, cfg: Cfg) {
    super(name, "Cropping2D");
    cfg.channelsLast();
    this.crops = cfg.quad("cropping", 0);
  }
  call(inputs: Tensor[]): Tensor {
    const x = this.image(inputs);
    const [t, b, l, r] = this.crops;
    const [, , h, w] = x.dims;
    if (t + b >= h || l + r >= w)
      throw new ShapeError(`cropping ${fmt(this.crops)} leaves nothing of a ${h}x${w} input`);
    return x
      .narrow(2, t, h - t - b)
      .narrow(3, l, w - l - r)
      .contiguous();
  }
}

export type MergeOp = "Add" | "Subtract" | "Multiply" | "Average" | "Maximum" | "Minimum";

export class MergeLayer extends KerasLayer {
  constructor(name: string, cls: MergeOp) {
    super(name, cls);
  }
  call(inputs: Tensor[]): Tensor {
    if (inputs.length < 2)
      throw new ShapeError(`${this.className} needs at least two inputs but received ${inputs.length}`);
    const op = this.className as MergeOp;
    if (op === "Subtract") {
      if (inputs.length !== 2) throw new ShapeError(`Subtract needs exactly two inputs but received ${inputs.length}`);
      return inputs[0].sub(inputs[1]);
    }
    let acc = inputs[0];
    for (const x of inputs.slice(1)) {
      acc =
        op === "Multiply"
          ? acc.mul(x)
          : op === "Maximum"
            ? acc.maximum(x)
            : op === "Minimum"
              ? acc.minimum(x)
              : acc.add(x);
    }
    if (op === "Average") return acc.div(inputs.length);
    return acc === inputs[0] ? alias(acc) : acc;
  }
}

export class ConcatenateLayer extends KerasLayer {
  readonly axis: number;
  constructor(name: string, cfg: Cfg) {
    super(name, "Concatenate");
    this.axis = cfg.int("axis", -1, -Infinity);
  }
  call(inputs: Tensor[]): Tensor {
    if (inputs.length < 1) throw new ShapeError("Concatenate needs at least one input");
    return cat(inputs, ourAxis(this.axis, inputs[0].rank));
  }
}

export class DropoutLayer extends KerasLayer {
  readonly rate: number;
  constructor(name: string, cls: string, cfg: Cfg) {
    super(name, cls);
    this.rate = cfg.num("rate", 0);
    if (this.rate < 0 || this.rate >= 1) cfg.bad("rate", "a number in [0, 1)");
  }
  call(inputs: Tensor[]): Tensor {
    const x = this.one(inputs);
    return this.training && this.rate > 0 ? F.dropout(x, this.rate, true) : alias(x);
  }
}

export class FlattenLayer extends KerasLayer {
  constructor(name: string, cfg: Cfg) {
    super(name, "Flatten");
    cfg.channelsLast();
  }
  call(inputs: Tensor[]): Tensor {
    const x = this.one(inputs);
    // Keras flattens NHWC: go back to that element order first.
    return (x.rank === 4 ? toNhwc(x).contiguous() : x).reshape([x.dims[0], -1]);
  }
}

export class ReshapeLayer extends KerasLayer {
  readonly target: number[];
  constructor(name: string, cfg: Cfg) {
    super(name, "Reshape");
    const t = cfg.c.target_shape;
    if (!Array.isArray(t) || !t.every((d) => Number.isInteger(d) && (d > 0 || d === -1))) {
      cfg.bad("target_shape", "an array of positive integers (at most one -1)");
    }
    this.target = t as number[];
  }
  call(inputs: Tensor[]): Tensor {
    const x = this.one(inputs);
    const y = (x.rank === 4 ? toNhwc(x).contiguous() : x).reshape([x.dims[0], ...this.target]);
    return y.rank === 4 ? toNchw(y) : y;
  }
}

export class RescalingLayer extends KerasLayer {
  readonly scale: number;
  readonly offset: number;
  constructor(name: string, cfg: Cfg) {
    super(name, "Rescaling");
    this.scale = cfg.num("scale");
    this.offset = cfg.num("offset", 0);
  }
  call(inputs: Tensor[]): Tensor {
    return this.one(inputs).mul(this.scale).add(this.offset);
  }
}
