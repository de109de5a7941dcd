#!/usr/bin/env node
// A replay set for `vaeguard train purifier --replay` (src/train/replay.ts): Square Attack
// (gradient-free, which PGD-trained purifiers do not stop) against a purifier + classifier,
// adaptive, on a range of the training images the trainer uses (the training part of its
// validation split), one Square seed per batch of 100 (seed = the batch's first index), so
// ranges made apart, in parallel, come out as one run would make them.
// Needs the TypeScript built (npm run build:ts).
// Usage: node scripts/make-replay-set.mjs --classifier C --purifier P --out F
//          [--dataset mnist] [--eps 0.3] [--queries 1000] [--start 0] [--count 3000]
//          [--validation 5000] [--split-seed 0] [--threads 1]
import { parseArgs } from "node:util";
import { basename } from "node:path";
import { performance } from "node:perf_hooks";
import { setProcessThreads } from "../dist/src/core/concurrency.js";
import { noGrad, noGradAsync, tidy } from "../dist/src/core/engine.js";
import { splitValidation, subsetDataset, datasetSize } from "../dist/src/data/index.js";
import { RECIPES } from "../dist/src/eval/reproduce.js";
import { DefendedModel } from "../dist/src/defenses/defended-model.js";
import { PurifierDefense } from "../dist/src/defenses/purifier.js";
import { SquareAttack } from "../dist/src/attacks/square.js";
import { loadClassifierFor, loadPurifierFor } from "../dist/src/models/loaders.js";
import { makeReplaySet, saveReplaySet } from "../dist/src/train/replay.js";

const usage =
  "usage: node scripts/make-replay-set.mjs --classifier C --purifier P --out F [--dataset mnist] [--eps 0.3] [--queries 1000] [--start 0] [--count 3000] [--validation 5000] [--split-seed 0] [--threads 1]";
const BATCH = 100;

function numberOption(values, name, fallback, min, max) {
  const v = values[name] === undefined ? fallback : Number(values[name]);
  if (!Number.isFinite(v) || v < min || v > max)
    throw new Error(`--${name} must be a number in [${min}, ${max}], not ${values[name]}`);
  return v;
}

async function main() {
  const { values } = parseArgs({
    options: Object.fromEntries(
      [
        "classifier",
        "purifier",
        "out",
        "dataset",
        "eps",
        "queries",
        "start",
        "count",
        "validation",
        "split-seed",
        "threads",
      ].map((k) => [k, { type: "string" }]),
    ),
  });
  for (const k of ["classifier", "purifier", "out"]) if (!values[k]) throw new Error(`--${k} is required\n${usage}`);
  const dataset = values.dataset ?? "mnist";
  const recipe = RECIPES[dataset];
  if (!recipe) throw new Error(`--dataset must be one of ${Object.keys(RECIPES).join(", ")}, not ${dataset}`);
  const eps = numberOption(values, "eps", 0.3, 0, 1);
  const queries = numberOption(values, "queries", 1000, 1, 1e6);
  const start = numberOption(values, "start", 0, 0, 1e9);
  const count = numberOption(values, "count", 3000, 1, 1e9);
  const validation = numberOption(values, "validation", 5000, 1, 1e9);
  const splitSeed = numberOption(values, "split-seed", 0, 0, 2 ** 31);
  setProcessThreads(numberOption(values, "threads", 1, 1, 64));

  const probe = recipe.makeClassifier();
  const shape = [...probe.inputShape];
  probe.dispose();
  const classifier = loadClassifierFor(values.classifier, { inputShape: shape, numClasses: 10, dataset });
  const purifier = loadPurifierFor(values.purifier, shape, dataset);
  // Loaded models start in training mode, where the classifier's dropout would make the fooled count random.
  classifier.eval();
  purifier.eval();
  const model = new DefendedModel(new PurifierDefense(purifier, { deterministic: true }), classifier, {
    view: "adaptive",
  });
  const full = await recipe.load("train");
  const { train } = splitValidation(full, validation, splitSeed);
  if (start + count > datasetSize(train))
    throw new Error(`--start + --count is past the ${datasetSize(train)} training images`);
  const images = subsetDataset(
    train,
    Array.from({ length: count }, (_, i) => start + i),
  );
  const t0 = performance.now();
  const set = await makeReplaySet(images, (first) => new SquareAttack(model, { eps, queries, seed: start + first }), {
    batchSize: BATCH,
    about: {
      attack: `square:queries=${queries}`,
      eps: String(eps),
      dataset,
      rows: `training part of a validation split of ${validation} (seed ${splitSeed}), rows ${start}..${start + count - 1}`,
      classifier: basename(values.classifier),
      purifier: `${basename(values.purifier)} (deterministic)`,
    },
    isFooled: async (x, y) => {
      const logits = await noGradAsync(() => model.forward(x));
      return noGrad(() => tidy(() => logits.argmax(1).ne(y)));
    },
    onBatch: (done, fooled) =>
      console.log(`${done}/${count} images, ${fooled} fooled (${((performance.now() - t0) / 1000).toFixed(0)} s)`),
  });
  saveReplaySet(values.out, set);
  console.log(
    `${values.out}: ${count} images, ${set.about.fooled} fooled, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
}

main().catch((e) => {
  console.error(`make-replay-set: ${e.message}`);
  process.exit(e.message?.includes("usage") || e.message?.startsWith("--") ? 2 : 1);
});
