/**
 * Gradient checks against central finite differences in float64, through both
 * the functional grad() and backward()/.grad.
 */
import assert from "node:assert/strict";
import { noGrad, tidy } from "../../src/core/engine.js";
import { Tensor, grad, tensor } from "../../src/core/tensor.js";
import { assertClose, type Tolerance } from "./assert.js";

/** ∂f/∂inputs[i] by central differences; f must return a one-element tensor. */
export function numericGrad(f: (xs: Tensor[]) => Tensor, inputs: Tensor[], eps = 1e-6): number[][] {
  const values = inputs.map((x) => Float64Array.from(x.toArray()));
  const shapes = inputs.map((x) => x.shape);
  const evaluate = (vals: Float64Array[]): number =>
    noGrad(() => tidy(() => f(vals.map((v, i) => tensor(v, shapes[i]))).item()));
  return values.map((v) => {
    const out = new Array<number>(v.length);
    for (let j = 0; j < v.length; j++) {
      const orig = v[j];
      v[j] = orig + eps;
      const plus = evaluate(values);
      v[j] = orig - eps;
      const minus = evaluate(values);
      v[j] = orig;
      out[j] = (plus - minus) / (2 * eps);
    }
    return out;
  });
}

/**
 * Check the gradients of the scalar f(inputs) with respect to every input
 * (float64 leaves that require grad): grad() must match finite differences and
 * leave every .grad untouched; backward() must put the same values in .grad.
 */
export function gradCheck(
  f: (xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  tol: Tolerance = { atol: 1e-6, rtol: 1e-5 },
  what = "gradient",
): void {
  for (const [i, x] of inputs.entries()) {
    assert.equal(x.dtype, "float64", `${what}: input ${i} must be float64 for a finite-difference check`);
    assert.ok(x.requiresGrad, `${what}: input ${i} must require grad`);
    assert.equal(x.grad, undefined, `${what}: input ${i} already has a .grad`);
  }
  const numeric = numericGrad(f, inputs);
  const viaGrad = tidy(() => grad(f(inputs), inputs).map((g) => g.toArray()));
  for (const [i, x] of inputs.entries()) {
    assert.equal(x.grad, undefined, `${what}: grad() touched .grad of input ${i}`);
    assertClose(viaGrad[i], numeric[i], tol, `${what} of input ${i} via grad()`);
  }
  tidy(() => f(inputs).backward());
  for (const [i, x] of inputs.entries()) {
    const g = x.grad;
    assert.ok(g, `${what}: backward() left no .grad on input ${i}`);
    assert.deepEqual(g.shape, x.shape, `${what}: .grad shape of input ${i}`);
    assertClose(g.toArray(), numeric[i], tol, `${what} of input ${i} via backward()`);
    g.dispose();
    x.grad = undefined;
  }
}
