/** Assertions shared by the engine tests. */
import assert from "node:assert/strict";
import { memory } from "../../src/core/engine.js";
import { Tensor } from "../../src/core/tensor.js";
import type { TensorSpec } from "./golden.js";

export interface Tolerance {
  atol?: number;
  rtol?: number;
}

/** |actual - expected| <= atol + rtol * |expected| everywhere, with a message naming the first bad index. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance = {},
  what = "values",
): void {
  const atol = tol.atol ?? 1e-5;
  const rtol = tol.rtol ?? 1e-5;
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values but ${expected.length} expected`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const ok = Number.isNaN(e) ? Number.isNaN(a) : Math.abs(a - e) <= atol + rtol * Math.abs(e);
    if (!ok) {
      assert.fail(`${what}: index ${i} is ${a} but ${e} was expected (atol ${atol}, rtol ${rtol})`);
    }
  }
}

/** Shape, dtype and values of a tensor against a golden tensor. */
export function assertMatches(actual: Tensor, expected: TensorSpec, tol: Tolerance = {}, what = "tensor"): void {
  assert.ok(actual instanceof Tensor, `${what}: not a Tensor`);
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  assertClose(actual.toArray(), expected.data, tol, what);
}

/** The tensor's values as plain numbers, then dispose it. */
export function take(t: Tensor): number[] {
  const v = t.toArray();
  t.dispose();
  return v;
}

/**
 * Wrap a test body so that it also proves no tensor leaked: the live-tensor
 * counter must be back at its start value when the body returns.
 */
export function leakFree<A extends unknown[]>(fn: (...args: A) => void | Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const before = memory().numTensors;
    await fn(...args);
    const after = memory().numTensors;
    assert.equal(after, before, `${after - before} tensor(s) leaked`);
  };
}

/** `fn` throws an instance of `cls` whose message matches `message`. */
export function assertThrowsWith(
  fn: () => unknown,
  cls: new (...args: never[]) => Error,
  message: RegExp | string,
): Error {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `expected ${cls.name} but nothing was thrown`);
  assert.ok(
    caught instanceof cls,
    `expected ${cls.name} but got ${(caught as Error)?.constructor?.name}: ${(caught as Error)?.message}`,
  );
  const err = caught as Error;
  if (typeof message === "string") assert.equal(err.message, message);
  else assert.match(err.message, message);
  return err;
}
