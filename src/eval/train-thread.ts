/**
 * The body of a training thread (train-models.ts): one model's training on
 * the main thread's data, handed over without a copy, with progress and log
 * lines drawn by the main thread.
 */
import { dispose } from "../core/engine.js";
import { jobThreadMain } from "../core/job-thread.js";
import { takeDataset, type SharedDataset } from "../data/shared.js";
import { runTrainJob, type TrainJob } from "./train-job.js";

export const TRAIN_THREAD_ROLE = "vaeguard-train-model";

export interface TrainThreadData {
  job: TrainJob;
  train: SharedDataset;
  validation: SharedDataset;
}

jobThreadMain<TrainThreadData>(TRAIN_THREAD_ROLE, async (t) => {
  const train = takeDataset(t.data.train);
  const validation = takeDataset(t.data.validation);
  try {
    await runTrainJob(t.data.job, { train, validation }, { progress: t.progress, log: t.log });
  } finally {
    dispose([train.images, train.labels, validation.images, validation.labels]);
  }
});
