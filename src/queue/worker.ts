/**
 * A worker: takes cells from the queue one at a time and runs them in a worker
 * thread (processor.ts), while this thread keeps the job's lock alive in
 * Redis. When a worker dies (kill -9, a lost machine), its lock expires and
 * BullMQ's stalled-job check, run by every other worker, puts the cell back in
 * the queue: another worker runs it again, and its result is stored once.
 */
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker, type Job } from "bullmq";
import { describeTask } from "../eval/cells.js";
import { QUEUE_NAME, probe, readyWithin, type RedisTarget } from "./connection.js";
import { type CellJobData, type CellJobResult } from "./jobs.js";

export interface WorkerOptions {
  target: RedisTarget;
  /** libtorch threads of the cell thread (default: VAEGUARD_THREADS or all cores). */
  threads?: number;
  /**
   * How long a cell's lock lives without renewal: a dead worker's cell is
   * retried after about this long (default 30 s).
   */
  lockDurationMs?: number;
  /** How often this worker looks for cells of dead workers (default 30 s). */
  stalledIntervalMs?: number;
  /** Stop after this many cells (default: run until stopped). */
  maxCells?: number;
  connectTimeoutMs?: number;
  log: (line: string) => void;
}

function describeJob(job: Job<CellJobData> | undefined): string {
  const task = job?.data?.task;
  return task ? `cell ${describeTask(task)}` : `job ${job?.id ?? "?"}`;
}

/** Run a worker until SIGINT/SIGTERM (or `maxCells` cells); resolves once it has stopped cleanly. */
export async function runWorker(o: WorkerOptions): Promise<void> {
  // The cell thread reads its thread count from the environment it inherits when it starts.
  if (o.threads !== undefined) process.env.VAEGUARD_THREADS = String(o.threads);
  await probe(o.target);
  const processor = fileURLToPath(new URL("./processor.js", import.meta.url));
  let lastError: unknown;
  let lastShown = "";
  let cells = 0;
  const name = `${hostname()}:${process.pid}`;
  const worker = new Worker<CellJobData, CellJobResult>(QUEUE_NAME, processor, {
    connection: o.target.connection,
    useWorkerThreads: true,
    concurrency: 1,
    lockDuration: o.lockDurationMs ?? 30000,
    stalledInterval: o.stalledIntervalMs ?? 30000,
    // A cell may be abandoned a few times (a worker killed, Redis restarted) before it counts as failed.
    maxStalledCount: 3,
    name,
    autorun: false,
  });
  worker.on("error", (e) => {
    lastError = e;
    const line = `worker: Redis: ${e.message.split("\n")[0]}`;
    if (line !== lastShown) o.log(line);
    lastShown = line;
  });
  worker.on("active", (job) => o.log(`worker: ${describeJob(job)} started`));
  worker.on("completed", (job) => {
    const s = ((job.finishedOn ?? Date.now()) - (job.processedOn ?? Date.now())) / 1000;
    o.log(`worker: ${describeJob(job)} done in ${s.toFixed(1)} s`);
    lastShown = "";
    if (o.maxCells !== undefined && ++cells >= o.maxCells) void worker.close();
  });
  worker.on("failed", (job, e) => o.log(`worker: ${describeJob(job)} failed: ${e.message.split("\n")[0]}`));

  const stopped = new Promise<void>((resolve) => {
    let asked = false;
    const stop = () => {
      if (asked) {
        // A second signal: do not wait for the cell (its lock expires and another worker runs it).
        o.log("worker: stopping now");
        process.exit(130);
      }
      asked = true;
      o.log("worker: stopping after the current cell (again to stop now)");
      void worker.close().then(resolve);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    worker.once("closed", resolve);
  });
  try {
    await readyWithin(o.target, worker.waitUntilReady(), o.connectTimeoutMs ?? 10000, () => lastError);
  } catch (e) {
    await worker.close(true).catch(() => undefined);
    throw e;
  }
  o.log(
    `worker: ${name} takes cells from ${o.target.url} (libtorch threads: ${process.env.VAEGUARD_THREADS ?? "all cores"})`,
  );
  void worker.run().catch((e: unknown) => {
    lastError = e;
  });
  await stopped;
}
