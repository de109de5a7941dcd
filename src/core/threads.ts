/**
 * The bound on libtorch's intra-op threads. More threads than a few per core
 * only add contention: --threads 1000 made 1,011 OS threads and a 35x slower
 * run, and a million hung the machine. The bound is a safety limit, not a tuning.
 */
import { availableParallelism } from "node:os";
import { ArgumentError } from "./errors.js";

export const THREADS_PER_CORE = 4;

export function maxThreads(): number {
  return THREADS_PER_CORE * availableParallelism();
}

/** The number of threads, or an ArgumentError in the usual template that says where the bound comes from. */
export function checkThreads(value: unknown, name = "threads"): number {
  const max = maxThreads();
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max) {
    throw new ArgumentError(
      `Expected integer between 1 and ${max} for ${name} but received ${String(value)} ` +
        `(at most ${THREADS_PER_CORE} threads per core, ${availableParallelism()} cores)`,
    );
  }
  return value;
}
