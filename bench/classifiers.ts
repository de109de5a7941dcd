/** Images/s of the Table 1 classifiers: Adam training step, inference, input gradient (batch 128). */
import { rand, randint, grad, type Tensor } from "../src/core/tensor.js";
import { noGrad, tidy } from "../src/core/engine.js";
import { crossEntropy } from "../src/nn/functional.js";
import { Adam } from "../src/optim/optimizer.js";
import type { Module } from "../src/nn/module.js";
import type { ImageClassifier } from "../src/models/classifiers.js";

export function timeit(fn: () => void, seconds: number): number {
  fn(); // warm-up
  let n = 0;
  const t0 = performance.now();
  for (;;) {
    fn();
    n++;
    const el = (performance.now() - t0) / 1000;
    if (el >= seconds && n >= 3) return n / el;
  }
}

export function benchClassifier(
  model: Module & ImageClassifier,
  batch: number,
  seconds: number,
): Record<string, number> {
  const x = rand([batch, ...model.inputShape]);
  const y = randint(0, model.numClasses, [batch]);
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const trainStep = () =>
    tidy(() => {
      model.train();
      opt.zeroGrad();
      const loss = crossEntropy(model.forward(x), y);
      loss.backward();
      opt.step();
    });
  const infer = () =>
    tidy(() => {
      model.eval();
      noGrad(() => model.forward(x).argmax(1));
    });
  const inputGrad = () =>
    tidy((): Tensor => {
      model.eval();
      const xa = x.clone().requiresGrad_();
      const loss = crossEntropy(model.forward(xa), y);
      return grad(loss, [xa])[0];
    }).dispose();
  const out = {
    train: batch * timeit(trainStep, seconds),
    infer: batch * timeit(infer, seconds),
    inputGrad: batch * timeit(inputGrad, seconds),
  };
  opt.dispose();
  x.dispose();
  y.dispose();
  return out;
}

/** Images/s of a VAE's Adam training step (reconstruction + beta * KL) and of a deterministic reconstruction. */
export function benchVae(
  vae: import("../src/models/vae.js").ConvVae,
  batch: number,
  seconds: number,
): Record<string, number> {
  const x = rand([batch, ...vae.inputShape]);
  const opt = new Adam(vae.parameters(), { lr: 1e-3 });
  const trainStep = () =>
    tidy(() => {
      opt.zeroGrad();
      vae.loss(x, { beta: 0.01, reconstruction: "bce" }).loss.backward();
      opt.step();
    });
  const reconstruct = () => tidy(() => noGrad(() => vae.reconstruct(x, { deterministic: true })));
  const out = { train: batch * timeit(trainStep, seconds), reconstruct: batch * timeit(reconstruct, seconds) };
  opt.dispose();
  x.dispose();
  return out;
}
