/**
 * A CellRunner that runs the sweep's cells on n threads of this process
 * (cell-thread.ts), each with its share of the libtorch threads, its own
 * random generator and its own grid memo: no Redis, the same results file.
 * Every cell is seeded from itself and a thread's memo gives each cell the
 * numbers it would get alone, so where and in which order the cells run
 * changes nothing in the file (test/eval/thread-runner.test.ts). Which thread
 * runs which cell: cell-schedule.ts. The test images are handed to the
 * threads without a copy; each thread loads the models itself, by content hash.
 */
import { JobThreads } from "../core/job-threads.js";
import { InternalError } from "../core/errors.js";
import type { ImageDataset } from "../data/index.js";
import { dropDataset, shareDataset, type SharedDataset } from "../data/shared.js";
import type { CellTask } from "./cells.js";
import { CellScheduler, cellCost } from "./cell-schedule.js";
import { CELL_THREAD_ROLE, type CellOrder, type CellReport, type CellThreadData } from "./cell-thread.js";
import type { EvaluationSetup } from "./evaluation.js";
import type { CellEvents, CellRunner } from "./sweep.js";

export interface ThreadRunnerOptions {
  setup: EvaluationSetup;
  /** The test images the setup names (the pipeline's own copy). */
  test: ImageDataset;
  /** Threads to run cells on. */
  jobs: number;
  /** libtorch threads of each. */
  threadsPerJob: number;
  /** Where the cells run when there are too few to share (one cell or one job): this thread, as before. */
  single: () => CellRunner;
  /** Date.now() milliseconds after which no cell starts (see SweepOptions.maxSeconds). */
  stopAt?: number;
  log?: (line: string) => void;
}

export function threadRunner(o: ThreadRunnerOptions): CellRunner {
  return {
    where: `on ${o.jobs} threads of this process`,
    async run(tasks, events) {
      const n = Math.min(o.jobs, tasks.length);
      if (n <= 1) return o.single().run(tasks, events);
      await runOnThreads(o, n, tasks, events);
    },
  };
}

async function runOnThreads(o: ThreadRunnerOptions, n: number, tasks: CellTask[], events: CellEvents): Promise<void> {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const task = (id: string) => byId.get(id) ?? fail(`a runner thread reported cell ${id}, which it was not sent`);
  const schedule = new CellScheduler(tasks, (t) => cellCost(t, o.setup.attacks));
  const shared: SharedDataset[] = [];
  const data: CellThreadData[] = Array.from({ length: n }, () => {
    const test = shareDataset(o.test);
    shared.push(test);
    return { setup: o.setup, test };
  });
  let pool: JobThreads | undefined;
  const sendNext = (thread: number) => {
    const next = o.stopAt !== undefined && Date.now() >= o.stopAt ? undefined : schedule.next(thread);
    pool!.post(thread, (next ? { run: next } : { stop: true }) satisfies CellOrder);
  };
  const receive = (thread: number, r: CellReport) => {
    if ("started" in r) events.started(task(r.started));
    else if ("done" in r) {
      events.done(task(r.done), r.result);
      sendNext(thread);
    } else events.images(task(r.id), r.images);
  };
  try {
    pool = await JobThreads.start({
      module: new URL("./cell-thread.js", import.meta.url),
      role: CELL_THREAD_ROLE,
      data,
      threadsPerJob: o.threadsPerJob,
      log: o.log,
      onMessage: (thread, m) => {
        try {
          receive(thread, m as CellReport);
        } catch (e) {
          // The sweep could not take a result (its file could not be written): stop every thread.
          void pool!.stop(e instanceof Error ? e : new InternalError(String(e)));
        }
      },
    });
    for (let i = 0; i < n; i++) sendNext(i);
    await pool.finished();
  } finally {
    for (const s of shared) dropDataset(s);
  }
}

function fail(message: string): never {
  throw new InternalError(message);
}
