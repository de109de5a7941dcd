/** Small models and data for the attack tests: hand-set linear models and a quickly trained MLP. */
import assert from "node:assert/strict";
import { isGradEnabled, manualSeed, noGrad, noGradAsync, tidy } from "../../src/core/engine.js";
import { Tensor, randint, randn, rand, tensor } from "../../src/core/tensor.js";
import * as F from "../../src/nn/functional.js";
import { Module } from "../../src/nn/module.js";
import { Flatten, Linear, ReLU, Sequential } from "../../src/nn/layers.js";
import { Adam } from "../../src/optim/index.js";
import type { AttackableModel } from "../../src/attacks/types.js";

/** A linear classifier z = W flatten(x) + b with the given weights. */
export class LinearModel extends Module {
  readonly fc: Linear;
  constructor(weight: number[][], bias: number[]) {
    super();
    this.fc = this.registerModule("fc", new Linear(weight[0].length, weight.length));
    noGrad(() =>
      tidy(() => {
        this.fc.weight.copy_(tensor(weight));
        this.fc.bias!.copy_(tensor(bias));
      }),
    );
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.fc.forward(x.flatten(1)));
  }
}

/** Wrap a model to record, at each forward, its train mode and whether grad mode was on. */
export class Recorder implements AttackableModel {
  readonly modes: boolean[] = [];
  readonly gradModes: boolean[] = [];
  calls = 0;
  constructor(
    readonly inner: AttackableModel & { forward(x: Tensor): Tensor | Promise<Tensor> },
    readonly options: { async?: boolean; failAfter?: number; randomized?: boolean } = {},
  ) {}
  get training(): boolean {
    return this.inner.training;
  }
  get randomized(): boolean {
    return this.options.randomized ?? false;
  }
  train(on = true): unknown {
    return this.inner.train(on);
  }
  async forwardAsync(x: Tensor): Promise<Tensor> {
    await new Promise((resolve) => setTimeout(resolve, 0));
    return this.forwardSync(x);
  }
  forwardSync(x: Tensor): Tensor {
    this.calls++;
    this.modes.push(this.inner.training);
    this.gradModes.push(isGradEnabled());
    if (this.options.failAfter !== undefined && this.calls > this.options.failAfter) {
      throw new Error("model failure for the test");
    }
    return this.inner.forward(x) as Tensor;
  }
  forward(x: Tensor): Tensor | Promise<Tensor> {
    return this.options.async ? this.forwardAsync(x) : this.forwardSync(x);
  }
}

/** A model whose input is jittered by Gaussian noise on every forward: its gradient is random. */
export class NoisyModel implements AttackableModel {
  readonly randomized = true;
  constructor(
    readonly inner: Module,
    readonly sigma: number,
  ) {}
  get training(): boolean {
    return this.inner.training;
  }
  train(on = true): unknown {
    return this.inner.train(on);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.inner.forward(x.add(randn(x.shape).mul(this.sigma))));
  }
}

export interface Synthetic {
  x: Tensor;
  y: Tensor;
  prototypes: Tensor;
  dispose(): void;
}

/**
 * A separable 4-class problem on 1x8x8 images: each class is a random
 * prototype in [0.5 - spread/2, 0.5 + spread/2] plus Gaussian noise. The
 * defaults make a task a small MLP learns perfectly but that an L-inf budget
 * of about 0.05 breaks, so attacks of different strength can be told apart.
 */
export function synthetic(n: number, seed: number, classes = 4, spread = 0.2, noise = 0.03): Synthetic {
  manualSeed(seed);
  const prototypes = tidy(() =>
    rand([classes, 1, 8, 8])
      .mul(spread)
      .add(0.5 - spread / 2),
  );
  const [x, y] = tidy(() => {
    const labels = randint(0, classes, [n]);
    const base = prototypes.indexSelect(0, labels);
    return [base.add(randn([n, 1, 8, 8]).mul(noise)).clamp(0, 1), labels];
  });
  return {
    x,
    y,
    prototypes,
    dispose() {
      x.dispose();
      y.dispose();
      prototypes.dispose();
    },
  };
}

/** An MLP 64-32-4 trained for a few hundred Adam steps on synthetic data; accuracy near 1. */
export function trainedMlp(data: Synthetic, steps = 150): Sequential {
  const model = new Sequential(new Flatten(), new Linear(64, 32), new ReLU(), new Linear(32, 4));
  const opt = new Adam(model.parameters(), { lr: 0.01 });
  model.train(true);
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    tidy(() => {
      const loss = F.crossEntropy(model.forward(data.x), data.y);
      loss.backward();
    });
    opt.step();
  }
  opt.zeroGrad();
  opt.dispose();
  model.eval();
  return model;
}

/** Fraction of x classified as y (model in its current mode, no grad). */
export async function accuracy(model: AttackableModel, x: Tensor, y: Tensor): Promise<number> {
  const logits = await noGradAsync(() => model.forward(x));
  const acc = noGrad(() => tidy(() => logits.argmax(1).eq(y).float().mean().item()));
  logits.dispose();
  return acc;
}

/** Largest |a - b| over all elements. */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  return noGrad(() => tidy(() => a.sub(b).abs().max().item()));
}

/** Per-image L2 norms of a - b. */
export function l2Norms(a: Tensor, b: Tensor): number[] {
  return noGrad(() => tidy(() => a.sub(b).flatten(1).norm(2, 1).toArray()));
}

/** Assert x_adv is in [0, 1] and within eps of x in L-inf. */
export function assertLinfBudget(xAdv: Tensor, x: Tensor, eps: number): void {
  assert.deepEqual(xAdv.shape, x.shape);
  const [lo, hi] = noGrad(() => tidy(() => [xAdv.min().item(), xAdv.max().item()]));
  assert.ok(lo >= 0 && hi <= 1, `x_adv leaves [0, 1]: [${lo}, ${hi}]`);
  const d = maxAbsDiff(xAdv, x);
  assert.ok(d <= eps + 1e-6, `||x_adv - x||_inf = ${d} exceeds eps = ${eps}`);
}

/** Assert x_adv is in [0, 1] and within eps of x in L2, per image. */
export function assertL2Budget(xAdv: Tensor, x: Tensor, eps: number): void {
  assert.deepEqual(xAdv.shape, x.shape);
  const [lo, hi] = noGrad(() => tidy(() => [xAdv.min().item(), xAdv.max().item()]));
  assert.ok(lo >= 0 && hi <= 1, `x_adv leaves [0, 1]: [${lo}, ${hi}]`);
  for (const [i, n] of l2Norms(xAdv, x).entries()) {
    assert.ok(n <= eps, `image ${i}: ||x_adv - x||_2 = ${n} exceeds eps = ${eps}`);
  }
}

/** The values of a tensor, then dispose it. */
export function take(t: Tensor): number[] {
  const v = t.toArray();
  t.dispose();
  return v;
}
