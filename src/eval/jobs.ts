/**
 * How many jobs `reproduce` runs side by side, and the libtorch threads of
 * each. libtorch's intra-op threads scale poorly on the paper's small models
 * (two threads on one batch give much less than twice the speed), while the
 * pipeline has independent work: the classifier and the VAE train
 * independently, and the sweep's cells are seeded each from itself. So a
 * thread budget of T is better spent as n jobs of T / n threads.
 *
 * Default: 2 jobs when the budget allows 2 threads (1 otherwise, today's
 * one-job run). Not more: the training has two jobs only, and each sweep job
 * holds its own models and a batch's autograd graph (a few hundred MB for
 * MNIST at 500 images), so more jobs cost memory for a share of the sweep alone.
 */
import { ArgumentError } from "../core/errors.js";

export const DEFAULT_MAX_JOBS = 2;

/** The default number of jobs for a budget of `threads` libtorch threads. */
export function defaultJobs(threads: number): number {
  return Math.max(1, Math.min(DEFAULT_MAX_JOBS, threads));
}

/** Each job's libtorch threads: an equal share of the budget, at least 1. */
export function threadsPerJob(threads: number, jobs: number): number {
  if (!Number.isInteger(jobs) || jobs < 1) {
    throw new ArgumentError(`Expected integer of at least 1 for jobs but received ${jobs}`);
  }
  return Math.max(1, Math.floor(threads / jobs));
}
