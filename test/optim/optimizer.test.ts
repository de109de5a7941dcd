/**
 * SGD (plain, momentum, dampening, Nesterov, weight decay) and Adam against
 * torch.optim: parameters and losses over 5 steps on a fixed least-squares
 * problem in float64 (golden values from test/golden/make_golden.py).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { memory, tidy } from "../../src/core/engine.js";
import { ArgumentError, VaeguardError } from "../../src/core/errors.js";
import { Tensor, tensor } from "../../src/core/tensor.js";
import * as F from "../../src/nn/functional.js";
import { Adam, Optimizer, SGD } from "../../src/optim/optimizer.js";
import { assertClose, assertThrowsWith, leakFree } from "../helpers/assert.js";
import { fromSpec, readGolden, type TensorSpec } from "../helpers/golden.js";

interface OptimGolden {
  cases: {
    problem: { x: TensorSpec; y: TensorSpec; w0: TensorSpec; b0: TensorSpec };
    runs: Record<string, { losses: number[]; w: TensorSpec; b: TensorSpec }>;
  };
}

const golden = readGolden<OptimGolden>("optim.json").cases;

const configs: Record<string, (p: Tensor[]) => Optimizer> = {
  sgd: (p) => new SGD(p, { lr: 0.1 }),
  sgd_momentum: (p) => new SGD(p, { lr: 0.05, momentum: 0.9 }),
  sgd_momentum_dampening: (p) => new SGD(p, { lr: 0.05, momentum: 0.9, dampening: 0.3 }),
  sgd_nesterov: (p) => new SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true }),
  sgd_weight_decay: (p) => new SGD(p, { lr: 0.1, weightDecay: 0.05 }),
  sgd_momentum_weight_decay: (p) => new SGD(p, { lr: 0.05, momentum: 0.8, weightDecay: 0.1 }),
  adam: (p) => new Adam(p, { lr: 0.1 }),
  adam_betas_eps: (p) => new Adam(p, { lr: 0.05, betas: [0.8, 0.99], eps: 1e-6 }),
  adam_weight_decay: (p) => new Adam(p, { lr: 0.1, weightDecay: 0.1 }),
};

/** Five steps on the golden problem; returns the losses seen before each step. */
function run(make: (p: Tensor[]) => Optimizer, w: Tensor, b: Tensor): number[] {
  const { x, y } = golden.problem;
  const opt = make([w, b]);
  const losses: number[] = [];
  tidy(() => {
    const xs = fromSpec(x);
    const ys = fromSpec(y);
    for (let i = 0; i < 5; i++) {
      opt.zeroGrad();
      tidy(() => {
        const loss = F.mseLoss(xs.matmul(w).add(b), ys);
        losses.push(loss.item());
        loss.backward();
      });
      opt.step();
    }
  });
  opt.zeroGrad();
  opt.dispose();
  return losses;
}

describe("optimizers match torch.optim after 5 steps", () => {
  test("every golden run has a configuration here", () => {
    assert.deepEqual(Object.keys(configs).sort(), Object.keys(golden.runs).sort());
  });
  for (const [name, make] of Object.entries(configs)) {
    test(
      name,
      leakFree(() => {
        const expected = golden.runs[name];
        const w = fromSpec(golden.problem.w0).requiresGrad_();
        const b = fromSpec(golden.problem.b0).requiresGrad_();
        const losses = run(make, w, b);
        assertClose(losses, expected.losses, { atol: 1e-12, rtol: 1e-10 }, `${name} losses`);
        assertClose(w.toArray(), expected.w.data, { atol: 1e-12, rtol: 1e-10 }, `${name} w`);
        assertClose(b.toArray(), expected.b.data, { atol: 1e-12, rtol: 1e-10 }, `${name} b`);
        // The parameters really moved.
        assert.ok(Math.abs(w.toArray()[0] - golden.problem.w0.data[0]) > 1e-3);
        w.dispose();
        b.dispose();
      }),
    );
  }
});

describe("optimizer behaviour", () => {
  test(
    "zeroGrad clears gradients; parameters without a gradient are skipped; state is freed by dispose",
    leakFree(() => {
      const a = tensor([1, 2], [2], { dtype: "float64" }).requiresGrad_();
      const unused = tensor([5], [1], { dtype: "float64" }).requiresGrad_();
      const start = memory().numTensors;
      const opt = new Adam([a, unused], { lr: 0.1 });
      tidy(() => a.mul(a).sum().backward());
      opt.step();
      assert.deepEqual(unused.toArray(), [5]);
      assert.notDeepEqual(a.toArray(), [1, 2]);
      // Adam's state (two moments for a) plus a's .grad.
      assert.equal(memory().numTensors, start + 2);
      opt.zeroGrad();
      assert.equal(a.grad, undefined);
      opt.step();
      opt.dispose();
      assert.equal(memory().numTensors, start);
      a.dispose();
      unused.dispose();
    }),
  );

  test(
    "the learning rate can be changed between steps",
    leakFree(() => {
      const p = tensor([1], [1], { dtype: "float64" }).requiresGrad_();
      const opt = new SGD([p], { lr: 0.5 });
      assert.equal(opt.lr, 0.5);
      opt.lr = 0.25;
      tidy(() => p.mul(2).sum().backward());
      opt.step();
      assert.deepEqual(p.toArray(), [0.5]);
      assertThrowsWith(() => (opt.lr = -1), ArgumentError, "Expected number of at least 0 for lr but received -1");
      opt.zeroGrad();
      opt.dispose();
      p.dispose();
    }),
  );

  test(
    "invalid options are rejected with the message template",
    leakFree(() => {
      const p = tensor([1]).requiresGrad_();
      assertThrowsWith(
        () => new SGD([p], { lr: -0.1 }),
        ArgumentError,
        "Expected number of at least 0 for lr but received -0.1",
      );
      assertThrowsWith(
        () => new SGD([p], { lr: 0.1, nesterov: true }),
        VaeguardError,
        "Nesterov momentum needs momentum > 0 and dampening 0",
      );
      assertThrowsWith(
        () => new Adam([p], { betas: [0.9, 1.5] }),
        ArgumentError,
        "Expected number between 0 and 1 for betas[1] but received 1.5",
      );
      assertThrowsWith(() => new Adam([]), VaeguardError, "Optimizer needs a non-empty list of parameters");
      p.dispose();
    }),
  );
});
