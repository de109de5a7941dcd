/**
 * The body of a runner thread (thread-runner.ts): rebuilds the sweep from
 * its setup as a queue worker does (models loaded by content hash; the test
 * images are the main thread's, handed over without a copy), then runs the
 * cells it is sent one at a time, sharing eps-free attack directions among
 * them through one grid memo, and answers each with its result.
 */
import { jobThreadMain } from "../core/job-thread.js";
import { takeDataset, type SharedDataset } from "../data/shared.js";
import type { CellTask } from "./cells.js";
import { EvaluationCache, type EvaluationSetup } from "./evaluation.js";
import { GridMemo } from "./grid-memo.js";
import { runCell } from "./run-cell.js";

export const CELL_THREAD_ROLE = "vaeguard-sweep-cells";

export interface CellThreadData {
  setup: EvaluationSetup;
  /** The main thread's test images, handed over without a copy. */
  test: SharedDataset;
}

/** Main thread to runner thread: run this cell, or stop. */
export type CellOrder = { run: CellTask } | { stop: true };

/** Runner thread to main thread. */
export type CellReport =
  { started: string } | { images: number; id: string } | { done: string; result: Awaited<ReturnType<typeof runCell>> };

jobThreadMain<CellThreadData>(CELL_THREAD_ROLE, async (job) => {
  const { setup } = job.data;
  const cache = new EvaluationCache();
  const memo = new GridMemo();
  try {
    cache.adoptTestData(setup, takeDataset(job.data.test));
    const ctx = cache.sweepContext(setup);
    for (;;) {
      const order = (await job.receive()) as CellOrder;
      if ("stop" in order) return;
      const task = order.run;
      job.send({ started: task.id } satisfies CellReport);
      const result = await runCell(
        ctx,
        task,
        (done) => job.send({ images: done, id: task.id } satisfies CellReport),
        memo,
      );
      job.send({ done: task.id, result } satisfies CellReport);
    }
  } finally {
    memo.dispose();
    cache.dispose();
  }
});
