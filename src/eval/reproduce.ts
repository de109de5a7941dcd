/**
 * The paper's experiment on a small-image data set (MNIST, Fashion-MNIST,
 * CIFAR-10): train the classifier and the VAE when no checkpoint exists
 * (reuse or resume them otherwise), sweep FGSM and I-FGSM over an epsilon
 * grid, and write a report folder (Markdown, JSON, CSV, plots, picture grid).
 */
import { dirname, join } from "node:path";
import { rmSync, statSync } from "node:fs";
import { dispose, manualSeed } from "../core/engine.js";
import { splitValidation, takeFirst, datasetSize } from "../data/index.js";
import { ConvVae, VAE_PRESETS } from "../models/vae.js";
import { accuracy, trainClassifier, trainVae } from "../train/trainer.js";
import { createAttack } from "../attacks/index.js";
import { createDefense } from "../defenses/index.js";
import { NoDefense } from "../defenses/none.js";
import { writeReportBundle, reportSoftwareVersions, type BundlePaths } from "../report/bundle.js";
import { sweepGridCells } from "../report/grid.js";
import type { AttackMode, ResultRow } from "./results.js";
import { softwareVersions } from "../core/versions.js";
import type { ProgressFactory } from "../core/progress.js";
import { sweep, type AttackSpec } from "./sweep.js";
import { RECIPES, type SmallDataset } from "./recipes.js";

// Their home is recipes.ts; kept here for the importers of reproduce.js.
export { RECIPES, type SmallDataset };

export interface ReproduceOptions {
  dataset: SmallDataset;
  quick: boolean;
  outDir: string;
  checkpointDir: string;
  dataDir?: string;
  seed: number;
  /** Test images to evaluate (default: all; quick: 1000). */
  samples?: number;
  /** Training images (default: all but 5,000 for validation; quick: 10,000). */
  trainSamples?: number;
  epsilons?: number[];
  defenses?: string[];
  attacks?: ("fgsm" | "ifgsm")[];
  mode?: AttackMode;
  epochsClassifier?: number;
  epochsVae?: number;
  beta: number;
  reconstruction: "bce" | "mse";
  batchSize: number;
  evalBatchSize: number;
  passes: number;
  restart: boolean;
  command: string;
  quiet?: boolean;
  /** Progress of training and of each sweep row (default: nothing). */
  progress?: ProgressFactory;
  log?: (line: string) => void;
}

const ATTACKS: Record<"fgsm" | "ifgsm", AttackSpec> = {
  fgsm: { name: "FGSM", make: (model, eps) => createAttack("fgsm", model, { eps }) },
  ifgsm: { name: "I-FGSM", make: (model, eps) => createAttack("ifgsm", model, { eps, steps: 10 }) },
};

export const DEFAULT_DEFENSES = ["none", "jpeg:10", "jpeg:23", "vae"];

export async function reproduceSmall(
  o: ReproduceOptions,
): Promise<{ rows: ResultRow[]; paths: BundlePaths; cleanAccuracy: number }> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const recipe = RECIPES[o.dataset];
  const t0 = performance.now();
  manualSeed(o.seed);
  const cacheDir = join(dirname(o.checkpointDir), "cache");
  const fullTrain = await recipe.load("train", o.dataDir, cacheDir);
  const fullTest = await recipe.load("test", o.dataDir, cacheDir);
  const trainLimit = o.trainSamples ?? (o.quick ? 10000 : undefined);
  const valSize = Math.min(5000, Math.floor(datasetSize(fullTrain) / 10));
  const split = splitValidation(fullTrain, valSize, o.seed);
  const train = trainLimit && trainLimit < datasetSize(split.train) ? takeFirst(split.train, trainLimit) : split.train;
  const testLimit = o.samples ?? (o.quick ? 1000 : undefined);
  const test = testLimit && testLimit < datasetSize(fullTest) ? takeFirst(fullTest, testLimit) : fullTest;
  const tag = o.quick ? "-quick" : "";
  const epochs = o.quick ? recipe.quickEpochs : recipe.epochs;
  const common = {
    train,
    validation: split.validation,
    batchSize: o.batchSize,
    lr: 1e-3,
    seed: o.seed,
    restart: o.restart,
    quiet: o.quiet,
    progress: o.progress,
    log,
  };
  const clfPath = join(o.checkpointDir, `${o.dataset}-classifier${tag}.safetensors`);
  const vaePath = join(o.checkpointDir, `${o.dataset}-vae-b${o.beta}-${o.reconstruction}${tag}.safetensors`);
  const clf = (
    await trainClassifier({
      ...common,
      makeModel: recipe.makeClassifier,
      epochs: o.epochsClassifier ?? epochs.classifier,
      augment: recipe.augment,
      lrMilestones: o.quick ? undefined : recipe.lrMilestones,
      checkpoint: clfPath,
      label: "classifier",
    })
  ).model;
  const vae = (
    await trainVae({
      ...common,
      makeModel: () => new ConvVae(VAE_PRESETS[recipe.vaePreset]),
      epochs: o.epochsVae ?? epochs.vae,
      checkpoint: vaePath,
      loss: { beta: o.beta, reconstruction: o.reconstruction },
      stopReconstructionChange: o.quick ? undefined : recipe.vaeStopReconstructionChange,
      label: "vae",
    })
  ).model;
  const trainSeconds = (performance.now() - t0) / 1000;
  const cleanAccuracy = accuracy(clf, test);
  log(`classifier clean accuracy on ${datasetSize(test)} test images: ${cleanAccuracy.toFixed(4)}`);

  const defenseSpecs = o.defenses ?? DEFAULT_DEFENSES;
  const defenses = defenseSpecs.map((s) => createDefense(s, { vae }));
  const epsilons = o.epsilons ?? (o.quick ? recipe.quickEpsilons : recipe.epsilons);
  const ifgsmEpsilons = o.epsilons ?? (o.quick ? recipe.quickEpsilons : recipe.ifgsmEpsilons);
  const attacks = (o.attacks ?? ["fgsm", "ifgsm"]).map((a) =>
    a === "ifgsm" ? { ...ATTACKS[a], epsilons: ifgsmEpsilons } : ATTACKS[a],
  );
  const mode = o.mode ?? "gray-box";
  const gridEps = epsilons.filter((e) => e > 0).at(-1);
  const t1 = performance.now();
  const resultsFile = join(o.outDir, `sweep-${mode}.json`);
  if (o.restart) rmSync(resultsFile, { force: true });
  // Results are resumed only for the very same models: a retrained checkpoint changes its size or time.
  const stamp = (p: string) => {
    const st = statSync(p);
    return `${st.size}:${st.mtimeMs}`;
  };
  const { rows, grid } = await sweep({
    classifier: clf,
    data: test,
    attacks,
    epsilons,
    defenses,
    mode,
    batchSize: o.evalBatchSize,
    passes: o.passes,
    resultsFile: join(o.outDir, `sweep-${mode}.json`),
    seed: o.seed,
    fingerprint: {
      dataset: o.dataset,
      test: test.source,
      seed: o.seed,
      quick: o.quick,
      beta: o.beta,
      recon: o.reconstruction,
    },
    gridImages: 6,
    gridEpsilon: gridEps,
    quiet: o.quiet,
    progress: o.progress,
    log,
  });
  const evalSeconds = (performance.now() - t1) / 1000;
  const attackParams: Record<string, Record<string, string | number>> = {};
  for (const a of attacks) {
    const described = a.make(clf, epsilons.at(-1) ?? 0.1).describe();
    delete (described as Record<string, unknown>).eps;
    attackParams[a.name] = {
      ...(described as Record<string, string | number>),
      epsilons: (a.epsilons ?? epsilons).join(", "),
    };
  }
  const paperComparisons = recipe.paper
    ? [
        {
          paper: recipe.paper,
          attack: "FGSM",
          mode,
          pairs: [
            { paper: "No Def", ours: "No defense" },
            { paper: "JPEG 23", ours: "JPEG 23" },
            { paper: "VAE", ours: "VAE" },
          ].filter((p) => defenses.some((d) => d.name === p.ours)),
        },
      ]
    : [];
  const notes = [
    `Classifier (${recipe.title} CNN of Table 1): clean top-1 accuracy ${cleanAccuracy.toFixed(4)} on ${datasetSize(test)} test images.`,
    `VAE (Table 2 encoder, latent ${VAE_PRESETS[recipe.vaePreset].latentDim}): beta ${o.beta}, ${o.reconstruction.toUpperCase()} reconstruction, latent noise clipped to [-5, 5].`,
    `Test data: ${test.source}.`,
    `Training data: ${datasetSize(train)} images (${train.source}); validation: ${datasetSize(split.validation)} held-out training images.`,
    `Time: training or loading models ${trainSeconds.toFixed(0)} s, evaluation ${evalSeconds.toFixed(0)} s.`,
    `Randomized defenses are scored as the mean over ${o.passes} forward pass(es); ± is the standard deviation over passes.`,
    mode === "gray-box"
      ? "Gray-box numbers are the paper's setting: the attacker does not know the defense. They overstate robustness; see `vaeguard evaluate --mode adaptive` for attacks that see the defense."
      : "Adaptive: each defense was attacked through itself (exact gradients for the VAE, BPDA identity for JPEG).",
  ].join("\n\n");
  const paths = await writeReportBundle(o.outDir, {
    title: `vaeguard: ${recipe.title} reproduction of Luo & Pfister (2018)`,
    metadata: {
      dataset: `${recipe.title} test set`,
      labelSource: recipe.labelSourceOf?.(test) ?? recipe.labelSource,
      samples: datasetSize(test),
      seed: o.seed,
      command: o.command,
      versions: { ...reportSoftwareVersions(), ...softwareVersions() },
      attackParams,
      createdAt: new Date().toISOString(),
      paperReference: recipe.paper?.reference,
    },
    rows,
    defenses: defenses.map((d) => d.name),
    grid: grid
      ? {
          cells: sweepGridCells(
            grid,
            test.classNames,
            defenses.filter((d) => !(d instanceof NoDefense)).map((d) => d.name),
          ),
          caption: `First test images at ${grid.attack} eps ${grid.epsilon}`,
        }
      : undefined,
    notes,
    paperComparisons,
  });
  clf.dispose?.();
  vae.dispose();
  dispose([fullTrain, fullTest]);
  return { rows, paths, cleanAccuracy };
}
