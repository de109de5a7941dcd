/**
 * Adaptive PGD with EOT through the MNIST VAE defense + MNIST CNN (issue 14,
 * point 3): images/s of a whole attack (random start, `steps` L-inf steps of
 * eps 0.1, EOT 10 per gradient) with vaeguard's batched EOT, and, for
 * reference, with one pass per EOT sample (eotBatchValues 0, the computation
 * before batching). The PyTorch side (torch_eot.py) is the same attack
 * written as torchattacks' EOTPGD does it: one forward/backward per sample.
 * Random weights on both sides (speed does not depend on them).
 */
import { rand, randint } from "../src/core/tensor.js";
import { manualSeed } from "../src/core/engine.js";
import { MnistCnn } from "../src/models/classifiers.js";
import { ConvVae, VAE_PRESETS } from "../src/models/vae.js";
import { VaeDefense } from "../src/defenses/vae.js";
import { DefendedModel } from "../src/defenses/defended-model.js";
import { PGD } from "../src/attacks/pgd.js";
import { setEotBatchValues } from "../src/attacks/gradient.js";

export const EOT_SAMPLES = 10;
export const EOT_STEPS = 5;

/** Attacks/s times the batch, timed over at least `seconds` and at least 2 attacks, after one warm-up attack. */
async function attacksPerSecond(run: () => Promise<void>, seconds: number): Promise<number> {
  await run();
  let n = 0;
  const t0 = performance.now();
  for (;;) {
    await run();
    n++;
    const el = (performance.now() - t0) / 1000;
    if (el >= seconds && n >= 2) return n / el;
  }
}

export async function benchEot(batches: number[], seconds: number): Promise<Record<string, number>> {
  manualSeed(0);
  const cnn = new MnistCnn();
  const vae = new ConvVae(VAE_PRESETS.mnist);
  cnn.eval();
  vae.eval();
  const model = new DefendedModel(new VaeDefense(vae), cnn);
  const pgd = new PGD(model, { eps: 0.1, steps: EOT_STEPS, eotSamples: EOT_SAMPLES });
  const out: Record<string, number> = {};
  for (const batch of batches) {
    const x = rand([batch, 1, 28, 28]);
    const y = randint(0, 10, [batch]);
    const run = async () => (await pgd.generate(x, y)).dispose();
    out[`eot-pgd.b${batch}`] = batch * (await attacksPerSecond(run, seconds));
    const previous = setEotBatchValues(0);
    try {
      out[`eot-pgd.b${batch}.sequential`] = batch * (await attacksPerSecond(run, seconds));
    } finally {
      setEotBatchValues(previous);
    }
    x.dispose();
    y.dispose();
  }
  cnn.dispose();
  vae.dispose();
  return out;
}
