import { test } from "node:test";
import assert from "node:assert/strict";
import { accuracyStandardError, wilsonInterval } from "../../src/eval/interval.js";

const close = (a: number, b: number, tol = 1e-4) => assert.ok(Math.abs(a - b) <= tol, `${a} is not ${b}`);

test("the Wilson interval matches its closed form, and stays in [0, 1] at the ends", () => {
  // Reference values from the formula evaluated independently in Python (float64); 50/100 gives the
  // textbook [0.404, 0.596].
  const [lo, hi] = wilsonInterval(50, 100);
  close(lo, 0.40383);
  close(hi, 0.59617);
  const [z0, z1] = wilsonInterval(0, 10);
  assert.equal(z0, 0);
  close(z1, 0.27753);
  const [o0, o1] = wilsonInterval(10, 10);
  close(o0, 0.72247);
  assert.equal(o1, 1);
  const [a, b] = wilsonInterval(95, 100);
  close(a, 0.88825);
  close(b, 0.97846);
  assert.deepEqual(wilsonInterval(0, 0), [0, 1]);
});

test("the Wilson interval narrows with more images and rejects impossible counts", () => {
  const w = (n: number) => {
    const [lo, hi] = wilsonInterval(0.9 * n, n);
    return hi - lo;
  };
  assert.ok(w(1000) < w(100) && w(100) < w(10));
  assert.throws(() => wilsonInterval(11, 10), /Expected number between 0 and 10 for successes but received 11/);
  assert.throws(() => wilsonInterval(1, 2.5), /Expected integer of at least 0 for n but received 2.5/);
  close(accuracyStandardError(0.5, 100), 0.05);
  close(accuracyStandardError(1, 100), 0.005);
});
