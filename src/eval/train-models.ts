/**
 * Step 0 of `reproduce`: the classifier and the VAE, trained, resumed or
 * reused from their checkpoints. With one job, one after the other in this
 * thread, as always. With more, when both have training to do, side by side
 * in two training threads (train-thread.ts; core/job-threads.ts says why
 * threads and not processes), each with its share of the libtorch threads
 * and its own random generator: every epoch draws what it would draw in a
 * run of one job, and with equal threads per job the checkpoints are the same
 * bit for bit. Both read the data loaded here, handed over without a copy.
 * The first failure stops the other job; the epochs both finished stay in
 * their checkpoints, and the same command resumes them.
 */
import { getNumThreads } from "../core/engine.js";
import { JobThreads } from "../core/job-threads.js";
import type { ProgressFactory } from "../core/progress.js";
import type { ImageDataset } from "../data/index.js";
import { dropDataset, shareDataset, type SharedDataset } from "../data/shared.js";
import { threadsPerJob } from "./jobs.js";
import { needsTraining, runTrainJob, type TrainJob } from "./train-job.js";
import { TRAIN_THREAD_ROLE, type TrainThreadData } from "./train-thread.js";

export interface TrainRun {
  /** Jobs side by side (1: one after the other, in this thread). */
  jobs: number;
  progress?: ProgressFactory;
  log: (line: string) => void;
}

/** Trains the jobs' models (or reuses their finished checkpoints); the models are freed, their checkpoints stay. */
export async function trainModels(
  jobs: readonly TrainJob[],
  data: { train: ImageDataset; validation: ImageDataset },
  run: TrainRun,
): Promise<void> {
  const working = jobs.filter(needsTraining);
  if (run.jobs > 1 && working.length > 1) {
    await trainSideBySide(jobs, data, run);
    return;
  }
  for (const job of jobs) await runTrainJob(job, data, run);
}

async function trainSideBySide(
  jobs: readonly TrainJob[],
  data: { train: ImageDataset; validation: ImageDataset },
  run: TrainRun,
): Promise<void> {
  const threads = threadsPerJob(getNumThreads(), Math.min(run.jobs, jobs.length));
  run.log(
    `training ${jobs.map((j) => j.model).join(" and ")} side by side (${jobs.length} threads, ${threads} libtorch thread${threads === 1 ? "" : "s"} each)`,
  );
  const shared: SharedDataset[] = [];
  const share = (ds: ImageDataset) => {
    const s = shareDataset(ds);
    shared.push(s);
    return s;
  };
  const threadData: TrainThreadData[] = jobs.map((job) => ({
    job,
    train: share(data.train),
    validation: share(data.validation),
  }));
  try {
    const pool = await JobThreads.start({
      module: new URL("./train-thread.js", import.meta.url),
      role: TRAIN_THREAD_ROLE,
      data: threadData,
      threadsPerJob: threads,
      progress: run.progress,
      log: run.log,
    });
    await pool.finished();
  } finally {
    for (const s of shared) dropDataset(s);
  }
}
