/**
 * What jobs running side by side in worker threads of one process need from
 * the engine (native/src/threads.cc). libtorch keeps one default random
 * generator, one intra-op thread count and one BLAS thread pool per process;
 * grad mode is already per thread.
 *
 * - ownGenerator(): the calling thread draws from its own generator from now
 *   on, so `manualSeed` in one job never moves another job's random numbers
 *   and each job draws exactly what it would draw alone.
 * - shareTensor / takeSharedTensor: hand a tensor (data, never part of an
 *   autograd graph) to another thread without copying it; both threads may
 *   read it, neither may change it in place.
 * - setBlasThreads: OpenBLAS sizes its own pool from the environment and
 *   torch's thread count leaves it alone; jobs of one thread each want one.
 */
import { binding } from "../binding.js";
import { setNumThreads } from "./engine.js";
import { checkThreads } from "./threads.js";
import { wrap, type Tensor } from "./tensor.js";

/** From now on this thread draws from its own generator (seeded, as a fresh process's, until manualSeed). */
export function ownGenerator(): void {
  binding.ownGenerator();
}

/** An id another thread passes to takeSharedTensor to get the same storage, without a copy. */
export function shareTensor(t: Tensor): number {
  return binding.shareTensor(t.handle);
}

/** The tensor shared under `id`, as a tensor of this thread; the id is spent. */
export function takeSharedTensor(id: number): Tensor {
  return wrap(binding.takeSharedTensor(id));
}

/** Forget a shared tensor that no thread took (safe to call for an id already taken). */
export function dropSharedTensor(id: number): void {
  binding.dropSharedTensor(id);
}

/** Shared tensors neither taken nor dropped (tests prove none is left behind). */
export function sharedTensorCount(): number {
  return binding.sharedTensorCount();
}

/**
 * OpenBLAS's thread count, process-wide: call it only while no other thread
 * computes. Returns false where the BLAS is not OpenBLAS (nothing to set).
 */
export function setBlasThreads(n: number): boolean {
  return binding.setBlasThreads(checkThreads(n));
}

/** OpenBLAS's thread count, or undefined with another BLAS. */
export function getBlasThreads(): number | undefined {
  return binding.getBlasThreads() ?? undefined;
}

/**
 * The thread count of a process that runs one job (the command line's
 * `--threads`): libtorch's intra-op threads and OpenBLAS's pool alike. Without
 * the second, `--threads 1` still left OpenBLAS a thread per core that spins
 * between the dense layers' calls, taking the core a job beside it runs on.
 */
export function setProcessThreads(n: number): void {
  setNumThreads(n);
  setBlasThreads(n); // false, and nothing to do, where the BLAS is not OpenBLAS
}
