/**
 * Put a VAE in front of your own classifier and measure it under FGSM, in a
 * few lines. Any object with forward(x) -> logits works as the classifier;
 * here it is the paper's MNIST CNN, trained briefly so the example runs fast.
 *
 *   npx tsc -p tsconfig.json && node dist/examples/defend-your-classifier.js
 */
import {
  loadMnist,
  takeFirst,
  MnistCnn,
  ConvVae,
  VAE_PRESETS,
  trainClassifier,
  trainVae,
  createAttack,
  createDefense,
  sweep,
} from "vaeguard";

export async function main(trainImages = 5000, testImages = 500, dir = "runs/example") {
  const train = takeFirst(loadMnist({ split: "train" }), trainImages);
  const test = takeFirst(loadMnist({ split: "test" }), testImages);
  const common = { train, epochs: 1, batchSize: 64, lr: 1e-3, seed: 0, quiet: true, log: () => {} };

  // Your classifier (here: trained for one epoch) and a VAE trained on clean images only.
  const { model: classifier } = await trainClassifier({
    ...common,
    makeModel: () => new MnistCnn(),
    checkpoint: `${dir}/classifier.safetensors`,
  });
  const { model: vae } = await trainVae({
    ...common,
    epochs: 3,
    makeModel: () => new ConvVae(VAE_PRESETS.mnist),
    checkpoint: `${dir}/vae.safetensors`,
    loss: { beta: 0.01, reconstruction: "bce" },
  });

  // FGSM at two strengths, against no defense and against the VAE defense.
  const { rows } = await sweep({
    classifier,
    data: test,
    attacks: [{ name: "FGSM", make: (model, eps) => createAttack("fgsm", model, { eps }) }],
    epsilons: [0, 0.1],
    defenses: [createDefense("none"), createDefense("vae", { vae })],
    mode: "gray-box",
    batchSize: 250,
    passes: 1,
    quiet: true,
    log: () => {},
  });
  for (const r of rows) console.log(`eps ${r.epsilon}: rel-L2 ${r.relL2.toFixed(3)}`, r.accuracy);
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
