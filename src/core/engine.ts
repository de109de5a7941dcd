/**
 * Tensor lifetime and grad mode.
 *
 * Every tensor created while a `tidy` scope is open belongs to that scope and
 * is disposed when the scope closes, unless it is returned from the scope
 * (then it moves to the enclosing scope) or marked with `keep`. Outside any
 * scope a tensor lives until `dispose()` or, as a last resort, until the
 * garbage collector finalises its native handle.
 */
import { binding } from "../binding.js";
import { VaeguardError } from "./errors.js";
import { checkThreads } from "./threads.js";

export interface Tracked {
  dispose(): void;
  /** @internal set by keep() */
  _kept: boolean;
}

const scopes: Tracked[][] = [];

/** @internal called by the Tensor constructor. */
export function track(t: Tracked): void {
  if (scopes.length > 0) scopes[scopes.length - 1].push(t);
}

function isTracked(x: unknown): x is Tracked {
  return typeof x === "object" && x !== null && "_kept" in x && typeof (x as Tracked).dispose === "function";
}

function collect(value: unknown, out: Set<Tracked>, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== "object") return;
  if (isTracked(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, depth + 1);
  }
}

/**
 * Run `fn` and free every tensor it created, except the tensors in its result
 * (a tensor, or arrays / plain objects / Maps of tensors) and kept tensors.
 */
export function tidy<R>(fn: () => R): R {
  scopes.push([]);
  let result: R | undefined;
  let ok = false;
  try {
    result = fn();
    if (result instanceof Promise) {
      throw new VaeguardError("tidy() cannot wrap an async function: tensors would be freed before it finishes");
    }
    ok = true;
    return result;
  } finally {
    const scope = scopes.pop()!;
    const keepSet = new Set<Tracked>();
    if (ok) collect(result, keepSet);
    const parent = scopes.length > 0 ? scopes[scopes.length - 1] : undefined;
    for (const t of scope) {
      if (t._kept) continue;
      if (keepSet.has(t)) {
        parent?.push(t);
      } else {
        t.dispose();
      }
    }
  }
}

/** Exempt a tensor from every enclosing tidy scope; the caller disposes it. */
export function keep<T extends Tracked>(t: T): T {
  t._kept = true;
  return t;
}

/** Dispose every tensor in a value (a tensor, or arrays / objects of tensors). */
export function dispose(value: unknown): void {
  const s = new Set<Tracked>();
  collect(value, s);
  for (const t of s) t.dispose();
}

/** Run `fn` with gradient recording off; the previous mode is restored afterwards. */
export function noGrad<R>(fn: () => R): R {
  const prev = binding.isGradEnabled();
  binding.setGradEnabled(false);
  try {
    return fn();
  } finally {
    binding.setGradEnabled(prev);
  }
}

/** Run `fn` with gradient recording on; the previous mode is restored afterwards. */
export function enableGrad<R>(fn: () => R): R {
  const prev = binding.isGradEnabled();
  binding.setGradEnabled(true);
  try {
    return fn();
  } finally {
    binding.setGradEnabled(prev);
  }
}

export function isGradEnabled(): boolean {
  return binding.isGradEnabled();
}

/** Native tensors alive right now (including ones awaiting garbage collection) and their bytes. */
export function memory(): { numTensors: number; numBytes: number } {
  const m = binding.liveTensors();
  return { numTensors: m.tensors, numBytes: m.bytes };
}

export function manualSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0) {
    throw new VaeguardError(`Expected non-negative integer for seed but received ${seed}`);
  }
  binding.manualSeed(seed);
}

export function setNumThreads(n: number): void {
  binding.setNumThreads(checkThreads(n));
}

export function getNumThreads(): number {
  return binding.getNumThreads();
}

/** Devices this build can use: always "cpu", plus "cuda" where libtorch was built with it. */
export function availableDevices(): string[] {
  const v = binding.versions();
  return v.cuda ? ["cpu", "cuda"] : ["cpu"];
}
