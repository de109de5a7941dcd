/**
 * What every rebuilt Keras layer shares: its config reader (messages name
 * the layer and the field), its weights, the layout conversions between
 * Keras's NHWC and our NCHW, and the activations.
 */
import { tensor, type Tensor } from "../../core/tensor.js";
import { tidy } from "../../core/engine.js";
import { CheckpointError, ShapeError } from "../../core/errors.js";
import { Module } from "../../nn/module.js";
import * as F from "../../nn/functional.js";
import { UnsupportedLayerError, fmt, isObj, type Json } from "./format.js";
import type { DecodedWeight, WeightStore } from "./weights.js";

/** A view with a new handle, so that graph values never alias each other's JS objects. */
export function alias(x: Tensor): Tensor {
  return x.reshape(x.shape);
}

/** Keras axis (counting the batch) to our axis: rank-4 tensors are NCHW here. */
export function ourAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new ShapeError(`axis ${axis} is out of range for a tensor of rank ${rank}`);
  return rank === 4 ? [0, 2, 3, 1][a] : a;
}

export function toNhwc(x: Tensor): Tensor {
  return x.permute(0, 2, 3, 1);
}

export function toNchw(x: Tensor): Tensor {
  return x.permute(0, 3, 1, 2).contiguous();
}

export interface LayerContext {
  file: string;
  weights: WeightStore;
  /** Names of the enclosing nested models (outermost first). */
  path: readonly string[];
}

/** Reads a layer's config with messages that name the layer and the field. */
export class Cfg {
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

export type Activation = (x: Tensor) => Tensor;

export const SELU_ALPHA = 1.6732632423543772;
export const SELU_SCALE = 1.0507009873554805;

export const ACTIVATIONS: Record<string, Activation> = {
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

export function activationName(v: unknown): string | null {
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

export function lookupActivation(v: unknown, layer: string, file: string): { name: string; fn: Activation } {
  const name = activationName(v);
  if (name === null || !(name in ACTIVATIONS)) {
    throw new UnsupportedLayerError(file, name ?? JSON.stringify(v), layer, "activation");
  }
  return { name, fn: ACTIVATIONS[name] };
}

/** One Keras layer rebuilt on the engine. `call` may create temporaries freely: the graph runs it inside tidy. */
export abstract class KerasLayer extends Module {
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
export function takeWeight(
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

export function weightTensor(w: DecodedWeight, permute?: number[]): Tensor {
  return tidy(() => {
    const t = tensor(w.data, w.shape);
    return permute ? t.permute(permute).contiguous() : t;
  });
}
