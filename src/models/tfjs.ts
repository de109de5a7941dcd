/**
 * TF.js Layers model import: reads a `model.json` (format "layers-model": a
 * Keras model config plus a weights manifest) and its binary weight shards,
 * and rebuilds the network on our engine as a Module that is an
 * ImageClassifier.
 *
 * Keras works channel-last (NHWC); we work channel-first (NCHW). Every rank-4
 * tensor inside the rebuilt graph is held as NCHW, every other tensor in
 * Keras's own order; layers that depend on the element order (Flatten,
 * Reshape, Dense on images, axis arguments) convert explicitly, so that the
 * numbers equal TF.js's. Kernels are converted once at load time.
 *
 * The model takes images in [0, 1]; the scaling the original network expects
 * (nsfwjs: pixel / 255, i.e. the identity on [0, 1]; Keras InceptionV3:
 * pixel / 127.5 - 1) is a configurable first step inside the wrapper, so
 * attacks work in [0, 1] pixel space. A final softmax is removed by default
 * so that `forward` returns logits; `endsWithSoftmax` records that it was
 * there and `predictProbabilities` puts it back.
 */
import { realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { Tensor, cat, tensor, zeros } from "../core/tensor.js";
import { keep, noGrad, tidy } from "../core/engine.js";
import { ArgumentError, CheckpointError, ShapeError, TorchError, VaeguardError } from "../core/errors.js";
import { LIMITS } from "../core/limits.js";
import { checkOneOf, fail } from "../core/validate.js";
import { Module } from "../nn/module.js";
import * as F from "../nn/functional.js";
import { readFileOr } from "../io/read-file.js";
import type { ImageClassifier } from "./classifiers.js";

// ---------------------------------------------------------------- model.json types

export interface TfjsQuantization {
  dtype: "uint8" | "uint16" | "float16";
  scale?: number;
  min?: number;
}

export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: TfjsQuantization;
  /** "optimizer" for optimizer state saved beside the model; such weights are ignored. */
  group?: string;
}

export interface TfjsWeightsGroup {
  paths: string[];
  weights: TfjsWeightSpec[];
}

export interface TfjsModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string;
  modelTopology: unknown;
  weightsManifest?: TfjsWeightsGroup[];
  userDefinedMetadata?: Record<string, unknown>;
}

/** A layer type or activation this importer does not rebuild. */
export class UnsupportedLayerError extends CheckpointError {
  constructor(
    file: string,
    readonly layerType: string,
    readonly layerName: string,
    what = "layer type",
  ) {
    super(file, `unsupported ${what} '${layerType}' (layer '${layerName}')`);
  }
}

// ---------------------------------------------------------------- input scaling

/**
 * How images in [0, 1] become the network's input: optional RGB -> BGR swap,
 * then `x * scale + offset` per channel (numbers or one value per channel).
 */
export interface InputScaling {
  scale?: number | readonly number[];
  offset?: number | readonly number[];
  channelOrder?: "rgb" | "bgr";
}

export const INPUT_SCALINGS = {
  /** x in [0, 1] as is: nsfwjs (pixel / 255). */
  unit: { scale: 1, offset: 0 },
  /** 2x - 1 in [-1, 1]: Keras InceptionV3 / MobileNetV2 `preprocess_input` ("tf" mode, pixel / 127.5 - 1). */
  symmetric: { scale: 2, offset: -1 },
  /** 255x: networks that take raw pixel values (for example with a Rescaling layer inside). */
  pixels: { scale: 255, offset: 0 },
  /** Keras "caffe" mode (VGG16, ResNet50): BGR, pixel minus the ImageNet mean, no division. */
  caffe: { channelOrder: "bgr", scale: 255, offset: [-103.939, -116.779, -123.68] },
  /** Keras "torch" mode: (x - mean) / std with the ImageNet statistics. */
  torch: {
    scale: [1 / 0.229, 1 / 0.224, 1 / 0.225],
    offset: [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
  },
} as const satisfies Record<string, InputScaling>;

export type InputScalingName = keyof typeof INPUT_SCALINGS;

export interface TfjsImportOptions {
  /** Input scaling: a preset name or explicit values. Default "unit" (the nsfwjs convention). */
  inputScaling?: InputScalingName | InputScaling;
  /** [C, H, W] for models whose input layer leaves height or width open. */
  inputShape?: readonly [number, number, number];
  /** Keep a final softmax, so that forward returns probabilities (default false: forward returns logits). */
  keepSoftmax?: boolean;
  /** Reject manifest weights that no layer uses (default true). */
  strict?: boolean;
  /** Name used in error messages (default: the model.json path, or "model.json"). */
  source?: string;
}

// ---------------------------------------------------------------- small helpers

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function fmt(s: readonly (number | null)[]): string {
  return `[${s.map((d) => (d === null ? "?" : d)).join(", ")}]`;
}

function product(s: readonly number[]): number {
  return s.reduce((a, b) => a * b, 1);
}

/** A view with a new handle, so that graph values never alias each other's JS objects. */
function alias(x: Tensor): Tensor {
  return x.reshape(x.shape);
}

/** Keras axis (counting the batch) to our axis: rank-4 tensors are NCHW here. */
function ourAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new ShapeError(`axis ${axis} is out of range for a tensor of rank ${rank}`);
  return rank === 4 ? [0, 2, 3, 1][a] : a;
}

function toNhwc(x: Tensor): Tensor {
  return x.permute(0, 2, 3, 1);
}

function toNchw(x: Tensor): Tensor {
  return x.permute(0, 3, 1, 2).contiguous();
}

function decodeFloat16(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) out[i] = s * m * 2 ** -24;
    else if (e === 31) out[i] = m === 0 ? s * Infinity : NaN;
    else out[i] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

// ---------------------------------------------------------------- weights

interface DecodedWeight {
  name: string;
  shape: number[];
  data: Float32Array;
}

const QUANT_BYTES: Record<string, number> = { uint8: 1, uint16: 2, float16: 2 };
const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4 };

/**
 * Decode every weight of the manifest. Within a group the shards are
 * concatenated and the weights laid end to end, as TF.js writes them; the byte
 * counts must agree exactly.
 */
function decodeWeights(
  manifest: unknown,
  readShard: (path: string) => Uint8Array,
  file: string,
): Map<string, DecodedWeight> {
  const out = new Map<string, DecodedWeight>();
  if (manifest === undefined || manifest === null) return out;
  if (!Array.isArray(manifest)) throw new CheckpointError(file, "weightsManifest is not an array");
  manifest.forEach((group: unknown, gi) => {
    if (!isObj(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new CheckpointError(file, `weightsManifest[${gi}] needs 'paths' and 'weights' arrays`);
    }
    const paths = group.paths as unknown[];
    const parts: Uint8Array[] = [];
    for (const p of paths) {
      if (typeof p !== "string") throw new CheckpointError(file, `weightsManifest[${gi}].paths holds a non-string`);
      parts.push(readShard(p));
    }
    const total = parts.reduce((a, b) => a + b.byteLength, 0);
    const data = Buffer.concat(parts, total);
    const shardNames = (paths as string[]).map((p) => `'${p}'`).join(", ");
    let offset = 0;
    for (const [wi, spec] of (group.weights as unknown[]).entries()) {
      if (
        !isObj(spec) ||
        typeof spec.name !== "string" ||
        !Array.isArray(spec.shape) ||
        !spec.shape.every((d) => Number.isInteger(d) && d >= 0) ||
        typeof spec.dtype !== "string"
      ) {
        throw new CheckpointError(file, `weightsManifest[${gi}].weights[${wi}] needs a name, a shape and a dtype`);
      }
      const shape = spec.shape as number[];
      const n = product(shape);
      const q = spec.quantization;
      let bytes: number;
      if (q !== undefined && q !== null) {
        if (!isObj(q) || typeof q.dtype !== "string" || !(q.dtype in QUANT_BYTES)) {
          throw new CheckpointError(
            file,
            `weight '${spec.name}' has unsupported quantization ${JSON.stringify(q)} (expected dtype uint8, uint16 or float16)`,
          );
        }
        if (q.dtype !== "float16" && (typeof q.scale !== "number" || typeof q.min !== "number")) {
          throw new CheckpointError(
            file,
            `weight '${spec.name}': ${q.dtype} quantization needs numbers 'scale' and 'min'`,
          );
        }
        bytes = n * QUANT_BYTES[q.dtype];
      } else {
        if (!(spec.dtype in DTYPE_BYTES)) {
          throw new CheckpointError(
            file,
            `weight '${spec.name}' has unsupported dtype '${spec.dtype}' (expected float32 or int32)`,
          );
        }
        bytes = n * DTYPE_BYTES[spec.dtype];
      }
      if (bytes > LIMITS.tensorBytes) {
        throw new CheckpointError(
          file,
          `weight '${spec.name}' ${fmt(shape)} declares ${bytes} bytes, more than the limit of ${LIMITS.tensorBytes} for one tensor`,
        );
      }
      if (offset + bytes > total) {
        throw new CheckpointError(
          file,
          `weight '${spec.name}' ${fmt(shape)} needs bytes ${offset}..${offset + bytes} of weight group ${gi}, ` +
            `but its shards (${shardNames}) hold only ${total} bytes`,
        );
      }
      // Copy into an aligned buffer: weights need not start on a 4-byte boundary.
      const raw = new Uint8Array(bytes);
      raw.set(data.subarray(offset, offset + bytes));
      offset += bytes;
      let values: Float32Array;
      if (q !== undefined && q !== null) {
        const qq = q as unknown as TfjsQuantization;
        if (qq.dtype === "float16") {
          values = decodeFloat16(new Uint16Array(raw.buffer));
        } else {
          const ints = qq.dtype === "uint8" ? raw : new Uint16Array(raw.buffer);
          values = new Float32Array(n);
          const scale = qq.scale!;
          const min = qq.min!;
          for (let i = 0; i < n; i++) values[i] = ints[i] * scale + min;
        }
      } else if (spec.dtype === "int32") {
        values = Float32Array.from(new Int32Array(raw.buffer));
      } else {
        values = new Float32Array(raw.buffer);
      }
      if (spec.group === "optimizer") continue;
      const name = spec.name.replace(/:0$/, "");
      if (out.has(name)) throw new CheckpointError(file, `weight '${name}' appears twice in the manifest`);
      out.set(name, { name, shape, data: values });
    }
    if (offset !== total) {
      throw new CheckpointError(
        file,
        `weight group ${gi}: the manifest describes ${offset} bytes but its shards (${shardNames}) hold ${total} bytes`,
      );
    }
  });
  return out;
}

class WeightStore {
  readonly used = new Set<string>();
  constructor(
    readonly all: Map<string, DecodedWeight>,
    readonly file: string,
  ) {}

  /**
   * The weight `kind` of layer `layer` inside nested models `path`: tried as
   * `outer/inner/layer/kind`, then with fewer model prefixes, then as the one
   * manifest name ending in `/layer/kind`.
   */
  find(path: readonly string[], layer: string, kind: string): DecodedWeight | undefined {
    for (let i = 0; i <= path.length; i++) {
      const name = [...path.slice(i), layer, kind].join("/");
      const w = this.all.get(name);
      if (w && !this.used.has(name)) {
        this.used.add(name);
        return w;
      }
    }
    const suffix = `/${layer}/${kind}`;
    const hits = [...this.all.keys()].filter((k) => k.endsWith(suffix) && !this.used.has(k));
    if (hits.length === 1) {
      this.used.add(hits[0]);
      return this.all.get(hits[0]);
    }
    return undefined;
  }

  unused(): string[] {
    return [...this.all.keys()].filter((k) => !this.used.has(k));
  }
}

// ---------------------------------------------------------------- layers

interface LayerContext {
  file: string;
  weights: WeightStore;
  /** Names of the enclosing nested models (outermost first). */
  path: readonly string[];
}

/** Reads a layer's config with messages that name the layer and the field. */
class Cfg {
  constructor(
    readonly c: Json,
    readonly layer: string,
    readonly cls: string,
    readonly file: string,
  ) {}
  bad(key: string, expected: string): never {
    throw new CheckpointError(
      this.file,
      `layer '${this.layer}' (${this.cls}): config field '${key}' should be ${expected} but is ${JSON.stringify(this.c[key])}`,
    );
  }
  has(key: string): boolean {
    return this.c[key] !== undefined && this.c[key] !== null;
  }
  num(key: string, dflt?: number): number {
    const v = this.c[key];
    if ((v === undefined || v === null) && dflt !== undefined) return dflt;
    if (typeof v !== "number" || !Number.isFinite(v)) this.bad(key, "a number");
    return v;
  }
  optNum(key: string): number | null {
    return this.has(key) ? this.num(key) : null;
  }
  int(key: string, dflt?: number, min = 0): number {
    const v = this.num(key, dflt);
    if (!Number.isInteger(v) || v < min) this.bad(key, `an integer of at least ${min}`);
    return v;
  }
  bool(key: string, dflt: boolean): boolean {
    const v = this.c[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "boolean") this.bad(key, "true or false");
    return v;
  }
  str(key: string, dflt?: string): string {
    const v = this.c[key];
    if ((v === undefined || v === null) && dflt !== undefined) return dflt;
    if (typeof v !== "string") this.bad(key, "a string");
    return v;
  }
  /** n or [a, b] -> [a, b] */
  pair(key: string, dflt?: [number, number], min = 1): [number, number] {
    const v = this.c[key];
    if ((v === undefined || v === null) && dflt !== undefined) return dflt;
    if (typeof v === "number" && Number.isInteger(v) && v >= min) return [v, v];
    if (Array.isArray(v) && v.length === 2 && v.every((d) => Number.isInteger(d) && d >= min)) {
      return [v[0] as number, v[1] as number];
    }
    return this.bad(key, `an integer or a pair of integers of at least ${min}`);
  }
  /** Padding or cropping: n, [h, w] (symmetric) or [[top, bottom], [left, right]] -> [top, bottom, left, right] */
  quad(key: string, dflt: number): [number, number, number, number] {
    const v = this.c[key] ?? dflt;
    const ok = (d: unknown) => Number.isInteger(d) && (d as number) >= 0;
    if (ok(v)) return [v as number, v as number, v as number, v as number];
    if (Array.isArray(v) && v.length === 2) {
      if (ok(v[0]) && ok(v[1])) return [v[0], v[0], v[1], v[1]];
      if (v.every((p) => Array.isArray(p) && p.length === 2 && p.every(ok))) {
        return [v[0][0], v[0][1], v[1][0], v[1][1]];
      }
    }
    return this.bad(key, "an integer, [height, width] or [[top, bottom], [left, right]]");
  }
  padding(): "same" | "valid" {
    const p = this.str("padding", "valid");
    if (p !== "same" && p !== "valid") this.bad("padding", '"same" or "valid"');
    return p;
  }
  channelsLast(): void {
    const d = this.c.data_format;
    if (d !== undefined && d !== null && d !== "channels_last") {
      throw new CheckpointError(
        this.file,
        `layer '${this.layer}' (${this.cls}): data_format '${String(d)}' is not supported (only channels_last)`,
      );
    }
  }
}

type Activation = (x: Tensor) => Tensor;

const SELU_ALPHA = 1.6732632423543772;
const SELU_SCALE = 1.0507009873554805;

const ACTIVATIONS: Record<string, Activation> = {
  linear: alias,
  relu: (x) => x.relu(),
  relu6: (x) => x.clamp(0, 6),
  sigmoid: (x) => x.sigmoid(),
  tanh: (x) => x.tanh(),
  softmax: (x) => F.softmax(x, x.rank === 4 ? 1 : -1),
  swish: (x) => x.mul(x.sigmoid()),
  silu: (x) => x.mul(x.sigmoid()),
  elu: (x) => x.elu(1),
  selu: (x) => x.elu(SELU_ALPHA).mul(SELU_SCALE),
  softplus: (x) => x.softplus(),
  softsign: (x) => x.div(x.abs().add(1)),
  // Keras 2 and TF.js definition (Keras 3 changed it to relu6(x + 3) / 6).
  hard_sigmoid: (x) => x.mul(0.2).add(0.5).clamp(0, 1),
  hardSigmoid: (x) => x.mul(0.2).add(0.5).clamp(0, 1),
  mish: (x) => x.mul(x.softplus().tanh()),
  // The tanh approximation (TF.js "gelu_new"); the exact "gelu" needs erf, which the engine lacks.
  gelu_new: (x) =>
    x.mul(0.5).mul(
      x
        .pow(3)
        .mul(0.044715)
        .add(x)
        .mul(Math.sqrt(2 / Math.PI))
        .tanh()
        .add(1),
    ),
  exponential: (x) => x.exp(),
  leaky_relu: (x) => x.leakyRelu(0.2),
};

function activationName(v: unknown): string | null {
  if (v === undefined || v === null) return "linear";
  if (typeof v === "string") return v;
  // Keras 3 may serialise an activation as {class_name: "function", config: "relu"} or {config: {name: ...}}.
  if (isObj(v)) {
    if (typeof v.config === "string") return v.config;
    if (isObj(v.config) && typeof v.config.name === "string") return v.config.name;
    if (typeof v.class_name === "string") return v.class_name;
  }
  return null;
}

function lookupActivation(v: unknown, layer: string, file: string): { name: string; fn: Activation } {
  const name = activationName(v);
  if (name === null || !(name in ACTIVATIONS)) {
    throw new UnsupportedLayerError(file, name ?? JSON.stringify(v), layer, "activation");
  }
  return { name, fn: ACTIVATIONS[name] };
}

/** One Keras layer rebuilt on the engine. `call` may create temporaries freely: the graph runs it inside tidy. */
abstract class KerasLayer extends Module {
  constructor(
    readonly kerasName: string,
    readonly className: string,
  ) {
    super();
  }
  abstract call(inputs: Tensor[]): Tensor;
  forward(x: Tensor): Tensor {
    return tidy(() => this.call([x]));
  }
  protected one(inputs: Tensor[]): Tensor {
    if (inputs.length !== 1) {
      throw new ShapeError(`${this.className} takes one input but received ${inputs.length}`);
    }
    return inputs[0];
  }
  protected image(inputs: Tensor[]): Tensor {
    const x = this.one(inputs);
    if (x.rank !== 4)
      throw new ShapeError(`${this.className} needs an image input [N, H, W, C] but the input has rank ${x.rank}`);
    return x;
  }
}

/** Takes a manifest weight, checking its shape against a pattern (null: any size). */
function takeWeight(
  ctx: LayerContext,
  layer: string,
  cls: string,
  kind: string,
  pattern: readonly (number | null)[],
): DecodedWeight {
  const w = ctx.weights.find(ctx.path, layer, kind);
  if (!w) {
    const expected = [...ctx.path, layer, kind].join("/");
    throw new CheckpointError(ctx.file, `missing weight '${expected}' for layer '${layer}' (${cls})`);
  }
  const fits = w.shape.length === pattern.length && pattern.every((d, i) => d === null || d === w.shape[i]);
  if (!fits) {
    throw new CheckpointError(
      ctx.file,
      `weight '${w.name}' has shape ${fmt(w.shape)} but layer '${layer}' (${cls}) needs ${fmt(pattern)}`,
    );
  }
  return w;
}

function weightTensor(w: DecodedWeight, permute?: number[]): Tensor {
  return tidy(() => {
    const t = tensor(w.data, w.shape);
    return permute ? t.permute(permute).contiguous() : t;
  });
}

class Conv2DLayer extends KerasLayer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: [number, number];
  readonly dilation: [number, number];
  readonly pad: "same" | "valid";
  readonly groups: number;
  activation: { name: string; fn: Activation };
  constructor(name: string, cfg: Cfg, ctx: LayerContext) {
    super(name, "Conv2D");
    cfg.channelsLast();
    const filters = cfg.int("filters", undefined, 1);
    const [kh, kw] = cfg.pair("kernel_size");
    this.stride = cfg.pair("strides", [1, 1]);
    this.dilation = cfg.pair("dilation_rate", [1, 1]);
    this.pad = cfg.padding();
    this.groups = cfg.int("groups", 1, 1);
    this.activation = lookupActivation(cfg.c.activation, name, ctx.file);
    const k = takeWeight(ctx, name, "Conv2D", "kernel", [kh, kw, null, filters]);
    // [kh, kw, in/groups, out] -> [out, in/groups, kh, kw]
    this.weight = this.registerParameter("weight", weightTensor(k, [3, 2, 0, 1]));
    this.bias = cfg.bool("use_bias", true)
      ? this.registerParameter("bias", weightTensor(takeWeight(ctx, name, "Conv2D", "bias", [filters])))
      : null;
  }
  call(inputs: Tensor[]): Tensor {
    const y = F.conv2d(this.image(inputs), this.weight, this.bias, {
      stride: this.stride,
      padding: this.pad,
      dilation: this.dilation,
      groups: this.groups,
    });
    return this.activation.fn(y);
  }
}

class DepthwiseConv2DLayer extends KerasLayer {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: [number, number];
  readonly dilation: [number, number];
  readonly pad: "same" | "valid";
  readonly inChannels: number;
  activation: { name: string; fn: Activation };
  constructor(name: string, cfg: Cfg, ctx: LayerContext) {
    super(name, "DepthwiseConv2D");
    cfg.channelsLast();
    const [kh, kw] = cfg.pair("kernel_size");
    const mult = cfg.int("depth_multiplier", 1, 1);
    this.stride = cfg.pair("strides", [1, 1]);
    this.dilation = cfg.pair("dilation_rate", [1, 1]);
    this.pad = cfg.padding();
    this.activation = lookupActivation(cfg.c.activation, name, ctx.file);
    const k = takeWeight(ctx, name, "DepthwiseConv2D", "depthwise_kernel", [kh, kw, null, mult]);
    this.inChannels = k.shape[2];
    this.weight = this.registerParameter("weight", depthwiseWeight(k));
    this.bias = cfg.bool("use_bias", true)
      ? this.registerParameter(
          "bias",
          weightTensor(takeWeight(ctx, name, "DepthwiseConv2D", "bias", [this.inChannels * mult])),
        )
      : null;
  }
  call(inputs: Tensor[]): Tensor {
    const y = F.conv2d(this.image(inputs), this.weight, this.bias, {
      stride: this.stride,
      padding: this.pad,
      dilation: this.dilation,
      groups: this.inChannels,
    });
    return this.activation.fn(y);
  }
}

/** [kh, kw, in, mult] -> [in * mult, 1, kh, kw]: TF's output channel i * mult + m is group i's m-th filter. */
function depthwiseWeight(k: DecodedWeight): Tensor {
  const [kh, kw, inC, mult] = k.shape;
  return tidy(() =>
    tensor(k.data, k.shape)
      .permute(2, 3, 0, 1)
      .contiguous()
      .reshape([inC * mult, 1, kh, kw]),
  );
}

class SeparableConv2DLayer extends KerasLayer {
  readonly depthwise: Tensor;
  readonly pointwise: Tensor;
  readonly bias: Tensor | null;
  readonly stride: [number, number];
  readonly dilation: [number, number];
  readonly pad: "same" | "valid";
  readonly inChannels: number;
  activation: { name: string; fn: Activation };
  constructor(name: string, cfg: Cfg, ctx: LayerContext) {
    super(name, "SeparableConv2D");
    cfg.channelsLast();
    const filters = cfg.int("filters", undefined, 1);
    const [kh, kw] = cfg.pair("kernel_size");
    const mult = cfg.int("depth_multiplier", 1, 1);
    this.stride = cfg.pair("strides", [1, 1]);
    this.dilation = cfg.pair("dilation_rate", [1, 1]);
    this.pad = cfg.padding();
    this.activation = lookupActivation(cfg.c.activation, name, ctx.file);
    const dk = takeWeight(ctx, name, "SeparableConv2D", "depthwise_kernel", [kh, kw, null, mult]);
    this.inChannels = dk.shape[2];
    const pk = takeWeight(ctx, name, "SeparableConv2D", "pointwise_kernel", [1, 1, this.inChannels * mult, filters]);
    this.depthwise = this.registerParameter("depthwise_weight", depthwiseWeight(dk));
    this.pointwise = this.registerParameter("pointwise_weight", weightTensor(pk, [3, 2, 0, 1]));
    this.bias = cfg.bool("use_bias", true)
      ? this.registerParameter("bias", weightTensor(takeWeight(ctx, name, "SeparableConv2D", "bias", [filters])))
      : null;
  }
  call(inputs: Tensor[]): Tensor {
    const d = F.conv2d(this.image(inputs), this.depthwise, null, {
      stride: this.stride,
      padding: this.pad,
      dilation: this.dilation,
      groups: this.inChannels,
    });
    return this.activation.fn(F.conv2d(d, this.pointwise, this.bias));
  }
}

class DenseLayer extends KerasLayer {
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

class BatchNormLayer extends KerasLayer {
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
    this.momentum = cfg.num("momentum", 0.99);
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
    return F.batchNorm(x, {
      weight: this.weight,
      bias: this.bias,
      runningMean: this.runningMean,
      runningVar: this.runningVar,
      training: this.training,
      momentum: 1 - this.momentum,
      eps: this.eps,
    });
  }
}

class ActivationLayer extends KerasLayer {
  activation: { name: string; fn: Activation };
  constructor(name: string, cfg: Cfg, ctx: LayerContext) {
    super(name, "Activation");
    this.activation = lookupActivation(cfg.c.activation, name, ctx.file);
  }
  call(inputs: Tensor[]): Tensor {
    return this.activation.fn(this.one(inputs));
  }
}

class ReLULayer extends KerasLayer {
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

class LeakyReLULayer extends KerasLayer {
  readonly slope: number;
  constructor(name: string, cfg: Cfg) {
    super(name, "LeakyReLU");
    this.slope = cfg.has("negative_slope") ? cfg.num("negative_slope") : cfg.num("alpha", 0.3);
  }
  call(inputs: Tensor[]): Tensor {
    return this.one(inputs).leakyRelu(this.slope);
  }
}

class SoftmaxLayer extends KerasLayer {
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

class Pool2DLayer extends KerasLayer {
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

class GlobalPool2DLayer extends KerasLayer {
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

class ZeroPadding2DLayer extends KerasLayer {
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

class Cropping2DLayer extends KerasLayer {
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

type MergeOp = "Add" | "Subtract" | "Multiply" | "Average" | "Maximum" | "Minimum";

class MergeLayer extends KerasLayer {
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

class ConcatenateLayer extends KerasLayer {
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

class DropoutLayer extends KerasLayer {
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

class FlattenLayer extends KerasLayer {
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

class ReshapeLayer extends KerasLayer {
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

class RescalingLayer extends KerasLayer {
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

/** Something that holds the rebuilt layers of a graph as its sub-modules. */
interface LayerOwner {
  children(): [string, Module][];
  adoptLayer(key: string, layer: KerasLayer): void;
}

/** A Keras model used as a layer of another model. */
class NestedModelLayer extends KerasLayer implements LayerOwner {
  readonly graph: Graph;
  constructor(name: string, cls: string, layerJson: Json, ctx: LayerContext) {
    super(name, cls);
    this.graph = buildGraph({ class_name: cls, config: layerJson.config }, this, { ...ctx, path: [...ctx.path, name] });
  }
  adoptLayer(key: string, layer: KerasLayer): void {
    this.registerModule(key, layer);
  }
  call(inputs: Tensor[]): Tensor {
    return this.graph.run(this.one(inputs));
  }
}

function createLayer(layerJson: Json, ctx: LayerContext): KerasLayer {
  const cls = layerJson.class_name as string;
  const config = isObj(layerJson.config) ? layerJson.config : {};
  const name = (typeof layerJson.name === "string" ? layerJson.name : config.name) as string;
  const cfg = new Cfg(config, name, cls, ctx.file);
  switch (cls) {
    case "Conv2D":
    case "Convolution2D":
      return new Conv2DLayer(name, cfg, ctx);
    case "DepthwiseConv2D":
      return new DepthwiseConv2DLayer(name, cfg, ctx);
    case "SeparableConv2D":
    case "SeparableConvolution2D":
      return new SeparableConv2DLayer(name, cfg, ctx);
    case "Dense":
      return new DenseLayer(name, cfg, ctx);
    case "BatchNormalization":
      return new BatchNormLayer(name, cfg, ctx);
    case "Activation":
      return new ActivationLayer(name, cfg, ctx);
    case "ReLU":
      return new ReLULayer(name, cfg);
    case "LeakyReLU":
      return new LeakyReLULayer(name, cfg);
    case "Softmax":
      return new SoftmaxLayer(name, cfg);
    case "MaxPooling2D":
    case "MaxPool2D":
      return new Pool2DLayer(name, "MaxPooling2D", cfg);
    case "AveragePooling2D":
    case "AvgPool2D":
      return new Pool2DLayer(name, "AveragePooling2D", cfg);
    case "GlobalAveragePooling2D":
    case "GlobalAvgPool2D":
      return new GlobalPool2DLayer(name, "GlobalAveragePooling2D", cfg);
    case "GlobalMaxPooling2D":
    case "GlobalMaxPool2D":
      return new GlobalPool2DLayer(name, "GlobalMaxPooling2D", cfg);
    case "ZeroPadding2D":
      return new ZeroPadding2DLayer(name, cfg);
    case "Cropping2D":
      return new Cropping2DLayer(name, cfg);
    case "Concatenate":
      return new ConcatenateLayer(name, cfg);
    case "Add":
    case "Subtract":
    case "Multiply":
    case "Average":
    case "Maximum":
    case "Minimum":
      return new MergeLayer(name, cls);
    case "Dropout":
      return new DropoutLayer(name, cls, cfg);
    case "Flatten":
      return new FlattenLayer(name, cfg);
    case "Reshape":
      return new ReshapeLayer(name, cfg);
    case "Rescaling":
      return new RescalingLayer(name, cfg);
    case "Model":
    case "Functional":
    case "Sequential":
      return new NestedModelLayer(name, cls, layerJson, ctx);
    default:
      throw new UnsupportedLayerError(ctx.file, cls, name);
  }
}

// ---------------------------------------------------------------- graph

interface GraphNode {
  id: number;
  /** null for the input node */
  layer: KerasLayer | null;
  inputs: number[];
  label: string;
}

/** The Keras graph, in an order where every node comes after its inputs, pruned to what the output needs. */
class Graph {
  constructor(
    readonly nodes: GraphNode[],
    readonly inputNode: number,
    public outputNode: number,
    /** Keras input shape without the batch: [H, W, C] (entries may be null). */
    readonly inputShape: (number | null)[],
    readonly file: string,
  ) {}

  run(x: Tensor): Tensor {
    const order = this.order();
    const uses = new Map<number, number>();
    for (const n of order) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
    const values = new Map<number, Tensor>([[this.inputNode, x]]);
    try {
      for (const n of order) {
        if (n.layer === null) continue;
        const args = n.inputs.map((i) => values.get(i)!);
        let y: Tensor;
        try {
          y = tidy(() => n.layer!.call(args));
        } catch (e) {
          if (e instanceof VaeguardError && !(e instanceof ShapeError)) throw e;
          const shapes = args.map((a) => fmt(kerasShape(a))).join(", ");
          throw new ShapeError(
            `layer '${n.layer.kerasName}' (${n.layer.className}) failed on input ${shapes}: ${(e as Error).message}`,
            { cause: e },
          );
        }
        values.set(n.id, y);
        for (const i of n.inputs) {
          const left = uses.get(i)! - 1;
          uses.set(i, left);
          if (left === 0 && i !== this.inputNode && i !== this.outputNode) {
            values.get(i)?.dispose();
            values.delete(i);
          }
        }
      }
      const out = values.get(this.outputNode)!;
      values.delete(this.outputNode);
      return out;
    } finally {
      for (const [id, t] of values) if (id !== this.inputNode) t.dispose();
    }
  }

  /** Nodes the output depends on, inputs first. */
  order(): GraphNode[] {
    const byId = new Map(this.nodes.map((n) => [n.id, n]));
    const state = new Map<number, 1 | 2>();
    const out: GraphNode[] = [];
    const visit = (id: number) => {
      const s = state.get(id);
      if (s === 2) return;
      const n = byId.get(id)!;
      if (s === 1) throw new CheckpointError(this.file, `the model graph has a cycle through layer '${n.label}'`);
      state.set(id, 1);
      for (const i of n.inputs) visit(i);
      state.set(id, 2);
      out.push(n);
    };
    visit(this.outputNode);
    if (!state.has(this.inputNode)) {
      throw new CheckpointError(this.file, "the model output does not depend on the model input");
    }
    return out;
  }
}

/** Shape in Keras's order (rank 4: NHWC), for messages. */
function kerasShape(t: Tensor): number[] {
  const d = t.shape;
  return d.length === 4 ? [d[0], d[2], d[3], d[1]] : d;
}

/** [layer name, node index, tensor index] references of one inbound node, in Keras 2 or Keras 3 form. */
function inboundRefs(node: unknown, layer: string, file: string): [string, number, number][] {
  const refs: [string, number, number][] = [];
  const bad = (): never => {
    throw new CheckpointError(
      file,
      `layer '${layer}' has an inbound node that cannot be read: ${JSON.stringify(node)}`,
    );
  };
  if (Array.isArray(node)) {
    // Keras 2: [[name, nodeIndex, tensorIndex, kwargs], ...]
    for (const r of node) {
      if (!Array.isArray(r) || typeof r[0] !== "string") bad();
      refs.push([r[0], Number(r[1] ?? 0), Number(r[2] ?? 0)]);
    }
    return refs;
  }
  if (isObj(node) && "args" in node) {
    // Keras 3: {args: [tensor or [tensors]], kwargs}; a tensor carries config.keras_history.
    const walk = (v: unknown) => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (isObj(v) && v.class_name === "__keras_tensor__" && isObj(v.config)) {
        const h = v.config.keras_history;
        if (!Array.isArray(h) || typeof h[0] !== "string") bad();
        refs.push([(h as unknown[])[0] as string, Number((h as unknown[])[1] ?? 0), Number((h as unknown[])[2] ?? 0)]);
      }
    };
    walk(node.args);
    return refs;
  }
  return bad();
}

function inputShapeOf(config: Json): (number | null)[] | null {
  const s = config.batch_input_shape ?? config.batch_shape;
  if (Array.isArray(s)) return s.slice(1) as (number | null)[];
  if (Array.isArray(config.input_shape)) return config.input_shape as (number | null)[];
  return null;
}

function firstRef(v: unknown): [string, number, number] | null {
  // [[name, 0, 0]] or [name, 0, 0] (Keras 3 with one input or output).
  if (Array.isArray(v) && typeof v[0] === "string") return [v[0], Number(v[1] ?? 0), Number(v[2] ?? 0)];
  if (Array.isArray(v) && v.length === 1 && Array.isArray(v[0]) && typeof v[0][0] === "string") {
    return [v[0][0], Number(v[0][1] ?? 0), Number(v[0][2] ?? 0)];
  }
  return null;
}

function refCount(v: unknown): number {
  if (Array.isArray(v) && typeof v[0] === "string") return 1;
  return Array.isArray(v) ? v.length : 0;
}

/** Build the graph of a Functional or Sequential model config, registering each layer on `owner`. */
function buildGraph(modelJson: Json, owner: LayerOwner, ctx: LayerContext): Graph {
  const cls = modelJson.class_name;
  const where = ctx.path.length > 0 ? `nested model '${ctx.path.join("/")}'` : "the model";
  const config = modelJson.config;
  const register = (layer: KerasLayer) => {
    let key = layer.kerasName.replace(/[./]/g, "_") || "layer";
    const taken = new Set(owner.children().map(([n]) => n));
    if (taken.has(key)) {
      let i = 1;
      while (taken.has(`${key}_${i}`)) i++;
      key = `${key}_${i}`;
    }
    owner.adoptLayer(key, layer);
  };
  if (cls === "Sequential") {
    const layers = Array.isArray(config)
      ? config
      : isObj(config) && Array.isArray(config.layers)
        ? config.layers
        : null;
    if (!layers) throw new CheckpointError(ctx.file, `${where}: Sequential config has no layer list`);
    const nodes: GraphNode[] = [];
    let inputShape: (number | null)[] | null = null;
    let prev = 0;
    nodes.push({ id: 0, layer: null, inputs: [], label: "input" });
    for (const lj of layers as unknown[]) {
      if (!isObj(lj) || typeof lj.class_name !== "string") {
        throw new CheckpointError(ctx.file, `${where}: a layer entry has no class_name`);
      }
      const lc = isObj(lj.config) ? lj.config : {};
      if (inputShape === null) inputShape = inputShapeOf(lc);
      if (lj.class_name === "InputLayer") continue;
      const layer = createLayer(lj, ctx);
      register(layer);
      const id = nodes.length;
      nodes.push({ id, layer, inputs: [prev], label: layer.kerasName });
      prev = id;
    }
    if (inputShape === null) {
      throw new CheckpointError(ctx.file, `${where}: the Sequential model does not declare its input shape`);
    }
    if (prev === 0) throw new CheckpointError(ctx.file, `${where}: the Sequential model has no layers`);
    return new Graph(nodes, 0, prev, inputShape, ctx.file);
  }
  if (cls !== "Model" && cls !== "Functional") {
    throw new CheckpointError(
      ctx.file,
      `${where}: model class '${String(cls)}' is not supported (expected Model, Functional or Sequential)`,
    );
  }
  if (!isObj(config) || !Array.isArray(config.layers)) {
    throw new CheckpointError(ctx.file, `${where}: the model config has no layer list`);
  }
  // One graph node per (layer, inbound node): a layer called twice shares its weights.
  const nodes: GraphNode[] = [];
  const key = (name: string, idx: number) => `${name}\u0000${idx}`;
  const nodeOf = new Map<string, number>();
  const pending: { id: number; refs: [string, number, number][]; layer: string }[] = [];
  const inputLayers = new Map<string, (number | null)[] | null>();
  const layerByName = new Map<string, KerasLayer | null>();
  for (const lj of config.layers as unknown[]) {
    if (!isObj(lj) || typeof lj.class_name !== "string") {
      throw new CheckpointError(ctx.file, `${where}: a layer entry has no class_name`);
    }
    const lc = isObj(lj.config) ? lj.config : {};
    const name = typeof lj.name === "string" ? lj.name : (lc.name as string);
    if (typeof name !== "string")
      throw new CheckpointError(ctx.file, `${where}: a '${lj.class_name}' layer has no name`);
    if (layerByName.has(name)) throw new CheckpointError(ctx.file, `${where}: two layers are named '${name}'`);
    if (lj.class_name === "InputLayer") {
      layerByName.set(name, null);
      inputLayers.set(name, inputShapeOf(lc));
      const id = nodes.length;
      nodes.push({ id, layer: null, inputs: [], label: name });
      nodeOf.set(key(name, 0), id);
      continue;
    }
    const layer = createLayer(lj, ctx);
    register(layer);
    layerByName.set(name, layer);
    const inbound = Array.isArray(lj.inbound_nodes) ? lj.inbound_nodes : [];
    inbound.forEach((node: unknown, ni: number) => {
      const id = nodes.length;
      nodes.push({ id, layer, inputs: [], label: inbound.length > 1 ? `${name}#${ni}` : name });
      nodeOf.set(key(name, ni), id);
      pending.push({ id, refs: inboundRefs(node, name, ctx.file), layer: name });
    });
  }
  for (const p of pending) {
    nodes[p.id].inputs = p.refs.map(([ln, ni, ti]) => {
      if (ti !== 0) {
        throw new CheckpointError(
          ctx.file,
          `layer '${p.layer}' uses output ${ti} of layer '${ln}'; only single-output layers are supported`,
        );
      }
      const id = nodeOf.get(key(ln, ni));
      if (id === undefined) {
        throw new CheckpointError(
          ctx.file,
          `layer '${p.layer}' takes its input from '${ln}' (node ${ni}), which is not in the model`,
        );
      }
      return id;
    });
  }
  if (refCount(config.input_layers) !== 1 || refCount(config.output_layers) !== 1) {
    throw new CheckpointError(
      ctx.file,
      `${where} has ${refCount(config.input_layers)} inputs and ${refCount(config.output_layers)} outputs; an image classifier needs exactly one of each`,
    );
  }
  const inRef = firstRef(config.input_layers)!;
  const outRef = firstRef(config.output_layers)!;
  const inputNode = nodeOf.get(key(inRef[0], inRef[1]));
  if (inputNode === undefined || !inputLayers.has(inRef[0])) {
    throw new CheckpointError(ctx.file, `${where}: input layer '${inRef[0]}' is not an InputLayer of the model`);
  }
  const outputNode = nodeOf.get(key(outRef[0], outRef[1]));
  if (outputNode === undefined)
    throw new CheckpointError(ctx.file, `${where}: output layer '${outRef[0]}' is not in the model`);
  const inputShape = inputLayers.get(inRef[0]);
  if (!inputShape)
    throw new CheckpointError(ctx.file, `${where}: input layer '${inRef[0]}' does not declare its shape`);
  const g = new Graph(nodes, inputNode, outputNode, inputShape, ctx.file);
  g.order(); // checks for cycles and for an output that ignores the input
  return g;
}

// ---------------------------------------------------------------- the model

function resolveScaling(
  s: InputScalingName | InputScaling | undefined,
  channels: number,
): {
  bgr: boolean;
  scale: number[];
  offset: number[];
} {
  let spec: InputScaling;
  if (s === undefined || typeof s === "string") {
    const name = checkOneOf(s ?? "unit", "inputScaling", Object.keys(INPUT_SCALINGS) as InputScalingName[]);
    spec = INPUT_SCALINGS[name];
  } else if (isObj(s)) {
    spec = s;
  } else {
    return fail(`a preset name or {scale, offset, channelOrder}`, "inputScaling", s);
  }
  const perChannel = (v: number | readonly number[] | undefined, dflt: number, name: string): number[] => {
    if (v === undefined) return new Array<number>(channels).fill(dflt);
    if (typeof v === "number" && Number.isFinite(v)) return new Array<number>(channels).fill(v);
    if (Array.isArray(v) && v.length === channels && v.every((d) => typeof d === "number" && Number.isFinite(d))) {
      return [...v];
    }
    return fail(`a number or ${channels} numbers`, `inputScaling.${name}`, v);
  };
  const order = checkOneOf(spec.channelOrder ?? "rgb", "inputScaling.channelOrder", ["rgb", "bgr"] as const);
  if (order === "bgr" && channels !== 3)
    fail('"rgb" for a model without 3 channels', "inputScaling.channelOrder", order);
  return {
    bgr: order === "bgr",
    scale: perChannel(spec.scale, 1, "scale"),
    offset: perChannel(spec.offset, 0, "offset"),
  };
}

/** A TF.js Layers model rebuilt on the engine. Inputs are images [N, C, H, W] in [0, 1]; starts in eval mode. */
export class TfjsLayersModel extends Module implements ImageClassifier, LayerOwner {
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  /** Whether the original graph's final layer applies a softmax. */
  readonly endsWithSoftmax: boolean;
  /** Whether forward returns logits (true when a final softmax was removed, or when there was none). */
  readonly outputsLogits: boolean;
  /** The final activation of the original graph ("softmax", "linear", "sigmoid", ...). */
  readonly finalActivation: string;
  /** The Keras layers in graph order: name and class. */
  readonly layers: readonly { name: string; className: string }[];
  readonly source: string;
  readonly userDefinedMetadata: Record<string, unknown> | undefined;
  readonly scaling: { bgr: boolean; scale: number[]; offset: number[] };
  private readonly graph: Graph;
  private scaleT: Tensor | null;
  private offsetT: Tensor | null;

  /** @internal use loadTfjsLayersModel or tfjsModelFromArtifacts */
  constructor(json: TfjsModelJson, readShard: (path: string) => Uint8Array, options: TfjsImportOptions = {}) {
    super();
    const file = options.source ?? "model.json";
    this.source = file;
    if (!isObj(json)) throw new CheckpointError(file, "is not a TF.js model.json (expected a JSON object)");
    if (json.format === "graph-model") {
      throw new CheckpointError(
        file,
        "is a TF.js graph model (format 'graph-model'); only layers models (format 'layers-model', a Keras config) can be imported",
      );
    }
    if (json.format !== undefined && json.format !== "layers-model") {
      throw new CheckpointError(file, `has format '${String(json.format)}'; expected 'layers-model'`);
    }
    const topology = json.modelTopology;
    if (!isObj(topology)) throw new CheckpointError(file, "has no modelTopology (is it a TF.js model.json?)");
    const modelJson = isObj(topology.model_config) ? topology.model_config : topology;
    if (typeof modelJson.class_name !== "string") {
      throw new CheckpointError(file, "modelTopology has no Keras model config (class_name missing)");
    }
    this.userDefinedMetadata = isObj(json.userDefinedMetadata) ? json.userDefinedMetadata : undefined;
    const weights = new WeightStore(decodeWeights(json.weightsManifest, readShard, file), file);
    const ctx: LayerContext = { file, weights, path: [] };
    try {
      this.graph = buildGraph(modelJson, this, ctx);
      if (options.strict ?? true) {
        const unused = weights.unused();
        if (unused.length > 0) {
          throw new CheckpointError(
            file,
            `${unused.length} weight(s) in the manifest belong to no layer of the model: ${unused
              .slice(0, 5)
              .map((n) => `'${n}'`)
              .join(", ")}${unused.length > 5 ? ", ..." : ""}`,
          );
        }
      }
      const ks = this.graph.inputShape;
      if (ks.length !== 3) {
        throw new CheckpointError(
          file,
          `the model input has shape ${fmt(ks)}; an image classifier needs [height, width, channels]`,
        );
      }
      let shape: [number, number, number];
      if (options.inputShape) {
        const s = options.inputShape;
        if (!Array.isArray(s) || s.length !== 3 || !s.every((d) => Number.isInteger(d) && d > 0)) {
          fail("[channels, height, width] of positive integers", "inputShape", s);
        }
        const keras = [s[1], s[2], s[0]];
        keras.forEach((d, i) => {
          if (ks[i] !== null && ks[i] !== d) {
            throw new ArgumentError(
              `inputShape ${fmt(s)} does not fit the model's input ${fmt(ks)} (height, width, channels)`,
            );
          }
        });
        shape = [s[0], s[1], s[2]];
      } else {
        if (ks.some((d) => d === null)) {
          throw new CheckpointError(
            file,
            `the model input ${fmt(ks)} leaves its size open; pass inputShape [channels, height, width]`,
          );
        }
        shape = [ks[2]!, ks[0]!, ks[1]!];
      }
      const inputBytes = product(shape) * 4;
      if (inputBytes > LIMITS.inputBytes) {
        throw new CheckpointError(
          file,
          `the model input [${shape.join(", ")}] (channels, height, width) needs ${inputBytes} bytes per image, ` +
            `more than the limit of ${LIMITS.inputBytes}`,
        );
      }
      this.inputShape = shape;
      this.scaling = resolveScaling(options.inputScaling, shape[0]);
      const needScale = this.scaling.scale.some((v) => v !== 1) || this.scaling.offset.some((v) => v !== 0);
      this.scaleT = needScale ? keep(tensor(Float32Array.from(this.scaling.scale), [1, shape[0], 1, 1])) : null;
      this.offsetT = needScale ? keep(tensor(Float32Array.from(this.scaling.offset), [1, shape[0], 1, 1])) : null;

      const final = this.findFinalSoftmax();
      this.finalActivation = final.activation;
      this.endsWithSoftmax = final.activation === "softmax";
      if (this.endsWithSoftmax && !options.keepSoftmax) {
        final.strip();
        this.outputsLogits = true;
      } else {
        this.outputsLogits = final.activation === "linear";
      }
      this.layers = this.graph
        .order()
        .flatMap((n) => (n.layer ? [{ name: n.layer.kerasName, className: n.layer.className }] : []));
      this.eval();
      // One probe run on zeros: finds the number of classes and any shape that does not fit.
      const out = noGrad(() => tidy(() => this.graph.run(zeros([1, ...shape]))));
      try {
        if (out.rank !== 2) {
          throw new CheckpointError(
            file,
            `the model output has shape ${fmt(kerasShape(out))}; a classifier needs [N, classes]`,
          );
        }
        this.numClasses = out.dims[1];
      } finally {
        out.dispose();
      }
    } catch (e) {
      this.dispose();
      // libtorch's own failures during the probe (an allocation it cannot make) name the file too.
      if (e instanceof ShapeError || e instanceof TorchError) throw new CheckpointError(file, e.message, { cause: e });
      throw e;
    }
  }

  /** @internal */
  adoptLayer(key: string, layer: KerasLayer): void {
    this.registerModule(key, layer);
  }

  /** Locate a final softmax (through trailing Dropout layers) and how to remove it. */
  private findFinalSoftmax(): { activation: string; strip: () => void } {
    const byId = new Map(this.graph.nodes.map((n) => [n.id, n]));
    const consumers = (id: number) => this.graph.nodes.filter((n) => n.inputs.includes(id)).length;
    let node = byId.get(this.graph.outputNode)!;
    const chain: GraphNode[] = [];
    while (node.layer instanceof DropoutLayer && node.inputs.length === 1 && consumers(node.inputs[0]) === 1) {
      chain.push(node);
      node = byId.get(node.inputs[0])!;
    }
    const layer = node.layer;
    const usedOnce = this.graph.nodes.filter((n) => n.layer === layer).length === 1;
    if (layer instanceof SoftmaxLayer || (layer instanceof ActivationLayer && layer.activation.name === "softmax")) {
      const ok = layer instanceof ActivationLayer || layer.axis === -1 || layer.axis === 1;
      return {
        activation: ok ? "softmax" : "softmax (axis)",
        strip: () => {
          const target = chain.length > 0 ? chain[chain.length - 1] : null;
          if (target) target.inputs = [node.inputs[0]];
          else this.graph.outputNode = node.inputs[0];
        },
      };
    }
    if ((layer instanceof DenseLayer || layer instanceof Conv2DLayer || layer instanceof ActivationLayer) && usedOnce) {
      const name = layer.activation.name;
      return {
        activation: name,
        strip: () => {
          layer.activation = { name: "linear", fn: alias };
        },
      };
    }
    return { activation: layer ? layer.className : "linear", strip: () => {} };
  }

  /** Logits [N, numClasses] (probabilities when built with keepSoftmax) for images [N, C, H, W] in [0, 1]. */
  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor)) fail("a tensor", "x", x);
    const [c, h, w] = this.inputShape;
    if (x.rank !== 4 || x.dims[1] !== c || x.dims[2] !== h || x.dims[3] !== w) {
      throw new ShapeError(`TfjsLayersModel: expected images [N, ${c}, ${h}, ${w}] but received ${fmt(x.dims)}`);
    }
    if (this.scaleT && this.offsetT && this.scaleT.device !== x.device) {
      // The scaling constants are not parameters; they follow the input to its device.
      const [s, o] = [this.scaleT, this.offsetT];
      this.scaleT = keep(noGrad(() => s.to(x.device)));
      this.offsetT = keep(noGrad(() => o.to(x.device)));
      s.dispose();
      o.dispose();
    }
    return tidy(() => {
      let input = x;
      if (this.scaling.bgr) input = input.flip(1);
      if (this.scaleT && this.offsetT) input = input.mul(this.scaleT).add(this.offsetT);
      return this.graph.run(input === x ? alias(x) : input);
    });
  }

  /** What the original model outputs: softmax of the logits when it ended in a softmax. */
  predictProbabilities(x: Tensor): Tensor {
    return tidy(() => {
      const y = this.forward(x);
      return this.endsWithSoftmax && this.outputsLogits ? F.softmax(y, -1) : y;
    });
  }

  override dispose(): void {
    this.scaleT?.dispose();
    this.offsetT?.dispose();
    super.dispose();
  }
}

/** Build a model from an already parsed model.json and a shard reader (paths as written in the manifest). */
export function tfjsModelFromArtifacts(
  json: unknown,
  readShard: (path: string) => Uint8Array,
  options: TfjsImportOptions = {},
): TfjsLayersModel {
  return new TfjsLayersModel(json as TfjsModelJson, readShard, options);
}

/** Parse the text of a model.json, with a CheckpointError that names the file. */
export function parseModelJson(text: string, file: string): TfjsModelJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(file, `is not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (!isObj(json)) throw new CheckpointError(file, "is not a TF.js model.json (expected a JSON object)");
  return json as unknown as TfjsModelJson;
}

/**
 * A reader for weight shards beside a model.json. Paths must stay inside that
 * folder (after following symbolic links).
 */
export function shardReader(modelJsonFile: string): (path: string) => Uint8Array {
  const dir = realpathSync(dirname(modelJsonFile));
  return (p: string) => {
    if (p === "" || isAbsolute(p) || p.includes("\0") || /^[a-z][a-z0-9+.-]*:\/\//i.test(p)) {
      throw new CheckpointError(modelJsonFile, `weight shard path '${p}' must be a relative file path`);
    }
    const full = resolve(dir, p);
    let real: string;
    try {
      real = realpathSync(full);
    } catch {
      throw new CheckpointError(modelJsonFile, `weight shard '${p}' not found (expected at ${full})`);
    }
    const rel = relative(dir, real);
    if (rel.startsWith("..") || isAbsolute(rel) || rel === "") {
      throw new CheckpointError(modelJsonFile, `weight shard '${p}' lies outside the model folder ${dir}`);
    }
    const buf = readFileOr(
      real,
      (m, cause) => new CheckpointError(modelJsonFile, `weight shard '${p}': ${m}`, { cause }),
    );
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  };
}

/**
 * Load a TF.js Layers model from `path` (a model.json, or a folder holding
 * one) and its weight shards.
 */
export function loadTfjsLayersModel(path: string, options: TfjsImportOptions = {}): TfjsLayersModel {
  if (typeof path !== "string" || path === "") fail("a path to a model.json", "path", path);
  let file = resolve(path);
  try {
    if (statSync(file).isDirectory()) file = join(file, "model.json");
  } catch {
    // reported below by readFileOr
  }
  const text = readFileOr(file, (m, cause) => new CheckpointError(file, m, { cause })).toString("utf8");
  const json = parseModelJson(text, file);
  return tfjsModelFromArtifacts(json, shardReader(file), { ...options, source: options.source ?? file });
}
