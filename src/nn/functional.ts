/**
 * Neural-network functions over NCHW tensors, validated in TypeScript before
 * they reach libtorch so that mistakes produce messages that name the argument.
 */
import { binding } from "../binding.js";
import { Tensor, wrap } from "../core/tensor.js";
import { ShapeError } from "../core/errors.js";
import { checkInt, checkNumber, checkOneOf, fail, pair } from "../core/validate.js";

type Pair = number | [number, number];
type Reduction = "mean" | "sum" | "none";

function fmt(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

function checkRank(t: Tensor, rank: number, op: string, what = "input", layout = "[N, C, H, W]"): void {
  if (!(t instanceof Tensor)) fail("a tensor", `${what} of ${op}`, t);
  if (t.rank !== rank) {
    throw new ShapeError(`${op}: expected ${what} of rank ${rank} ${layout} but received shape ${fmt(t.dims)}`);
  }
}

function checkReduction(r: unknown): Reduction {
  return checkOneOf(r, "reduction", ["mean", "sum", "none"] as const);
}

export interface Conv2dOptions {
  stride?: Pair;
  /** Zero padding on each side, or "same" (output size = ceil(input / stride), padding split as TensorFlow does). */
  padding?: Pair | "same" | "valid";
  dilation?: Pair;
  groups?: number;
}

/** TensorFlow-style "same" padding: [left, right, top, bottom]. */
export function samePadding(
  inH: number,
  inW: number,
  k: [number, number],
  s: [number, number],
  d: [number, number],
): number[] {
  const padAlong = (n: number, kk: number, ss: number, dd: number) => {
    const eff = (kk - 1) * dd + 1;
    const out = Math.ceil(n / ss);
    return Math.max((out - 1) * ss + eff - n, 0);
  };
  const ph = padAlong(inH, k[0], s[0], d[0]);
  const pw = padAlong(inW, k[1], s[1], d[1]);
  return [Math.floor(pw / 2), pw - Math.floor(pw / 2), Math.floor(ph / 2), ph - Math.floor(ph / 2)];
}

export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  checkRank(x, 4, "conv2d");
  checkRank(weight, 4, "conv2d", "weight", "[outC, inC/groups, kH, kW]");
  const stride = pair(options.stride ?? 1, "stride", 1);
  const dilation = pair(options.dilation ?? 1, "dilation", 1);
  const groups = checkInt(options.groups ?? 1, "groups", 1);
  const [, c, ih, iw] = x.dims;
  const [oc, icg, kh, kw] = weight.dims;
  if (icg * groups !== c) {
    throw new ShapeError(
      `conv2d: input has ${c} channels but weight ${fmt(weight.dims)} with groups=${groups} expects ${icg * groups}`,
    );
  }
  if (oc % groups !== 0) throw new ShapeError(`conv2d: ${oc} output channels are not divisible by groups=${groups}`);
  if (bias !== null && (bias.rank !== 1 || bias.dims[0] !== oc)) {
    throw new ShapeError(`conv2d: bias of shape ${fmt(bias.dims)} does not match ${oc} output channels`);
  }
  let padding: [number, number] = [0, 0];
  let input = x;
  if (options.padding === "same") {
    const p = samePadding(ih, iw, [kh, kw], stride, dilation);
    if (p[0] === p[1] && p[2] === p[3]) {
      padding = [p[2], p[0]];
    } else {
      input = x.pad(p);
    }
  } else if (options.padding !== undefined && options.padding !== "valid") {
    padding = pair(options.padding, "padding", 0);
  }
  const effH = (kh - 1) * dilation[0] + 1;
  const effW = (kw - 1) * dilation[1] + 1;
  if (input.dims[2] + 2 * padding[0] < effH || input.dims[3] + 2 * padding[1] < effW) {
    if (input !== x) input.dispose();
    throw new ShapeError(`conv2d: kernel ${kh}x${kw} is larger than the padded input ${fmt(x.dims)}`);
  }
  const out = wrap(
    binding.conv2d(input.handle, weight.handle, bias?.handle ?? null, stride, padding, dilation, groups),
  );
  if (input !== x) input.dispose();
  return out;
}

export interface ConvTranspose2dOptions {
  stride?: Pair;
  padding?: Pair;
  outputPadding?: Pair;
  dilation?: Pair;
  groups?: number;
}

export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: ConvTranspose2dOptions = {},
): Tensor {
  checkRank(x, 4, "convTranspose2d");
  checkRank(weight, 4, "convTranspose2d", "weight", "[inC, outC/groups, kH, kW]");
  const groups = checkInt(options.groups ?? 1, "groups", 1);
  if (weight.dims[0] !== x.dims[1]) {
    throw new ShapeError(
      `convTranspose2d: input has ${x.dims[1]} channels but weight ${fmt(weight.dims)} expects ${weight.dims[0]}`,
    );
  }
  return wrap(
    binding.convTranspose2d(
      x.handle,
      weight.handle,
      bias?.handle ?? null,
      pair(options.stride ?? 1, "stride", 1),
      pair(options.padding ?? 0, "padding", 0),
      pair(options.outputPadding ?? 0, "outputPadding", 0),
      groups,
      pair(options.dilation ?? 1, "dilation", 1),
    ),
  );
}

export interface Pool2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
  countIncludePad?: boolean;
}

export function maxPool2d(x: Tensor, kernelSize: Pair, options: Pool2dOptions = {}): Tensor {
  checkRank(x, 4, "maxPool2d");
  const k = pair(kernelSize, "kernelSize", 1);
  return wrap(
    binding.maxPool2d(
      x.handle,
      k,
      pair(options.stride ?? k, "stride", 1),
      pair(options.padding ?? 0, "padding", 0),
      pair(options.dilation ?? 1, "dilation", 1),
      options.ceilMode ?? false,
    ),
  );
}

export function avgPool2d(x: Tensor, kernelSize: Pair, options: Pool2dOptions = {}): Tensor {
  checkRank(x, 4, "avgPool2d");
  const k = pair(kernelSize, "kernelSize", 1);
  return wrap(
    binding.avgPool2d(
      x.handle,
      k,
      pair(options.stride ?? k, "stride", 1),
      pair(options.padding ?? 0, "padding", 0),
      options.ceilMode ?? false,
      options.countIncludePad ?? true,
    ),
  );
}

export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  checkRank(x, 4, "adaptiveAvgPool2d");
  return wrap(binding.adaptiveAvgPool2d(x.handle, pair(outputSize, "outputSize", 1)));
}

export interface InterpolateOptions {
  size?: Pair;
  scaleFactor?: number;
  mode?: "nearest" | "bilinear";
  alignCorners?: boolean;
}

export function interpolate(x: Tensor, options: InterpolateOptions): Tensor {
  checkRank(x, 4, "interpolate");
  const mode = checkOneOf(options.mode ?? "nearest", "mode", ["nearest", "bilinear"] as const);
  let size: [number, number];
  if (options.size !== undefined) {
    size = pair(options.size, "size", 1);
  } else if (options.scaleFactor !== undefined) {
    const s = checkNumber(options.scaleFactor, "scaleFactor", Number.MIN_VALUE);
    size = [Math.floor(x.dims[2] * s), Math.floor(x.dims[3] * s)];
  } else {
    return fail("size or scaleFactor", "interpolate options", options);
  }
  return wrap(binding.interpolate(x.handle, size, mode, options.alignCorners ?? false));
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}

/** Batch normalisation over dim 1; in training mode the running statistics are updated in place. */
export function batchNorm(x: Tensor, options: BatchNormOptions = {}): Tensor {
  if (x.rank < 2) throw new ShapeError(`batchNorm: expected input of rank at least 2 but received ${fmt(x.dims)}`);
  const c = x.dims[1];
  for (const [name, t] of Object.entries({
    weight: options.weight,
    bias: options.bias,
    runningMean: options.runningMean,
    runningVar: options.runningVar,
  })) {
    if (t && (t.rank !== 1 || t.dims[0] !== c)) {
      throw new ShapeError(`batchNorm: ${name} of shape ${fmt(t.dims)} does not match ${c} channels`);
    }
  }
  const training = options.training ?? false;
  if (!training && (!options.runningMean || !options.runningVar)) {
    throw new ShapeError("batchNorm: inference mode needs runningMean and runningVar");
  }
  return wrap(
    binding.batchNorm(
      x.handle,
      options.weight?.handle ?? null,
      options.bias?.handle ?? null,
      options.runningMean?.handle ?? null,
      options.runningVar?.handle ?? null,
      training,
      checkNumber(options.momentum ?? 0.1, "momentum", 0, 1),
      checkNumber(options.eps ?? 1e-5, "eps", 0),
    ),
  );
}

export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  checkNumber(p, "p", 0, 1);
  if (!training || p === 0) return x.clone();
  return wrap(binding.dropout(x.handle, p, training));
}

export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  checkRank(weight, 2, "linear", "weight", "[out, in]");
  if (x.rank < 1 || x.dims[x.rank - 1] !== weight.dims[1]) {
    throw new ShapeError(
      `linear: input of shape ${fmt(x.dims)} does not fit weight ${fmt(weight.dims)} (needs last dimension ${weight.dims[1]})`,
    );
  }
  return wrap(binding.linear(x.handle, weight.handle, bias?.handle ?? null));
}

export function softmax(x: Tensor, dim = -1): Tensor {
  return wrap(binding.softmax(x.handle, checkInt(dim, "dim")));
}

export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return wrap(binding.logSoftmax(x.handle, checkInt(dim, "dim")));
}

function checkClassTargets(op: string, logits: Tensor, target: Tensor): void {
  if (logits.rank < 1) throw new ShapeError(`${op}: logits must have a batch dimension`);
  const sameShape = fmt(target.dims) === fmt(logits.dims);
  if (!sameShape && (target.rank !== logits.rank - 1 || target.dims[0] !== logits.dims[0])) {
    throw new ShapeError(
      `${op}: target of shape ${fmt(target.dims)} does not fit logits ${fmt(logits.dims)} (expected [${logits.dims[0]}] class indices or probabilities of the same shape)`,
    );
  }
}

/** Cross-entropy of logits [N, C] against class indices [N] (int64) or probabilities [N, C]. */
export function crossEntropy(
  logits: Tensor,
  target: Tensor,
  reduction: Reduction = "mean",
  labelSmoothing = 0,
): Tensor {
  checkClassTargets("crossEntropy", logits, target);
  return wrap(
    binding.crossEntropy(
      logits.handle,
      target.handle,
      checkReduction(reduction),
      checkNumber(labelSmoothing, "labelSmoothing", 0, 1),
    ),
  );
}

export function nllLoss(logProbs: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  checkClassTargets("nllLoss", logProbs, target);
  return wrap(binding.nllLoss(logProbs.handle, target.handle, checkReduction(reduction)));
}

function checkSameShape(op: string, a: Tensor, b: Tensor): void {
  if (fmt(a.dims) !== fmt(b.dims))
    throw new ShapeError(`${op}: input ${fmt(a.dims)} and target ${fmt(b.dims)} differ in shape`);
}

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  checkSameShape("mseLoss", input, target);
  return wrap(binding.mseLoss(input.handle, target.handle, checkReduction(reduction)));
}

/** Binary cross-entropy of probabilities in [0, 1]. */
export function bceLoss(input: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  checkSameShape("bceLoss", input, target);
  return wrap(binding.bceLoss(input.handle, target.handle, checkReduction(reduction)));
}

export function bceWithLogits(logits: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  checkSameShape("bceWithLogits", logits, target);
  return wrap(binding.bceWithLogits(logits.handle, target.handle, checkReduction(reduction)));
}

export interface UnfoldOptions {
  dilation?: Pair;
  padding?: Pair;
  stride?: Pair;
}

/** Image patches out: [N, C, H, W] -> [N, C*kH*kW, L]. */
export function unfold(x: Tensor, kernelSize: Pair, options: UnfoldOptions = {}): Tensor {
  checkRank(x, 4, "unfold");
  return wrap(
    binding.unfold(
      x.handle,
      pair(kernelSize, "kernelSize", 1),
      pair(options.dilation ?? 1, "dilation", 1),
      pair(options.padding ?? 0, "padding", 0),
      pair(options.stride ?? 1, "stride", 1),
    ),
  );
}

/** Overlap-add patches back in: [N, C*kH*kW, L] -> [N, C, H, W] (overlaps are summed). */
export function fold(cols: Tensor, outputSize: Pair, kernelSize: Pair, options: UnfoldOptions = {}): Tensor {
  checkRank(cols, 3, "fold", "input", "[N, C*kH*kW, L]");
  return wrap(
    binding.fold(
      cols.handle,
      pair(outputSize, "outputSize", 1),
      pair(kernelSize, "kernelSize", 1),
      pair(options.dilation ?? 1, "dilation", 1),
      pair(options.padding ?? 0, "padding", 0),
      pair(options.stride ?? 1, "stride", 1),
    ),
  );
}
