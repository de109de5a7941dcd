/**
 * The only module that loads the native addon. It exposes the raw binding with
 * a typed interface, and converts every native exception into a TorchError.
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { availableParallelism } from "node:os";
import { TorchError, VaeguardError } from "./core/errors.js";
import { maxThreads } from "./core/threads.js";

/** Opaque native tensor handle. */
export interface NativeTensor {
  dispose(): void;
  isDisposed(): boolean;
  readonly __brand?: "NativeTensor";
}
/** Opaque TorchScript module handle. */
export interface NativeModule {
  dispose(): void;
  readonly __brand?: "NativeModule";
}

type T = NativeTensor;
type TS = NativeTensor | number | boolean;
type Ints = number[];
type OptT = NativeTensor | null | undefined;
type Reduction = "mean" | "sum" | "none";

export interface RawBinding {
  NativeTensor: new () => NativeTensor;
  // creation and data
  fromBuffer(data: ArrayBufferView, shape: Ints, dtype: string, device?: string): T;
  toBuffer(t: T): ArrayBuffer;
  zeros(shape: Ints, dtype: string, device?: string): T;
  ones(shape: Ints, dtype: string, device?: string): T;
  full(shape: Ints, value: number | boolean, dtype: string, device?: string): T;
  rand(shape: Ints, dtype: string, device?: string): T;
  randn(shape: Ints, dtype: string, device?: string): T;
  randint(low: number, high: number, shape: Ints, dtype: string, device?: string): T;
  randperm(n: number, dtype: string, device?: string): T;
  arange(start: number, end: number, step: number, dtype: string, device?: string): T;
  shape(t: T): number[];
  dtype(t: T): string;
  device(t: T): string;
  numel(t: T): number;
  item(t: T): number | boolean;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  /** Convolutions in channels-last memory (oneDNN's fast layout on CPU); see core/kernels.ts. */
  setChannelsLast(on: boolean): void;
  getChannelsLast(): boolean;
  /** 2x2 max pooling by vaeguard's own kernel (native/src/maxpool2x2.cc) rather than libtorch's; see core/engine.ts. */
  setFastMaxPool(on: boolean): void;
  getFastMaxPool(): boolean;
  manualSeed(seed: number): void;
  // side by side in worker threads (native/src/threads.cc; see core/concurrency.ts)
  ownGenerator(): void;
  shareTensor(t: T): number;
  takeSharedTensor(id: number): T;
  dropSharedTensor(id: number): void;
  sharedTensorCount(): number;
  setBlasThreads(n: number): boolean;
  getBlasThreads(): number | null;
  versions(): { torch: string; config: string; parallel: string; cuda: boolean; cudaDevices: number };
  liveTensors(): { tensors: number; bytes: number };
  /**
   * glibc malloc settings made at load (native/src/allocator.cc); -1 where vaeguard set none. cacheBytes: the
   * most that libtorch's CPU allocator keeps of freed blocks of 128 KiB and more for reuse (0: no cache).
   */
  allocatorSettings(): { source: string; mmapThreshold: number; trimThreshold: number; cacheBytes: number };
  // elementwise
  neg(t: T): T;
  abs(t: T): T;
  sign(t: T): T;
  exp(t: T): T;
  log(t: T): T;
  log1p(t: T): T;
  sqrt(t: T): T;
  rsqrt(t: T): T;
  square(t: T): T;
  reciprocal(t: T): T;
  relu(t: T): T;
  sigmoid(t: T): T;
  tanh(t: T): T;
  sin(t: T): T;
  cos(t: T): T;
  floor(t: T): T;
  ceil(t: T): T;
  round(t: T): T;
  logicalNot(t: T): T;
  isnan(t: T): T;
  clone(t: T): T;
  contiguous(t: T): T;
  detach(t: T): T;
  leakyRelu(t: T, slope: number): T;
  softplus(t: T, beta: number, threshold: number): T;
  hardtanh(t: T, min: number, max: number): T;
  elu(t: T, alpha: number): T;
  add(a: T, b: TS): T;
  sub(a: T, b: TS): T;
  mul(a: T, b: TS): T;
  div(a: T, b: TS): T;
  pow(a: T, b: TS): T;
  remainder(a: T, b: TS): T;
  maximum(a: T, b: TS): T;
  minimum(a: T, b: TS): T;
  eq(a: T, b: TS): T;
  ne(a: T, b: TS): T;
  lt(a: T, b: TS): T;
  le(a: T, b: TS): T;
  gt(a: T, b: TS): T;
  ge(a: T, b: TS): T;
  logicalAnd(a: T, b: TS): T;
  logicalOr(a: T, b: TS): T;
  where(cond: T, a: TS, b: TS): T;
  clamp(t: T, min: TS | null, max: TS | null): T;
  lerp(a: T, end: T, weight: number): T;
  toDtype(t: T, dtype: string): T;
  toDevice(t: T, device: string): T;
  add_(a: T, b: TS, alpha?: number): void;
  sub_(a: T, b: TS, alpha?: number): void;
  mul_(a: T, b: TS): void;
  div_(a: T, b: TS): void;
  lerp_(a: T, end: T, weight: number): void;
  addcmul_(a: T, t1: T, t2: T, value: number): void;
  addcdiv_(a: T, t1: T, t2: T, value: number): void;
  copy_(a: T, src: T): void;
  zero_(a: T): void;
  fill_(a: T, value: number | boolean): void;
  uniform_(a: T, from: number, to: number): void;
  normal_(a: T, mean: number, std: number): void;
  clamp_(a: T, min: number | null, max: number | null): void;
  sqrt_(a: T): void;
  // reductions
  sum(t: T, dims?: Ints | null, keepdim?: boolean): T;
  mean(t: T, dims?: Ints | null, keepdim?: boolean): T;
  prod(t: T, dim?: number | null, keepdim?: boolean): T;
  var(t: T, dims: Ints | null, unbiased: boolean, keepdim: boolean): T;
  amax(t: T, dims: Ints | null, keepdim: boolean): T;
  amin(t: T, dims: Ints | null, keepdim: boolean): T;
  argmax(t: T, dim?: number | null, keepdim?: boolean): T;
  argmin(t: T, dim?: number | null, keepdim?: boolean): T;
  maxDim(t: T, dim: number, keepdim: boolean): [T, T];
  minDim(t: T, dim: number, keepdim: boolean): [T, T];
  topk(t: T, k: number, dim: number, largest: boolean, sorted: boolean): [T, T];
  norm(t: T, p: number, dims?: Ints | null, keepdim?: boolean): T;
  logsumexp(t: T, dims: Ints, keepdim: boolean): T;
  all(t: T): T;
  any(t: T): T;
  cumsum(t: T, dim: number): T;
  matmul(a: T, b: T): T;
  linear(x: T, w: T, b?: OptT): T;
  // shape
  reshape(t: T, shape: Ints): T;
  permute(t: T, dims: Ints): T;
  transpose(t: T, d0: number, d1: number): T;
  flatten(t: T, start: number, end: number): T;
  cat(ts: T[], dim: number): T;
  stack(ts: T[], dim: number): T;
  narrow(t: T, dim: number, start: number, length: number): T;
  slice(t: T, dim: number, start: number | null, end: number | null, step: number): T;
  select(t: T, dim: number, index: number): T;
  indexSelect(t: T, dim: number, index: T): T;
  gather(t: T, dim: number, index: T): T;
  maskedFill(t: T, mask: T, value: number | boolean): T;
  expand(t: T, shape: Ints): T;
  squeeze(t: T, dim?: number | null): T;
  unsqueeze(t: T, dim: number): T;
  repeat(t: T, reps: Ints): T;
  flip(t: T, dims: Ints): T;
  split(t: T, size: number, dim: number): T[];
  oneHot(t: T, numClasses: number): T;
  pad(t: T, pads: Ints, mode: string, value?: number): T;
  // nn
  conv2d(x: T, w: T, b: OptT, stride: Ints, padding: Ints, dilation: Ints, groups: number): T;
  convTranspose2d(
    x: T,
    w: T,
    b: OptT,
    stride: Ints,
    padding: Ints,
    outputPadding: Ints,
    groups: number,
    dilation: Ints,
  ): T;
  maxPool2d(x: T, kernel: Ints, stride: Ints, padding: Ints, dilation: Ints, ceilMode: boolean): T;
  avgPool2d(x: T, kernel: Ints, stride: Ints, padding: Ints, ceilMode: boolean, countIncludePad: boolean): T;
  adaptiveAvgPool2d(x: T, outputSize: Ints): T;
  interpolate(x: T, size: Ints, mode: string, alignCorners: boolean): T;
  batchNorm(x: T, w: OptT, b: OptT, rm: OptT, rv: OptT, training: boolean, momentum: number, eps: number): T;
  dropout(x: T, p: number, training: boolean): T;
  softmax(x: T, dim: number): T;
  logSoftmax(x: T, dim: number): T;
  crossEntropy(logits: T, target: T, reduction: Reduction, labelSmoothing?: number): T;
  nllLoss(logp: T, target: T, reduction: Reduction): T;
  mseLoss(a: T, b: T, reduction: Reduction): T;
  bceLoss(p: T, target: T, reduction: Reduction): T;
  bceWithLogits(logits: T, target: T, reduction: Reduction): T;
  unfold(x: T, kernel: Ints, dilation: Ints, padding: Ints, stride: Ints): T;
  fold(cols: T, outputSize: Ints, kernel: Ints, dilation: Ints, padding: Ints, stride: Ints): T;
  // autograd
  requiresGrad(t: T): boolean;
  setRequiresGrad(t: T, on: boolean): void;
  isLeaf(t: T): boolean;
  backward(t: T, gradient?: OptT, retainGraph?: boolean): void;
  gradOf(t: T): T | undefined;
  setGrad(t: T, g: OptT): void;
  grad(outputs: T[], inputs: T[], gradOutputs: T[] | null, retain: boolean, create: boolean, allowUnused: boolean): T[];
  isGradEnabled(): boolean;
  setGradEnabled(on: boolean): void;
  gradFnName(t: T): string | null;
  // TorchScript
  NativeModule: new () => NativeModule;
  jitLoad(path: string): NativeModule;
  jitForward(m: NativeModule, inputs: T[]): unknown;
  jitNamedParameters(m: NativeModule): [string, T][];
  jitTrain(m: NativeModule, on: boolean): void;
  jitIsTraining(m: NativeModule): boolean;
}

function findAddon(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/src/binding.js -> repository root is two levels up; src/binding.ts -> one level.
  const candidates = [
    process.env.VAEGUARD_ADDON,
    join(here, "..", "..", "native", "build", "Release", "vaeguard.node"),
    join(here, "..", "native", "build", "Release", "vaeguard.node"),
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  throw new VaeguardError(
    "The native addon is not built (native/build/Release/vaeguard.node is missing). Run `npm run setup` first.",
  );
}

/** VAEGUARD_THREADS, capped at the safety bound with a warning; all cores when unset or not a positive integer. */
function threadsFromEnvironment(): number {
  const env = process.env.VAEGUARD_THREADS;
  if (!env || !/^\d+$/.test(env) || Number(env) < 1) return availableParallelism();
  const max = maxThreads();
  if (Number(env) > max) {
    process.stderr.write(`vaeguard: warning: VAEGUARD_THREADS=${env} is more than ${max} (4 per core); using ${max}\n`);
    return max;
  }
  return Number(env);
}

/**
 * An on/off setting from the environment: off when the variable is 0, off, false or no; on otherwise or
 * unset. VAEGUARD_CHANNELS_LAST=0 runs conv2d in libtorch's default NCHW memory rather than channels-last,
 * which oneDNN runs faster here; VAEGUARD_FAST_MAXPOOL=0 sends 2x2 max pooling to libtorch's kernel, for
 * comparisons (native/src/ops_nn.cc, README performance).
 */
function flagFromEnvironment(variable: string): boolean {
  const env = (process.env[variable] ?? "").trim().toLowerCase();
  return !["0", "off", "false", "no"].includes(env);
}

function load(): RawBinding {
  const require = createRequire(import.meta.url);
  const path = findAddon();
  let raw: Record<string, unknown>;
  try {
    raw = require(path) as Record<string, unknown>;
  } catch (e) {
    throw new VaeguardError(
      `Could not load the native addon ${path}: ${(e as Error).message}. ` +
        "Is libtorch installed (apt-get install libtorch-dev libopenblas0-pthread)? Run `npm run setup`.",
      { cause: e },
    );
  }
  const wrapped: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value !== "function" || name === "NativeTensor" || name === "NativeModule") {
      wrapped[name] = value;
      continue;
    }
    const fn = value as (...args: unknown[]) => unknown;
    wrapped[name] = function guarded(...args: unknown[]) {
      try {
        return fn(...args);
      } catch (e) {
        throw new TorchError((e as Error).message, { cause: e });
      }
    };
  }
  const b = wrapped as unknown as RawBinding;
  b.setNumThreads(threadsFromEnvironment());
  b.setChannelsLast(flagFromEnvironment("VAEGUARD_CHANNELS_LAST"));
  b.setFastMaxPool(flagFromEnvironment("VAEGUARD_FAST_MAXPOOL"));
  return b;
}

export const binding: RawBinding = load();
