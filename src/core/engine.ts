/**
 * Tensor lifetime and grad mode.
 *
 * Every tensor created while a `tidy` or `tidyAsync` scope is open belongs to
 * the innermost one and is disposed when that scope closes, unless it is
 * returned from the scope (then it moves to the enclosing scope) or marked
 * with `keep`. Outside any scope a tensor lives until `dispose()` or, as a
 * last resort, until the garbage collector finalises its native handle.
 *
 * `tidyAsync` scopes survive `await`: the open scopes are held per
 * asynchronous context (AsyncLocalStorage), so two scopes running
 * concurrently (Promise.all, two requests of a service) never collect each
 * other's tensors. Grad mode is libtorch's single per-thread flag:
 * `noGradAsync` / `enableGradAsync` hold it until their promise settles, so
 * work that awaits under different grad modes must not interleave.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { binding } from "../binding.js";
import { VaeguardError } from "./errors.js";
import { checkThreads } from "./threads.js";

export interface Tracked {
  dispose(): void;
  /** @internal set by keep() */
  _kept: boolean;
}

/** The open scopes of one asynchronous context, innermost last. */
type ScopeStack = Tracked[][];

/** Scopes outside any tidyAsync; a tidyAsync gives its callback a stack of its own. */
const rootStack: ScopeStack = [];
const asyncStacks = new AsyncLocalStorage<ScopeStack>();

function currentStack(): ScopeStack {
  return asyncStacks.getStore() ?? rootStack;
}

/** @internal called by the Tensor constructor. */
export function track(t: Tracked): void {
  const stack = currentStack();
  if (stack.length > 0) stack[stack.length - 1].push(t);
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
 * Close a scope: dispose its tensors except kept ones and those in `result`,
 * which move to `parent` (the enclosing scope, if any).
 */
function closeScope(scope: Tracked[], result: unknown, ok: boolean, parent: Tracked[] | undefined): void {
  const keepSet = new Set<Tracked>();
  if (ok) collect(result, keepSet);
  for (const t of scope) {
    if (t._kept) continue;
    if (keepSet.has(t)) {
      parent?.push(t);
    } else {
      t.dispose();
    }
  }
}

/**
 * Run `fn` and free every tensor it created, except the tensors in its result
 * (a tensor, or arrays / plain objects / Maps of tensors) and kept tensors.
 */
export function tidy<R>(fn: () => R): R {
  const stack = currentStack();
  const scope: Tracked[] = [];
  stack.push(scope);
  let result: R | undefined;
  let ok = false;
  try {
    result = fn();
    if (result instanceof Promise) {
      throw new VaeguardError(
        "tidy() cannot wrap an async function: tensors would be freed before it finishes; use tidyAsync()",
      );
    }
    ok = true;
    return result;
  } finally {
    stack.pop();
    closeScope(scope, result, ok, stack.at(-1));
  }
}

/**
 * `tidy` for an async function: the scope stays open across every `await` in
 * `fn` and closes when its promise settles (also on rejection), freeing every
 * tensor `fn` created except those in its result and kept ones.
 */
export async function tidyAsync<R>(fn: () => Promise<R>): Promise<R> {
  const outer = currentStack();
  const scope: Tracked[] = [];
  // A stack of its own, so concurrent scopes do not see each other's scope on top.
  const stack: ScopeStack = [...outer, scope];
  let result: R | undefined;
  let ok = false;
  try {
    result = await asyncStacks.run(stack, fn);
    ok = true;
    return result;
  } finally {
    closeScope(scope, result, ok, outer.at(-1));
  }
}

/**
 * Replace `initial` by `step(current, i)` `count` times, each step in its own
 * tidyAsync scope, and return the last value. Each value is disposed once the
 * next one exists (tensors the next value still holds survive), so an
 * iterative attack holds one iterate at a time. The tensors of `initial`
 * belong to the caller and are never disposed here.
 */
export async function iterateAsync<T>(
  initial: T,
  count: number,
  step: (current: T, index: number) => Promise<T>,
): Promise<T> {
  const callers = new Set<Tracked>();
  collect(initial, callers);
  const release = (value: T, next?: T) => {
    const survivors = new Set<Tracked>(callers);
    collect(next, survivors);
    const old = new Set<Tracked>();
    collect(value, old);
    for (const t of old) if (!survivors.has(t)) t.dispose();
  };
  let current = initial;
  for (let i = 0; i < count; i++) {
    const previous = current;
    try {
      current = await tidyAsync(() => step(previous, i));
    } catch (e) {
      release(previous);
      throw e;
    }
    release(previous, current);
  }
  return current;
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

function withGradMode<R>(on: boolean, fn: () => R, helper: string): R {
  const prev = binding.isGradEnabled();
  binding.setGradEnabled(on);
  try {
    const result = fn();
    if (result instanceof Promise) {
      // The mode would be restored before the async work runs: refuse rather than record the wrong graph.
      void result.catch(() => undefined);
      throw new VaeguardError(`${helper}() cannot wrap an async function: use ${helper}Async()`);
    }
    return result;
  } finally {
    binding.setGradEnabled(prev);
  }
}

async function withGradModeAsync<R>(on: boolean, fn: () => R | Promise<R>): Promise<R> {
  const prev = binding.isGradEnabled();
  binding.setGradEnabled(on);
  try {
    return await fn();
  } finally {
    binding.setGradEnabled(prev);
  }
}

/** Run `fn` with gradient recording off; the previous mode is restored afterwards. */
export function noGrad<R>(fn: () => R): R {
  return withGradMode(false, fn, "noGrad");
}

/** Run `fn` with gradient recording on; the previous mode is restored afterwards. */
export function enableGrad<R>(fn: () => R): R {
  return withGradMode(true, fn, "enableGrad");
}

/** noGrad for an async function: recording stays off until its promise settles. */
export function noGradAsync<R>(fn: () => R | Promise<R>): Promise<R> {
  return withGradModeAsync(false, fn);
}

/** enableGrad for an async function: recording stays on until its promise settles. */
export function enableGradAsync<R>(fn: () => R | Promise<R>): Promise<R> {
  return withGradModeAsync(true, fn);
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

/**
 * Whether conv2d runs in channels-last memory (default on; VAEGUARD_CHANNELS_LAST=0 turns it off).
 * Only speed depends on it: outputs agree with NCHW within 1e-5 (test/core/channels-last.test.ts).
 */
export function setChannelsLast(on: boolean): void {
  binding.setChannelsLast(on);
}

export function getChannelsLast(): boolean {
  return binding.getChannelsLast();
}

/**
 * Whether 2x2, stride-2 max pooling of float CPU tensors runs in vaeguard's own kernel (default on;
 * VAEGUARD_FAST_MAXPOOL=0 turns it off): libtorch's values and gradients exactly, several times faster
 * (native/src/maxpool2x2.cc). Off sends every max pooling to libtorch, as test/core/maxpool.test.ts does
 * to compare the two.
 */
export function setFastMaxPool(on: boolean): void {
  binding.setFastMaxPool(on);
}

export function getFastMaxPool(): boolean {
  return binding.getFastMaxPool();
}

/** Devices this build can use: always "cpu", plus "cuda" where libtorch was built with it. */
export function availableDevices(): string[] {
  const v = binding.versions();
  return v.cuda ? ["cpu", "cuda"] : ["cpu"];
}
