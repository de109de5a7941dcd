/**
 * `vaeguard train classifier|vae|purifier`: train one model with progress, validation, per-epoch checkpoints
 * and --resume. `purifier` trains a purifier against adaptive attacks in front of a frozen classifier
 * (src/train/purifier.ts; its options and run are in train-purifier.ts).
 */
import { checkWritableFile } from "../io/preflight.js";
import { removeOrphanedTemps } from "../io/atomic.js";
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { setProcessThreads } from "../core/concurrency.js";
import { LIMITS } from "../core/limits.js";
import { splitValidation, takeFirst, datasetSize } from "../data/index.js";
import { ConvVae, VAE_PRESETS } from "../models/vae.js";
import { accuracy, trainClassifier, trainVae } from "../train/trainer.js";
import { RECIPES, type SmallDataset } from "../eval/reproduce.js";
import { UsageError, progressBars, runAction } from "./common.js";
import { parseIntArg, parseListArg, parseNumberArg, parseThreadsArg } from "./args.js";
import {
  CLASSIFIER_ARCHS,
  addPurifierOptions,
  classifierFactory,
  planPurifierRun,
  runTrainPurifier,
  type PurifierCliOptions,
} from "./train-purifier.js";

interface Opts {
  dataset: string;
  dataDir?: string;
  out: string;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  splitSeed: number;
  validation: number;
  trainSamples?: number;
  resume: boolean;
  beta: number;
  reconstruction: string;
  preset?: string;
  augment?: boolean;
  lrMilestones?: number[];
  lrGamma: number;
  stopReconstructionChange?: number;
  threads?: number;
  quiet?: boolean;
  arch?: string;
}

/** Options every model kind shares: data, output, schedule and resumption. */
function addTrainingOptions(cmd: Command): Command {
  return cmd
    .requiredOption("--dataset <name>", `one of ${Object.keys(RECIPES).join(", ")}`)
    .requiredOption("--out <file>", "checkpoint file (.safetensors); resumed when it exists")
    .option("--data-dir <dir>", "data files to use instead of the default source")
    .option("--epochs <n>", "training epochs", parseIntArg("epochs", 1, LIMITS.epochs), 4)
    .option("--batch-size <n>", "batch size", parseIntArg("batch-size", 1, LIMITS.batchSize), 128)
    .option("--lr <x>", "Adam learning rate", parseNumberArg("lr", 0), 1e-3)
    .option("--seed <n>", "random seed", parseIntArg("seed", 0), 0)
    .option(
      "--split-seed <n>",
      "seed of the validation split, apart from --seed so that runs with other seeds, and fine-tuning with --init, validate on the same held-out images",
      parseIntArg("split-seed", 0),
      0,
    )
    .option("--validation <n>", "training images held out for validation", parseIntArg("validation", 1), 5000)
    .option("--train-samples <n>", "use only this many training images", parseIntArg("train-samples", 1))
    .option("--no-resume", "start over even when --out exists");
}

/** Options of one model kind (VAE loss and preset, classifier augmentation, architecture) and run control. */
function addModelOptions(cmd: Command): Command {
  return cmd
    .option("--beta <x>", "VAE: weight of the KL term", parseNumberArg("beta", 0), 0.01)
    .option("--reconstruction <kind>", "VAE: bce or mse", "bce")
    .option(
      "--preset <name>",
      `VAE architecture (default: the data set's; one of ${Object.keys(VAE_PRESETS).join(", ")})`,
    )
    .option("--augment", "classifier: random crop and flip (CIFAR-10 style)")
    .option(
      "--lr-milestones <list>",
      "comma-separated epochs after which the learning rate is multiplied by --lr-gamma (as PyTorch's MultiStepLR)",
      parseListArg(parseIntArg("lr-milestones", 1)),
    )
    .option("--lr-gamma <x>", "factor applied at each --lr-milestones epoch", parseNumberArg("lr-gamma", 0), 0.1)
    .option(
      "--stop-reconstruction-change <x>",
      "VAE: stop once the training reconstruction term changes by less than this fraction per epoch (0.01 = 1%); --epochs is the cap",
      parseNumberArg("stop-reconstruction-change", 0, 1),
    )
    .option("--threads <n>", "libtorch threads", parseThreadsArg())
    .option("--quiet", "no progress output")
    .option(
      "--arch <name>",
      `classifier: ${Object.keys(CLASSIFIER_ARCHS).join(" (default) or ")}; purifier: vae (default, Table 2) or conv`,
    );
}

/** Choices commander does not check itself; refused before anything is loaded. */
function checkChoices(kind: string, o: Opts): void {
  if (kind !== "classifier" && kind !== "vae" && kind !== "purifier")
    throw new UsageError(`Expected "classifier", "vae" or "purifier" for model but received ${JSON.stringify(kind)}`);
  if (!(o.dataset in RECIPES)) {
    throw new UsageError(
      `Expected one of ${Object.keys(RECIPES).join(", ")} for --dataset but received ${JSON.stringify(o.dataset)}`,
    );
  }
  if (o.preset && !(o.preset in VAE_PRESETS)) {
    throw new UsageError(
      `Expected one of ${Object.keys(VAE_PRESETS).join(", ")} for --preset but received ${JSON.stringify(o.preset)}`,
    );
  }
  if (o.reconstruction !== "bce" && o.reconstruction !== "mse") {
    throw new UsageError(
      `Expected "bce" or "mse" for --reconstruction but received ${JSON.stringify(o.reconstruction)}`,
    );
  }
}

async function runTrain(kind: string, o: Opts & PurifierCliOptions): Promise<void> {
  checkChoices(kind, o);
  if (o.threads) setProcessThreads(o.threads);
  const recipe = RECIPES[o.dataset as SmallDataset];
  // Checked and loaded before the training data, so bad input costs nothing.
  const makeClassifier = classifierFactory(kind === "classifier" ? o.arch : undefined, recipe.makeClassifier);
  const plan = kind === "purifier" ? planPurifierRun(o.dataset as SmallDataset, o) : undefined;
  // Before any work: the checkpoint can be written, and the test data loads too.
  const out = checkWritableFile(o.out, "the checkpoint");
  removeOrphanedTemps(out);
  const full = await recipe.load("train", o.dataDir);
  const test = kind === "classifier" ? await recipe.load("test", o.dataDir) : undefined;
  const split = splitValidation(full, Math.min(o.validation, Math.floor(datasetSize(full) / 2)), o.splitSeed);
  const train =
    o.trainSamples && o.trainSamples < datasetSize(split.train) ? takeFirst(split.train, o.trainSamples) : split.train;
  const common = {
    train,
    validation: split.validation,
    epochs: o.epochs,
    batchSize: o.batchSize,
    lr: o.lr,
    seed: o.seed,
    checkpoint: out,
    resume: o.resume,
    restart: !o.resume && existsSync(out),
    lrMilestones: o.lrMilestones,
    lrGamma: o.lrGamma,
    quiet: o.quiet,
    progress: progressBars(o.quiet),
  };
  if (plan) {
    await runTrainPurifier(plan, { ...o, ...common, out }, train, split.validation);
  } else if (kind === "classifier") {
    const r = await trainClassifier({
      ...common,
      makeModel: makeClassifier,
      augment: o.augment ? "cifar" : null,
      label: "classifier",
    });
    console.log(`test accuracy ${accuracy(r.model, test!).toFixed(4)}; checkpoint ${out}`);
  } else {
    const preset = VAE_PRESETS[o.preset ?? recipe.vaePreset];
    await trainVae({
      ...common,
      makeModel: () => new ConvVae(preset),
      loss: { beta: o.beta, reconstruction: o.reconstruction as "bce" | "mse" },
      stopReconstructionChange: o.stopReconstructionChange,
      label: "vae",
    });
    console.log(`checkpoint ${out}`);
  }
}

export function register(program: Command): void {
  const command = program
    .command("train")
    .description(
      "train the paper's classifier or VAE, or a purifier against adaptive attacks, for a data set; resumable, with a checkpoint after every epoch",
    )
    .argument("<model>", "classifier, vae or purifier");
  addTrainingOptions(command);
  addModelOptions(command);
  command.action((kind: string, o: Opts & PurifierCliOptions) => runAction(() => runTrain(kind, o)));
  addPurifierOptions(command);
}
