/**
 * The purifier part of `vaeguard train`: its options, their checks (before
 * any data is loaded, so bad input costs nothing), and the run. Also the
 * classifier architectures `train classifier --arch` offers.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import type { Command } from "commander";
import { LIMITS } from "../core/limits.js";
import type { ProgressFactory } from "../core/progress.js";
import { CheckpointError } from "../core/errors.js";
import { noGrad, tidy } from "../core/engine.js";
import type { ImageDataset } from "../data/index.js";
import type { ImageClassifier } from "../models/classifiers.js";
import { loadClassifierFor, loadPurifierFor } from "../models/loaders.js";
import { Mlp } from "../models/mlp.js";
import { CONV_PURIFIER_PRESETS, ConvPurifier, type Purifier } from "../models/purifier.js";
import { describeModel } from "../models/registry.js";
import { ConvVae, VAE_PRESETS } from "../models/vae.js";
import type { Module } from "../nn/module.js";
import { RECIPES, type SmallDataset } from "../eval/reproduce.js";
import { formatTrainingAttack, parseTrainingAttack, trainPurifier, type TrainingAttack } from "../train/purifier.js";
import { disposeReplaySet, joinReplaySets, loadReplaySet, type ReplaySet } from "../train/replay.js";
import { UsageError } from "./common.js";
import { parseIntArg, parseNumberArg } from "./args.js";

type ClassifierMaker = () => Module & ImageClassifier;

/** `train classifier --arch`: the data set's Table 1 CNN, or a small MLP (the unseen classifier of issue 12). */
export const CLASSIFIER_ARCHS: Record<string, (standard: ClassifierMaker) => ClassifierMaker> = {
  cnn: (standard) => standard,
  mlp: (standard) => () => {
    const probe = standard();
    const shape = [...probe.inputShape] as [number, number, number];
    const numClasses = probe.numClasses;
    probe.dispose();
    return new Mlp({ inputShape: shape, hidden: [512, 256], numClasses });
  },
};

export function classifierFactory(arch: string | undefined, standard: ClassifierMaker): ClassifierMaker {
  const name = arch ?? "cnn";
  const make = CLASSIFIER_ARCHS[name];
  if (!make) {
    throw new UsageError(
      `Expected one of ${Object.keys(CLASSIFIER_ARCHS)
        .map((a) => JSON.stringify(a))
        .join(", ")} for --arch of a classifier but received ${JSON.stringify(name)}`,
    );
  }
  return make(standard);
}

export interface PurifierCliOptions {
  classifier?: string;
  init?: string;
  attack: string;
  eps: number;
  epsRamp: number;
  eot: number;
  ceWeight: number;
  recWeight: number;
  klWeight: number;
  cleanWeight: number;
  clip: number;
  valAttackSamples: number;
  valAttackSteps: number;
  valSamples?: number;
  replay?: string;
  replayBatch: number;
}

export function addPurifierOptions(command: Command): void {
  command
    .option("--classifier <file>", "purifier: the frozen classifier checkpoint to defend (required)")
    .option("--init <file>", "purifier: start from this purifier checkpoint (e.g. the paper's trained VAE)")
    .option("--attack <spec>", 'purifier: training attack, "fgsm-rs[:alpha=A]" or "pgd[:steps=K][:alpha=A]"', "fgsm-rs")
    .option("--eps <x>", "purifier: final L-inf budget of the training attack", parseNumberArg("eps", 0, 1), 0.3)
    .option("--eps-ramp <epochs>", "purifier: epochs over which eps ramps up from 0", parseNumberArg("eps-ramp", 0), 1)
    .option(
      "--eot <k>",
      "purifier: EOT samples of the latent noise per attack gradient",
      parseIntArg("eot", 1, LIMITS.eotSamples),
      1,
    )
    .option("--ce-weight <x>", "purifier: weight of the classifier's cross-entropy", parseNumberArg("ce-weight", 0), 1)
    .option(
      "--rec-weight <x>",
      "purifier: weight of the reconstruction of the clean image",
      parseNumberArg("rec-weight", 0),
      0.01,
    )
    .option("--kl-weight <x>", "purifier: weight of the KL term", parseNumberArg("kl-weight", 0), 1e-4)
    .option(
      "--clean-weight <x>",
      "purifier: weight of the cross-entropy on purified clean images",
      parseNumberArg("clean-weight", 0),
      0,
    )
    .option("--clip <c>", "purifier: latent noise clipped to [-c, c]", parseNumberArg("clip", 0), 5)
    .option(
      "--val-attack-samples <n>",
      "purifier: validation images attacked by adaptive PGD each epoch (0: none)",
      parseIntArg("val-attack-samples", 0),
      500,
    )
    .option("--val-attack-steps <n>", "purifier: steps of that PGD", parseIntArg("val-attack-steps", 1), 10)
    .option("--val-samples <n>", "purifier: validation images scored clean each epoch", parseIntArg("val-samples", 1))
    .option(
      "--replay <files>",
      "purifier: replay sets, comma-separated (scripts/make-replay-set.mjs): adversarial images made beforehand, mixed into every batch",
    )
    .option("--replay-batch <n>", "purifier: replay rows per batch", parseIntArg("replay-batch", 1, 100000), 32);
}

function sha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

/** What a purifier run needs, checked and loaded before any training data is read. */
export interface PurifierPlan {
  dataset: SmallDataset;
  classifierFile: string;
  classifier: Module & ImageClassifier;
  makePurifier: () => Purifier;
  attack: TrainingAttack;
  replay?: ReplaySet;
  about: Record<string, unknown>;
}

export function planPurifierRun(dataset: SmallDataset, o: PurifierCliOptions & { arch?: string }): PurifierPlan {
  if (!o.classifier) {
    throw new UsageError("train purifier needs --classifier: the checkpoint of the classifier to defend (kept frozen)");
  }
  const arch = o.arch ?? "vae";
  if (arch !== "vae" && arch !== "conv") {
    throw new UsageError(`Expected "vae" or "conv" for --arch of a purifier but received ${JSON.stringify(arch)}`);
  }
  const attack = parseTrainingAttack(o.attack);
  const recipe = RECIPES[dataset];
  const probe = recipe.makeClassifier();
  const shape = [...probe.inputShape];
  probe.dispose();
  const classifierFile = resolve(o.classifier);
  const classifier = loadClassifierFor(classifierFile, { inputShape: shape, numClasses: 10, dataset: recipe.title });
  let makePurifier: () => Purifier;
  let initNote: string | null = null;
  try {
    if (o.init) {
      const file = resolve(o.init);
      // Load once now, so a wrong file is reported before training; the trainer asks for fresh copies.
      const first = loadPurifierFor(file, shape, recipe.title);
      const wanted = arch === "vae" ? ConvVae.arch : ConvPurifier.arch;
      const got = describeModel(first).arch;
      first.dispose();
      if (got !== wanted) {
        throw new CheckpointError(file, `holds a '${got}' purifier but --arch ${arch} needs a '${wanted}'`);
      }
      makePurifier = () => loadPurifierFor(file, shape, recipe.title);
      initNote = `${basename(file)} (sha256 ${sha256(file).slice(0, 12)})`;
    } else if (arch === "vae") {
      makePurifier = () => new ConvVae(VAE_PRESETS[recipe.vaePreset]);
    } else {
      const preset = CONV_PURIFIER_PRESETS[dataset === "cifar10" ? "cifar10" : "mnist"];
      makePurifier = () => new ConvPurifier(preset);
    }
  } catch (e) {
    classifier.dispose();
    throw e;
  }
  let replay: ReplaySet | undefined;
  if (o.replay) {
    const parts: ReplaySet[] = [];
    try {
      for (const name of o.replay.split(",").map((f) => f.trim())) {
        const file = resolve(name);
        const part = loadReplaySet(file, shape, 10);
        // The set's own metadata plus which file it is: what a resumed run is checked against.
        part.about = { ...part.about, file: basename(file), sha256: sha256(file).slice(0, 12) };
        parts.push(part);
      }
    } catch (e) {
      for (const part of parts) disposeReplaySet(part);
      classifier.dispose();
      throw e;
    }
    replay = joinReplaySets(parts);
  }
  return {
    dataset,
    classifierFile,
    classifier,
    makePurifier,
    attack,
    ...(replay ? { replay } : {}),
    about: {
      dataset,
      classifier: basename(classifierFile),
      classifierSha256: sha256(classifierFile),
      classifierArch: describeModel(classifier).arch,
      init: initNote,
    },
  };
}

export async function runTrainPurifier(
  plan: PurifierPlan,
  o: PurifierCliOptions & {
    epochs: number;
    batchSize: number;
    lr: number;
    lrMilestones?: number[];
    lrGamma?: number;
    seed: number;
    out: string;
    resume: boolean;
    restart: boolean;
    quiet?: boolean;
    progress?: ProgressFactory;
    reconstruction: string;
  },
  train: ImageDataset,
  validation: ImageDataset,
): Promise<void> {
  const t0 = performance.now();
  try {
    const r = await trainPurifier({
      classifier: plan.classifier,
      makeModel: plan.makePurifier,
      train,
      validation,
      epochs: o.epochs,
      batchSize: o.batchSize,
      lr: o.lr,
      ...(o.lrMilestones ? { lrMilestones: o.lrMilestones } : {}),
      ...(o.lrGamma !== undefined ? { lrGamma: o.lrGamma } : {}),
      seed: o.seed,
      checkpoint: o.out,
      resume: o.resume,
      restart: o.restart,
      quiet: o.quiet,
      ...(o.progress ? { progress: o.progress } : {}),
      label: "purifier",
      attack: plan.attack,
      eps: o.eps,
      rampEpochs: o.epsRamp,
      eot: o.eot,
      objective: {
        ceWeight: o.ceWeight,
        reconstructionWeight: o.recWeight,
        klWeight: o.klWeight,
        cleanWeight: o.cleanWeight,
        reconstruction: o.reconstruction as "bce" | "mse",
        clip: o.clip,
      },
      validationAttackSamples: o.valAttackSamples,
      validationAttackSteps: o.valAttackSteps,
      validationSamples: o.valSamples,
      ...(plan.replay ? { replay: plan.replay, replayBatch: o.replayBatch } : {}),
      // The held-out images, so that a fine-tuning run can be checked to validate on the same ones.
      about: { ...plan.about, validation: validation.source },
    });
    const seconds = (performance.now() - t0) / 1000;
    const params = noGrad(() => tidy(() => r.model.numParameters()));
    console.log(
      `purifier (${describeModel(r.model).arch}, ${params} parameters) trained with ${formatTrainingAttack(plan.attack)} at eps ${o.eps}` +
        ` in front of the frozen ${plan.about.classifierArch as string} (weights unchanged); ${seconds.toFixed(0)} s; checkpoint ${o.out}`,
    );
    r.model.dispose();
  } finally {
    plan.classifier.dispose();
    if (plan.replay) disposeReplaySet(plan.replay);
  }
}
