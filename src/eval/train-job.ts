/**
 * One model's training in `reproduce`, as plain data (a TrainJob), so that
 * the same settings run in this thread or in a training thread
 * (train-thread.ts) and give the same model: the classifier of Table 1 or
 * the VAE of Table 2, trained, resumed or reused from its checkpoint.
 */
import { existsSync } from "node:fs";
import type { ProgressFactory } from "../core/progress.js";
import type { ImageDataset } from "../data/index.js";
import { readTrainingState } from "../models/checkpoint.js";
import { ConvVae, VAE_PRESETS } from "../models/vae.js";
import { trainClassifier, trainVae } from "../train/trainer.js";
import { RECIPES, type SmallDataset } from "./recipes.js";

export interface TrainJob {
  model: "classifier" | "vae";
  dataset: SmallDataset;
  checkpoint: string;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  restart: boolean;
  quiet?: boolean;
  /** Classifier: the recipe's augmentation and learning-rate milestones. */
  augment?: "cifar" | null;
  lrMilestones?: number[];
  /** VAE: its loss and stop rule. */
  loss?: { beta: number; reconstruction: "bce" | "mse" };
  stopReconstructionChange?: number;
}

/** What reproduce's settings say about training (ReproduceOptions has all of these). */
export interface TrainSettings {
  dataset: SmallDataset;
  quick: boolean;
  seed: number;
  restart: boolean;
  batchSize: number;
  epochsClassifier?: number;
  epochsVae?: number;
  beta: number;
  reconstruction: "bce" | "mse";
  quiet?: boolean;
}

/** The classifier's job and the VAE's, in the order `reproduce` has always trained them. */
export function trainJobs(s: TrainSettings, checkpoints: { classifier: string; vae: string }): [TrainJob, TrainJob] {
  const recipe = RECIPES[s.dataset];
  const epochs = s.quick ? recipe.quickEpochs : recipe.epochs;
  const common = {
    dataset: s.dataset,
    batchSize: s.batchSize,
    lr: 1e-3,
    seed: s.seed,
    restart: s.restart,
    quiet: s.quiet,
  };
  return [
    {
      ...common,
      model: "classifier",
      checkpoint: checkpoints.classifier,
      epochs: s.epochsClassifier ?? epochs.classifier,
      augment: recipe.augment,
      lrMilestones: s.quick ? undefined : recipe.lrMilestones,
    },
    {
      ...common,
      model: "vae",
      checkpoint: checkpoints.vae,
      epochs: s.epochsVae ?? epochs.vae,
      loss: { beta: s.beta, reconstruction: s.reconstruction },
      stopReconstructionChange: s.quick ? undefined : recipe.vaeStopReconstructionChange,
    },
  ];
}

/**
 * Whether the job will train (from scratch or resumed) rather than reuse a
 * finished checkpoint. A checkpoint that cannot be read counts as work: the
 * job itself then reports what is wrong with it.
 */
export function needsTraining(job: TrainJob): boolean {
  if (job.restart || !existsSync(job.checkpoint)) return true;
  try {
    return readTrainingState(job.checkpoint)?.complete !== true;
  } catch {
    return true;
  }
}

/** Trains (or resumes, or reuses) the job's model on `data`; the model is freed once its checkpoint is written. */
export async function runTrainJob(
  job: TrainJob,
  data: { train: ImageDataset; validation: ImageDataset },
  io: { progress?: ProgressFactory; log?: (line: string) => void },
): Promise<void> {
  const recipe = RECIPES[job.dataset];
  const common = {
    ...data,
    batchSize: job.batchSize,
    lr: job.lr,
    seed: job.seed,
    restart: job.restart,
    quiet: job.quiet,
    progress: io.progress,
    log: io.log,
    epochs: job.epochs,
    checkpoint: job.checkpoint,
  };
  if (job.model === "classifier") {
    const clf = await trainClassifier({
      ...common,
      makeModel: recipe.makeClassifier,
      augment: job.augment,
      lrMilestones: job.lrMilestones,
      label: "classifier",
    });
    clf.model.dispose?.();
    return;
  }
  const trained = await trainVae({
    ...common,
    makeModel: () => new ConvVae(VAE_PRESETS[recipe.vaePreset]),
    loss: job.loss!,
    stopReconstructionChange: job.stopReconstructionChange,
    label: "vae",
  });
  trained.model.dispose();
}
