/**
 * The body of a worker: runs in a worker thread that BullMQ starts and keeps
 * for the next job (a sandboxed processor), so libtorch's long synchronous
 * work never blocks the thread that renews the job's lock in Redis. Models and
 * data stay cached in the thread between cells.
 */
import { UnrecoverableError, type SandboxedJob } from "bullmq";
import { VaeguardError } from "../core/errors.js";
import { EvaluationCache } from "../eval/evaluation.js";
import { runCell, type SweepContext } from "../eval/run-cell.js";
import { GridMemo } from "../eval/grid-memo.js";
import { isCellJobData, type CellJobData, type CellJobProgress, type CellJobResult } from "./jobs.js";

const cache = new EvaluationCache();
/**
 * The queue hands out single cells: this thread's cells of one context share
 * eps-free attack directions (FGSM's gradient) through one memo, replaced with the context.
 */
let shared: { ctx: SweepContext; memo: GridMemo } | undefined;

function memoFor(ctx: SweepContext): GridMemo {
  if (shared?.ctx !== ctx) {
    shared?.memo.dispose();
    shared = { ctx, memo: new GridMemo() };
  }
  return shared.memo;
}

export default async function processCell(job: SandboxedJob<CellJobData, CellJobResult>): Promise<CellJobResult> {
  if (!isCellJobData(job.data)) {
    throw new UnrecoverableError(`job ${job.id} is not a vaeguard cell (another program uses this queue?)`);
  }
  let ctx: SweepContext;
  try {
    await cache.loadTestData(job.data.setup);
    ctx = cache.sweepContext(job.data.setup);
  } catch (e) {
    // Another checkpoint or other data than the coordinator named: running it again cannot help.
    if (e instanceof VaeguardError) throw new UnrecoverableError(e.message);
    throw e;
  }
  return runCell(
    ctx,
    job.data.task,
    (images) => {
      void job.updateProgress({ images } satisfies CellJobProgress);
    },
    memoFor(ctx),
  );
}
