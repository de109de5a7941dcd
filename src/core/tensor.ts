/**
 * The TypeScript Tensor: a thin, validated wrapper over a native libtorch tensor.
 * Methods return new tensors; methods ending in `_` update in place and return `this`.
 */
import { binding, type NativeTensor } from "../binding.js";
import { track } from "./engine.js";
import { ArgumentError, DisposedError, ShapeError, TorchError } from "./errors.js";
import { checkInt, checkNumber, checkOneOf, fail } from "./validate.js";

export const DTYPES = [
  "float32",
  "float64",
  "float16",
  "bfloat16",
  "int64",
  "int32",
  "int16",
  "int8",
  "uint8",
  "bool",
] as const;
export type DType = (typeof DTYPES)[number];
export type Device = "cpu" | "cuda" | `cuda:${number}` | string;
export type TypedArray =
  Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;
export type Scalar = number | boolean;
export type TensorLike = Tensor | Scalar;

const ARRAY_OF: Record<DType, new (buf: ArrayBuffer) => TypedArray> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  if (a instanceof BigInt64Array) return "int64";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof Int16Array) return "int16";
  if (a instanceof Int8Array) return "int8";
  if (a instanceof Uint8Array) return "uint8";
  return fail("a typed array of a supported type", "data", a);
}

function checkDtype(d: unknown, name = "dtype"): DType {
  return checkOneOf(d, name, DTYPES);
}

function checkShape(shape: unknown, name = "shape"): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    fail("array of non-negative integers", name, shape);
  }
  return shape as number[];
}

function broadcastable(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 1; i <= Math.min(a.length, b.length); i++) {
    const x = a[a.length - i];
    const y = b[b.length - i];
    if (x !== y && x !== 1 && y !== 1) return false;
  }
  return true;
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

function h(x: TensorLike): NativeTensor | Scalar {
  return x instanceof Tensor ? x.handle : x;
}

export class Tensor {
  /** @internal */ _h: NativeTensor | null;
  /** @internal */ _kept = false;
  private _shape: number[] | undefined;

  /** @internal Use the creation functions (tensor, zeros, ...) instead. */
  constructor(handle: NativeTensor) {
    this._h = handle;
    track(this);
  }

  /** @internal */
  get handle(): NativeTensor {
    if (this._h === null) throw new DisposedError("This tensor was disposed and cannot be used any more");
    return this._h;
  }

  /** Free the native memory now. Safe to call more than once. */
  dispose(): void {
    if (this._h !== null) {
      this._h.dispose();
      this._h = null;
    }
  }

  get isDisposed(): boolean {
    return this._h === null;
  }

  // ---- information
  get shape(): number[] {
    if (this._shape === undefined) this._shape = binding.shape(this.handle);
    return this._shape.slice();
  }
  /** @internal shape without copying; do not mutate */
  get dims(): readonly number[] {
    if (this._shape === undefined) this._shape = binding.shape(this.handle);
    return this._shape;
  }
  get rank(): number {
    return this.dims.length;
  }
  get size(): number {
    return this.dims.reduce((a, b) => a * b, 1);
  }
  get dtype(): DType {
    return binding.dtype(this.handle) as DType;
  }
  get device(): Device {
    return binding.device(this.handle);
  }
  /** The single value of a one-element tensor. */
  item(): number {
    const v = binding.item(this.handle);
    return typeof v === "boolean" ? Number(v) : v;
  }
  /** A copy of the data as a typed array of the tensor's dtype (row-major). */
  dataSync(): TypedArray {
    const buf = binding.toBuffer(this.handle);
    return new ARRAY_OF[this.dtype](buf);
  }
  /** A copy of the data as plain numbers (row-major). */
  toArray(): number[] {
    const d = this.dataSync();
    return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d as ArrayLike<number>);
  }
  toString(): string {
    if (this._h === null) return "Tensor(disposed)";
    const n = this.size;
    const vals = n <= 16 ? this.toArray().join(", ") : `${this.toArray().slice(0, 8).join(", ")}, ...`;
    return `Tensor(shape=${fmt(this.dims)}, dtype=${this.dtype}, [${vals}])`;
  }

  // ---- conversion
  to(target: DType | Device): Tensor {
    if ((DTYPES as readonly string[]).includes(target)) return wrap(binding.toDtype(this.handle, target));
    return wrap(binding.toDevice(this.handle, target));
  }
  float(): Tensor {
    return this.to("float32");
  }
  long(): Tensor {
    return this.to("int64");
  }
  clone(): Tensor {
    return wrap(binding.clone(this.handle));
  }
  contiguous(): Tensor {
    return wrap(binding.contiguous(this.handle));
  }
  detach(): Tensor {
    return wrap(binding.detach(this.handle));
  }

  // ---- elementwise
  private binary(
    name: string,
    fn: (a: NativeTensor, b: NativeTensor | Scalar) => NativeTensor,
    other: TensorLike,
  ): Tensor {
    if (!(other instanceof Tensor) && typeof other !== "number" && typeof other !== "boolean") {
      fail("a tensor or a number", `the argument of ${name}`, other);
    }
    try {
      return wrap(fn(this.handle, h(other)));
    } catch (e) {
      if (other instanceof Tensor && !broadcastable(this.dims, other.dims)) {
        throw new ShapeError(`${name}: shapes ${fmt(this.dims)} and ${fmt(other.dims)} cannot be broadcast together`);
      }
      throw e;
    }
  }
  add(o: TensorLike): Tensor {
    return this.binary("add", binding.add, o);
  }
  sub(o: TensorLike): Tensor {
    return this.binary("sub", binding.sub, o);
  }
  mul(o: TensorLike): Tensor {
    return this.binary("mul", binding.mul, o);
  }
  div(o: TensorLike): Tensor {
    return this.binary("div", binding.div, o);
  }
  pow(o: TensorLike): Tensor {
    return this.binary("pow", binding.pow, o);
  }
  remainder(o: TensorLike): Tensor {
    return this.binary("remainder", binding.remainder, o);
  }
  maximum(o: TensorLike): Tensor {
    return this.binary("maximum", binding.maximum, o);
  }
  minimum(o: TensorLike): Tensor {
    return this.binary("minimum", binding.minimum, o);
  }
  eq(o: TensorLike): Tensor {
    return this.binary("eq", binding.eq, o);
  }
  ne(o: TensorLike): Tensor {
    return this.binary("ne", binding.ne, o);
  }
  lt(o: TensorLike): Tensor {
    return this.binary("lt", binding.lt, o);
  }
  le(o: TensorLike): Tensor {
    return this.binary("le", binding.le, o);
  }
  gt(o: TensorLike): Tensor {
    return this.binary("gt", binding.gt, o);
  }
  ge(o: TensorLike): Tensor {
    return this.binary("ge", binding.ge, o);
  }
  logicalAnd(o: TensorLike): Tensor {
    return this.binary("logicalAnd", binding.logicalAnd, o);
  }
  logicalOr(o: TensorLike): Tensor {
    return this.binary("logicalOr", binding.logicalOr, o);
  }
  logicalNot(): Tensor {
    return wrap(binding.logicalNot(this.handle));
  }
  neg(): Tensor {
    return wrap(binding.neg(this.handle));
  }
  abs(): Tensor {
    return wrap(binding.abs(this.handle));
  }
  sign(): Tensor {
    return wrap(binding.sign(this.handle));
  }
  exp(): Tensor {
    return wrap(binding.exp(this.handle));
  }
  log(): Tensor {
    return wrap(binding.log(this.handle));
  }
  log1p(): Tensor {
    return wrap(binding.log1p(this.handle));
  }
  sqrt(): Tensor {
    return wrap(binding.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return wrap(binding.rsqrt(this.handle));
  }
  square(): Tensor {
    return wrap(binding.square(this.handle));
  }
  reciprocal(): Tensor {
    return wrap(binding.reciprocal(this.handle));
  }
  relu(): Tensor {
    return wrap(binding.relu(this.handle));
  }
  sigmoid(): Tensor {
    return wrap(binding.sigmoid(this.handle));
  }
  tanh(): Tensor {
    return wrap(binding.tanh(this.handle));
  }
  sin(): Tensor {
    return wrap(binding.sin(this.handle));
  }
  cos(): Tensor {
    return wrap(binding.cos(this.handle));
  }
  floor(): Tensor {
    return wrap(binding.floor(this.handle));
  }
  ceil(): Tensor {
    return wrap(binding.ceil(this.handle));
  }
  round(): Tensor {
    return wrap(binding.round(this.handle));
  }
  isnan(): Tensor {
    return wrap(binding.isnan(this.handle));
  }
  leakyRelu(negativeSlope = 0.01): Tensor {
    checkNumber(negativeSlope, "negativeSlope");
    return wrap(binding.leakyRelu(this.handle, negativeSlope));
  }
  softplus(beta = 1, threshold = 20): Tensor {
    checkNumber(beta, "beta");
    checkNumber(threshold, "threshold");
    return wrap(binding.softplus(this.handle, beta, threshold));
  }
  hardtanh(min = -1, max = 1): Tensor {
    return wrap(binding.hardtanh(this.handle, checkNumber(min, "min"), checkNumber(max, "max")));
  }
  elu(alpha = 1): Tensor {
    return wrap(binding.elu(this.handle, checkNumber(alpha, "alpha")));
  }
  /** Clamp to [min, max]; each bound is a number, a tensor (broadcast), or null for none. */
  clamp(min: TensorLike | null, max: TensorLike | null = null): Tensor {
    return wrap(binding.clamp(this.handle, min === null ? null : h(min), max === null ? null : h(max)));
  }
  lerp(end: Tensor, weight: number): Tensor {
    return wrap(binding.lerp(this.handle, end.handle, checkNumber(weight, "weight")));
  }

  // ---- reductions
  sum(dims?: number | number[] | null, keepdim = false): Tensor {
    return wrap(binding.sum(this.handle, normDims(dims), keepdim));
  }
  mean(dims?: number | number[] | null, keepdim = false): Tensor {
    return wrap(binding.mean(this.handle, normDims(dims), keepdim));
  }
  prod(dim?: number | null, keepdim = false): Tensor {
    return wrap(binding.prod(this.handle, dim ?? null, keepdim));
  }
  var(dims?: number | number[] | null, unbiased = true, keepdim = false): Tensor {
    return wrap(binding.var(this.handle, normDims(dims), unbiased, keepdim));
  }
  std(dims?: number | number[] | null, unbiased = true, keepdim = false): Tensor {
    const v = this.var(dims, unbiased, keepdim);
    const s = v.sqrt();
    v.dispose();
    return s;
  }
  /** Largest values over `dims` (all elements when omitted). */
  max(dims?: number | number[] | null, keepdim = false): Tensor {
    return wrap(binding.amax(this.handle, normDims(dims), keepdim));
  }
  min(dims?: number | number[] | null, keepdim = false): Tensor {
    return wrap(binding.amin(this.handle, normDims(dims), keepdim));
  }
  /** Largest values and their indices along one dimension. */
  maxDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [v, i] = binding.maxDim(this.handle, checkInt(dim, "dim"), keepdim);
    return { values: wrap(v), indices: wrap(i) };
  }
  minDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [v, i] = binding.minDim(this.handle, checkInt(dim, "dim"), keepdim);
    return { values: wrap(v), indices: wrap(i) };
  }
  argmax(dim?: number | null, keepdim = false): Tensor {
    return wrap(binding.argmax(this.handle, dim ?? null, keepdim));
  }
  argmin(dim?: number | null, keepdim = false): Tensor {
    return wrap(binding.argmin(this.handle, dim ?? null, keepdim));
  }
  topk(k: number, dim = -1, largest = true, sorted = true): { values: Tensor; indices: Tensor } {
    const [v, i] = binding.topk(this.handle, checkInt(k, "k", 1), checkInt(dim, "dim"), largest, sorted);
    return { values: wrap(v), indices: wrap(i) };
  }
  /** Vector p-norm over `dims` (all elements when omitted); p may be Infinity. */
  norm(p = 2, dims?: number | number[] | null, keepdim = false): Tensor {
    checkNumber(p, "p");
    return wrap(binding.norm(this.handle, p, normDims(dims), keepdim));
  }
  logsumexp(dims: number | number[], keepdim = false): Tensor {
    return wrap(binding.logsumexp(this.handle, normDims(dims)!, keepdim));
  }
  all(): Tensor {
    return wrap(binding.all(this.handle));
  }
  any(): Tensor {
    return wrap(binding.any(this.handle));
  }
  cumsum(dim: number): Tensor {
    return wrap(binding.cumsum(this.handle, checkInt(dim, "dim")));
  }
  matmul(other: Tensor): Tensor {
    const a = this.dims;
    const b = other.dims;
    if (a.length === 0 || b.length === 0) throw new ShapeError("matmul: both tensors need at least one dimension");
    const k1 = a[a.length - 1];
    const k2 = b.length === 1 ? b[0] : b[b.length - 2];
    if (k1 !== k2) throw new ShapeError(`matmul: shapes ${fmt(a)} and ${fmt(b)} do not fit (${k1} != ${k2})`);
    return wrap(binding.matmul(this.handle, other.handle));
  }

  // ---- shape
  reshape(...shape: number[] | [number[]]): Tensor {
    const s = (Array.isArray(shape[0]) ? shape[0] : shape) as number[];
    if (!s.every((d) => Number.isInteger(d) && d >= -1)) fail("array of integers (at most one -1)", "shape", s);
    const known = s.filter((d) => d !== -1).reduce((x, y) => x * y, 1);
    const n = this.size;
    const ok = s.includes(-1) ? known > 0 && n % known === 0 : known === n;
    if (!ok) throw new ShapeError(`reshape: cannot reshape ${fmt(this.dims)} (${n} elements) to ${fmt(s)}`);
    return wrap(binding.reshape(this.handle, s));
  }
  view(...shape: number[] | [number[]]): Tensor {
    return this.reshape(...shape);
  }
  permute(...dims: number[] | [number[]]): Tensor {
    const d = (Array.isArray(dims[0]) ? dims[0] : dims) as number[];
    if (d.length !== this.rank)
      throw new ShapeError(`permute: ${d.length} dims given for a tensor of rank ${this.rank}`);
    return wrap(binding.permute(this.handle, d));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return wrap(binding.transpose(this.handle, checkInt(dim0, "dim0"), checkInt(dim1, "dim1")));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return wrap(binding.flatten(this.handle, checkInt(startDim, "startDim"), checkInt(endDim, "endDim")));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return wrap(
      binding.narrow(this.handle, checkInt(dim, "dim"), checkInt(start, "start"), checkInt(length, "length", 0)),
    );
  }
  /** Python-style slice along one dimension: t[start:end:step]. */
  slice(dim: number, start: number | null = null, end: number | null = null, step = 1): Tensor {
    return wrap(binding.slice(this.handle, checkInt(dim, "dim"), start, end, checkInt(step, "step", 1)));
  }
  select(dim: number, index: number): Tensor {
    return wrap(binding.select(this.handle, checkInt(dim, "dim"), checkInt(index, "index")));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return wrap(binding.indexSelect(this.handle, checkInt(dim, "dim"), index.handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    return wrap(binding.gather(this.handle, checkInt(dim, "dim"), index.handle));
  }
  maskedFill(mask: Tensor, value: Scalar): Tensor {
    return wrap(binding.maskedFill(this.handle, mask.handle, value));
  }
  expand(...shape: number[] | [number[]]): Tensor {
    const s = (Array.isArray(shape[0]) ? shape[0] : shape) as number[];
    return wrap(binding.expand(this.handle, s));
  }
  squeeze(dim?: number): Tensor {
    return wrap(binding.squeeze(this.handle, dim ?? null));
  }
  unsqueeze(dim: number): Tensor {
    return wrap(binding.unsqueeze(this.handle, checkInt(dim, "dim")));
  }
  repeat(...reps: number[] | [number[]]): Tensor {
    const r = (Array.isArray(reps[0]) ? reps[0] : reps) as number[];
    return wrap(binding.repeat(this.handle, r));
  }
  flip(dims: number | number[]): Tensor {
    return wrap(binding.flip(this.handle, normDims(dims)!));
  }
  split(splitSize: number, dim = 0): Tensor[] {
    return binding.split(this.handle, checkInt(splitSize, "splitSize", 1), checkInt(dim, "dim")).map(wrap);
  }
  /** Pad the last dimensions: pads = [left, right, top, bottom, ...] as in torch.nn.functional.pad. */
  pad(pads: number[], mode: "constant" | "reflect" | "replicate" | "circular" = "constant", value = 0): Tensor {
    if (!Array.isArray(pads) || pads.length % 2 !== 0 || !pads.every(Number.isInteger)) {
      fail("array of an even number of integers", "pads", pads);
    }
    checkOneOf(mode, "mode", ["constant", "reflect", "replicate", "circular"] as const);
    return wrap(binding.pad(this.handle, pads, mode, value));
  }

  // ---- in place (return this)
  private inplace(fn: () => void): this {
    fn();
    return this;
  }
  add_(o: TensorLike, alpha?: number): this {
    return this.inplace(() => binding.add_(this.handle, h(o), alpha));
  }
  sub_(o: TensorLike, alpha?: number): this {
    return this.inplace(() => binding.sub_(this.handle, h(o), alpha));
  }
  mul_(o: TensorLike): this {
    return this.inplace(() => binding.mul_(this.handle, h(o)));
  }
  div_(o: TensorLike): this {
    return this.inplace(() => binding.div_(this.handle, h(o)));
  }
  lerp_(end: Tensor, weight: number): this {
    return this.inplace(() => binding.lerp_(this.handle, end.handle, weight));
  }
  addcmul_(t1: Tensor, t2: Tensor, value = 1): this {
    return this.inplace(() => binding.addcmul_(this.handle, t1.handle, t2.handle, value));
  }
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): this {
    return this.inplace(() => binding.addcdiv_(this.handle, t1.handle, t2.handle, value));
  }
  copy_(src: Tensor): this {
    return this.inplace(() => binding.copy_(this.handle, src.handle));
  }
  zero_(): this {
    return this.inplace(() => binding.zero_(this.handle));
  }
  fill_(value: Scalar): this {
    return this.inplace(() => binding.fill_(this.handle, value));
  }
  uniform_(from = 0, to = 1): this {
    return this.inplace(() => binding.uniform_(this.handle, checkNumber(from, "from"), checkNumber(to, "to")));
  }
  normal_(mean = 0, std = 1): this {
    return this.inplace(() => binding.normal_(this.handle, checkNumber(mean, "mean"), checkNumber(std, "std", 0)));
  }
  clamp_(min: number | null, max: number | null = null): this {
    return this.inplace(() => binding.clamp_(this.handle, min, max));
  }
  sqrt_(): this {
    return this.inplace(() => binding.sqrt_(this.handle));
  }

  // ---- autograd
  get requiresGrad(): boolean {
    return binding.requiresGrad(this.handle);
  }
  /** Turn gradient tracking on or off for this (leaf) tensor; returns this. */
  requiresGrad_(on = true): this {
    binding.setRequiresGrad(this.handle, on);
    return this;
  }
  get isLeaf(): boolean {
    return binding.isLeaf(this.handle);
  }
  get gradFn(): string | null {
    return binding.gradFnName(this.handle);
  }
  /** The accumulated gradient (a new handle on the same storage), or undefined. */
  get grad(): Tensor | undefined {
    const g = binding.gradOf(this.handle);
    return g === undefined ? undefined : wrap(g);
  }
  set grad(g: Tensor | undefined) {
    binding.setGrad(this.handle, g === undefined ? null : g.handle);
  }
  backward(gradient?: Tensor, options: { retainGraph?: boolean } = {}): void {
    if (gradient === undefined && this.size !== 1) {
      throw new ShapeError(
        `backward: a gradient is needed for a tensor of shape ${fmt(this.dims)} (only scalars can omit it)`,
      );
    }
    binding.backward(this.handle, gradient?.handle ?? null, options.retainGraph ?? false);
  }
}

function normDims(dims: number | number[] | null | undefined): number[] | null {
  if (dims === undefined || dims === null) return null;
  if (typeof dims === "number") return [checkInt(dims, "dim")];
  if (!Array.isArray(dims) || !dims.every(Number.isInteger)) fail("integer or array of integers", "dims", dims);
  return dims;
}

/** @internal wrap a native handle into a tracked Tensor. */
export function wrap(handle: NativeTensor): Tensor {
  return new Tensor(handle);
}

// ---- creation
export interface CreateOptions {
  dtype?: DType;
  device?: Device;
}

function opts(o: CreateOptions | undefined, defaultDtype: DType = "float32"): [DType, Device] {
  return [checkDtype(o?.dtype ?? defaultDtype), o?.device ?? "cpu"];
}

function flattenNested(data: unknown, shape: number[], out: number[], depth: number): void {
  if (Array.isArray(data)) {
    if (shape.length <= depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new ShapeError("tensor: nested arrays have ragged lengths");
    for (const d of data) flattenNested(d, shape, out, depth + 1);
  } else if (typeof data === "number" || typeof data === "boolean") {
    if (depth !== shape.length) throw new ShapeError("tensor: nested arrays have ragged lengths");
    out.push(Number(data));
  } else {
    fail("numbers, nested arrays of numbers, or a typed array", "data", data);
  }
}

/**
 * Make a tensor from data: a typed array (with an optional shape; its dtype is
 * kept unless another is asked for), a number, or (nested) arrays of numbers.
 */
export function tensor(
  data: TypedArray | number | boolean | unknown[],
  shape?: number[],
  options?: CreateOptions,
): Tensor {
  if (ArrayBuffer.isView(data)) {
    const arr = data as TypedArray;
    const s = shape ? checkShape(shape) : [arr.length];
    const natural = dtypeOfArray(arr);
    const want = checkDtype(options?.dtype ?? natural);
    const count = s.reduce((a, b) => a * b, 1);
    if (count !== arr.length)
      throw new ShapeError(`tensor: shape ${fmt(s)} needs ${count} values but ${arr.length} were given`);
    const t = wrap(binding.fromBuffer(arr, s, natural, options?.device ?? "cpu"));
    if (want === natural) return t;
    const c = t.to(want);
    t.dispose();
    return c;
  }
  const flat: number[] = [];
  const inferred: number[] = [];
  flattenNested(data, inferred, flat, 0);
  const s = shape ? checkShape(shape) : inferred;
  const count = s.reduce((a, b) => a * b, 1);
  if (count !== flat.length)
    throw new ShapeError(`tensor: shape ${fmt(s)} needs ${count} values but ${flat.length} were given`);
  const [dtype, device] = opts(options);
  const f64 = wrap(binding.fromBuffer(new Float64Array(flat), s, "float64", device));
  if (dtype === "float64") return f64;
  const c = f64.to(dtype);
  f64.dispose();
  return c;
}

export function scalar(value: number, options?: CreateOptions): Tensor {
  return tensor(value, [], options);
}
export function zeros(shape: number[], options?: CreateOptions): Tensor {
  return wrap(binding.zeros(checkShape(shape), ...opts(options)));
}
export function ones(shape: number[], options?: CreateOptions): Tensor {
  return wrap(binding.ones(checkShape(shape), ...opts(options)));
}
export function full(shape: number[], value: Scalar, options?: CreateOptions): Tensor {
  return wrap(binding.full(checkShape(shape), value, ...opts(options)));
}
export function zerosLike(t: Tensor): Tensor {
  return zeros(t.shape, { dtype: t.dtype, device: t.device });
}
export function onesLike(t: Tensor): Tensor {
  return ones(t.shape, { dtype: t.dtype, device: t.device });
}
/** Uniform on [0, 1). */
export function rand(shape: number[], options?: CreateOptions): Tensor {
  return wrap(binding.rand(checkShape(shape), ...opts(options)));
}
/** Standard normal. */
export function randn(shape: number[], options?: CreateOptions): Tensor {
  return wrap(binding.randn(checkShape(shape), ...opts(options)));
}
/** Integers uniform on [low, high). */
export function randint(low: number, high: number, shape: number[], options?: CreateOptions): Tensor {
  checkInt(low, "low");
  checkInt(high, "high", low + 1);
  return wrap(binding.randint(low, high, checkShape(shape), ...opts(options, "int64")));
}
export function randperm(n: number, options?: CreateOptions): Tensor {
  return wrap(binding.randperm(checkInt(n, "n", 0), ...opts(options, "int64")));
}
export function arange(start: number, end?: number, step = 1, options?: CreateOptions): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  checkNumber(start, "start");
  checkNumber(end, "end");
  if (step === 0 || !Number.isFinite(step)) fail("non-zero finite number", "step", step);
  const allInt = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  return wrap(binding.arange(start, end, step, ...opts(options, allInt ? "int64" : "float32")));
}

// ---- functions over several tensors
function checkTensors(ts: unknown, name: string): Tensor[] {
  if (!Array.isArray(ts) || ts.length === 0 || !ts.every((t) => t instanceof Tensor)) {
    fail("non-empty array of tensors", name, ts);
  }
  return ts as Tensor[];
}

export function cat(tensors: Tensor[], dim = 0): Tensor {
  const ts = checkTensors(tensors, "tensors");
  const r = ts[0].rank;
  const d = dim < 0 ? dim + r : dim;
  for (const t of ts) {
    if (t.rank !== r || t.dims.some((s, i) => i !== d && s !== ts[0].dims[i])) {
      throw new ShapeError(`cat: shapes ${ts.map((x) => fmt(x.dims)).join(", ")} differ outside dimension ${dim}`);
    }
  }
  return wrap(
    binding.cat(
      ts.map((t) => t.handle),
      checkInt(dim, "dim"),
    ),
  );
}

export function stack(tensors: Tensor[], dim = 0): Tensor {
  const ts = checkTensors(tensors, "tensors");
  for (const t of ts) {
    if (fmt(t.dims) !== fmt(ts[0].dims))
      throw new ShapeError(`stack: shapes ${ts.map((x) => fmt(x.dims)).join(", ")} differ`);
  }
  return wrap(
    binding.stack(
      ts.map((t) => t.handle),
      checkInt(dim, "dim"),
    ),
  );
}

/** Elementwise choice: cond ? a : b (each of a and b a tensor or a number). */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  if (!(cond instanceof Tensor)) fail("a boolean tensor", "condition", cond);
  return wrap(binding.where(cond.handle, h(a), h(b)));
}

/**
 * Gradients of `outputs` with respect to `inputs`, without touching any
 * tensor's `.grad` (attacks need exactly this).
 */
export function grad(
  outputs: Tensor | Tensor[],
  inputs: Tensor[],
  options: { gradOutputs?: Tensor[]; retainGraph?: boolean; createGraph?: boolean; allowUnused?: boolean } = {},
): Tensor[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  checkTensors(outs, "outputs");
  checkTensors(inputs, "inputs");
  if (!options.gradOutputs) {
    for (const o of outs) {
      if (o.size !== 1) {
        throw new ShapeError(
          `grad: output of shape ${fmt(o.dims)} needs gradOutputs (only scalar outputs can omit them)`,
        );
      }
    }
  }
  for (const [i, x] of inputs.entries()) {
    if (!x.requiresGrad)
      throw new ArgumentError(`grad: inputs[${i}] does not require grad; call requiresGrad_() on it first`);
  }
  const create = options.createGraph ?? false;
  const gs = binding.grad(
    outs.map((t) => t.handle),
    inputs.map((t) => t.handle),
    options.gradOutputs ? options.gradOutputs.map((t) => t.handle) : null,
    options.retainGraph ?? create,
    create,
    options.allowUnused ?? false,
  );
  return gs.map((g, i) => (g === undefined ? zerosLike(inputs[i]) : wrap(g)));
}

export { TorchError };
