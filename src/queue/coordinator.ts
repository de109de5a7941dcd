/**
 * The coordinator's side of a distributed sweep: a CellRunner that puts every
 * unfinished cell in the queue as a job with a deterministic id, follows them
 * through QueueEvents, and hands each result to the sweep, which merges and
 * stores it exactly as for a run in one process.
 *
 * Events can be lost (Redis restarted, a coordinator that was not running), so
 * every unfinished cell is also looked up in Redis at start and every few
 * seconds: a finished job is taken from there, a job that Redis lost is queued
 * again. A cell that fails for good, or a Redis that stays unreachable, stops
 * the run with one line; the sweep then keeps what it has and reports no table.
 */
import { Job, Queue, QueueEvents } from "bullmq";
import { VaeguardError } from "../core/errors.js";
import { describeTask, type CellTask } from "../eval/cells.js";
import type { EvaluationSetup } from "../eval/evaluation.js";
import type { CellEvents, CellRunner } from "../eval/sweep.js";
import { QUEUE_NAME, probe, readyWithin, unreachable, type RedisTarget } from "./connection.js";
import { JOB_NAME, jobData, jobId, type CellJobData, type CellJobProgress, type CellJobResult } from "./jobs.js";

export interface QueueRunnerOptions {
  target: RedisTarget;
  setup: EvaluationSetup;
  /** Remove this run's jobs (finished or waiting) before queueing them again. */
  restart?: boolean;
  /** Stop with one line when Redis has been unreachable for this long (default 60 s). */
  timeoutMs?: number;
  /** Besides the events, look every unfinished cell up in Redis this often (default 5 s). */
  pollMs?: number;
  /** Attempts of a cell whose run throws, before the whole run stops (default 3). */
  attempts?: number;
  log: (line: string) => void;
}

type CellJob = Job<CellJobData, CellJobResult>;

function isCellResult(x: unknown): x is CellJobResult {
  const r = x as CellJobResult;
  return typeof x === "object" && x !== null && typeof r.images === "number" && typeof r.correct === "object";
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Close cleanly when Redis answers; drop the connections when it does not, so the process can exit. */
async function closeOrDrop(parts: { close(): Promise<void>; disconnect(): Promise<void> }[]): Promise<void> {
  const closed = Promise.allSettled(parts.map((p) => p.close())).then(() => true);
  if (!(await Promise.race([closed, sleep(3000).then(() => false)]))) {
    // disconnect() can itself wait on a socket that is already gone; never let it hold the process.
    await Promise.race([Promise.allSettled(parts.map((p) => p.disconnect())), sleep(3000)]);
  }
}

export class QueueRunner implements CellRunner {
  readonly saveIntervalMs = 1000;

  constructor(private readonly o: QueueRunnerOptions) {}

  get where(): string {
    return `on the workers of ${this.o.target.url}`;
  }

  async run(tasks: CellTask[], events: CellEvents): Promise<void> {
    if (tasks.length === 0) return;
    const { target } = this.o;
    const timeoutMs = this.o.timeoutMs ?? 60000;
    await probe(target);
    let lastError: unknown;
    const queue = new Queue<CellJobData, CellJobResult>(QUEUE_NAME, { connection: target.connection });
    const queueEvents = new QueueEvents(QUEUE_NAME, { connection: target.connection });
    queue.on("error", (e) => (lastError = e));
    queueEvents.on("error", (e) => (lastError = e));
    try {
      await readyWithin(
        target,
        Promise.all([queue.waitUntilReady(), queueEvents.waitUntilReady()]),
        Math.min(timeoutMs, 10000),
        () => lastError,
      );
      await new Follower(this.o, queue, queueEvents, tasks, events, () => lastError).follow(timeoutMs);
    } finally {
      await closeOrDrop([queueEvents, queue]);
    }
  }
}

/** The state of one run's jobs, as the coordinator sees them. */
class Follower {
  private readonly byId = new Map<string, CellTask>();
  private readonly finished = new Set<string>();
  private fatal: Error | undefined;
  private wake: () => void = () => undefined;
  private readonly attempts: number;

  constructor(
    private readonly o: QueueRunnerOptions,
    private readonly queue: Queue<CellJobData, CellJobResult>,
    private readonly queueEvents: QueueEvents,
    tasks: CellTask[],
    private readonly events: CellEvents,
    private readonly lastError: () => unknown,
  ) {
    for (const t of tasks) this.byId.set(jobId(o.setup, t), t);
    this.attempts = o.attempts ?? 3;
  }

  async follow(timeoutMs: number): Promise<void> {
    this.listen();
    const ids = [...this.byId.keys()];
    const t0 = Date.now();
    if (this.o.restart) await this.removeJobs(ids);
    await this.add(ids);
    await this.check(ids, true);
    const already = this.finished.size;
    this.o.log(
      `queue: ${ids.length} cells queued on ${this.o.target.url} in ${Date.now() - t0} ms` +
        (already > 0 ? ` (${already} already finished there)` : "") +
        "; start workers with `vaeguard worker --queue " +
        this.o.target.url +
        "`",
    );
    const pollMs = this.o.pollMs ?? 5000;
    let lastCheck = Date.now();
    let downSince: number | undefined;
    const client = await this.queue.client;
    let checking = false;
    while (this.finished.size < this.byId.size) {
      if (this.fatal) throw this.fatal;
      await Promise.race([sleep(Math.min(pollMs, 1000)), new Promise<void>((r) => (this.wake = r))]);
      if (this.fatal) throw this.fatal;
      if (this.finished.size === this.byId.size) break;
      if (client.status !== "ready") {
        downSince ??= Date.now();
        if (Date.now() - downSince > timeoutMs) {
          throw unreachable(
            this.o.target,
            this.lastError() ?? "closed",
            `lost the connection for ${Math.round(timeoutMs / 1000)} s to`,
          );
        }
        continue;
      }
      if (downSince !== undefined) {
        this.o.log(`queue: Redis at ${this.o.target.url} is back; looking up every unfinished cell`);
        downSince = undefined;
        lastCheck = 0;
      }
      if (Date.now() - lastCheck >= pollMs && !checking) {
        // In the background: a check caught by Redis going away must not stall this loop's timeout.
        lastCheck = Date.now();
        checking = true;
        void this.check(this.unfinished(), false)
          .catch(() => undefined)
          .finally(() => (checking = false));
      }
    }
  }

  private unfinished(): string[] {
    return [...this.byId.keys()].filter((id) => !this.finished.has(id));
  }

  private listen(): void {
    const ours = (id: string) => (this.finished.has(id) ? undefined : this.byId.get(id));
    this.queueEvents.on("active", ({ jobId: id }) => {
      const t = ours(id);
      if (t) this.events.started(t);
    });
    this.queueEvents.on("progress", ({ jobId: id, data }) => {
      const t = ours(id);
      if (t) this.events.images(t, Number((data as CellJobProgress)?.images ?? 0));
    });
    this.queueEvents.on("completed", ({ jobId: id, returnvalue }) => {
      if (!ours(id)) return;
      // An event without a usable result (seen after Redis restarts): read the job itself.
      if (isCellResult(returnvalue)) this.finish(id, returnvalue);
      else void this.check([id], false).catch(() => undefined);
    });
    this.queueEvents.on("stalled", ({ jobId: id }) => {
      const t = ours(id);
      if (t) this.events.retried(t, "its worker stopped renewing the lock: dead or cut off from Redis");
    });
    this.queueEvents.on("waiting", ({ jobId: id, prev }) => {
      const t = ours(id);
      if (t && prev === "failed") void this.retriedAfterError(id, t);
    });
    this.queueEvents.on("delayed", ({ jobId: id }) => {
      const t = ours(id);
      if (t) void this.retriedAfterError(id, t);
    });
    this.queueEvents.on("failed", ({ jobId: id }) => {
      if (ours(id)) void this.check([id], false).catch(() => undefined);
    });
  }

  private async retriedAfterError(id: string, t: CellTask): Promise<void> {
    const job = await Job.fromId<CellJobData, CellJobResult>(this.queue, id).catch(() => undefined);
    this.events.retried(t, `an attempt failed: ${job?.failedReason?.split("\n")[0] ?? "no reason given"}`);
  }

  private finish(id: string, value: unknown): void {
    if (this.finished.has(id)) return;
    const t = this.byId.get(id)!;
    if (!isCellResult(value)) {
      const shown = JSON.stringify(value)?.slice(0, 80);
      this.stop(
        new VaeguardError(`cell ${describeTask(t)}: the job's result in Redis is not a cell result (${shown})`),
      );
      return;
    }
    this.finished.add(id);
    this.events.done(t, value);
    this.wake();
  }

  private stop(e: Error): void {
    this.fatal ??= e;
    this.wake();
  }

  private async add(ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += 500) {
      await this.queue.addBulk(
        ids.slice(i, i + 500).map((id) => ({
          name: JOB_NAME,
          data: jobData(this.o.setup, this.byId.get(id)!),
          opts: {
            jobId: id,
            attempts: this.attempts,
            backoff: { type: "fixed", delay: 1000 },
            // Kept: a restarted coordinator, or a later run with the same cells, takes them from here.
            removeOnComplete: false,
            removeOnFail: false,
          },
        })),
      );
    }
  }

  private async removeJobs(ids: string[]): Promise<void> {
    for (const id of ids) {
      const job = await Job.fromId(this.queue, id);
      if (!job) continue;
      if ((await job.getState()) === "active") {
        throw new VaeguardError(
          `cell ${describeTask(this.byId.get(id)!)} is running on a worker; wait for it to finish before --restart`,
        );
      }
      await job.remove();
    }
  }

  /**
   * Look jobs up in Redis: take finished results, stop on a cell that failed for
   * good (at the start: give an earlier run's failed cell another chance), and
   * queue again the jobs Redis no longer has.
   */
  private async check(ids: string[], atStart: boolean): Promise<void> {
    const missing: string[] = [];
    await Promise.all(
      ids.map(async (id) => {
        const job: CellJob | undefined = await Job.fromId<CellJobData, CellJobResult>(this.queue, id);
        if (!job) {
          missing.push(id);
          return;
        }
        const state = await job.getState();
        if (state === "completed" && !isCellResult(job.returnvalue)) {
          // Seen after Redis restarted empty under a running worker: the job came back without its
          // result. Cells are deterministic, so running it again gives the very numbers it lost.
          await job.remove();
          missing.push(id);
        } else if (state === "completed") {
          this.finish(id, job.returnvalue);
        } else if (state === "failed") {
          if (atStart) {
            await job.retry("failed");
          } else {
            const by = job.processedBy ? ` on worker ${job.processedBy}` : "";
            const reason = job.failedReason?.split("\n")[0] ?? "no reason given";
            this.stop(new VaeguardError(`cell ${describeTask(this.byId.get(id)!)} failed${by}: ${reason}`));
          }
        } else if (state === "active" && atStart) {
          this.events.started(this.byId.get(id)!);
        }
      }),
    );
    if (missing.length > 0) {
      if (!atStart) {
        this.o.log(
          `queue: Redis no longer has ${missing.length} unfinished cells (restarted without its data?); queued again`,
        );
      }
      await this.add(missing);
    }
  }
}
