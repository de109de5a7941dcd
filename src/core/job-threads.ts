/**
 * Jobs side by side in worker threads of this process (the main side; the
 * thread side is job-thread.ts): each thread runs one job with its own
 * libtorch thread count and its own random generator, reports progress and
 * log lines through the main thread, and the first failure stops the others.
 *
 * Why worker threads and not child processes: the jobs share one copy of what
 * they read (training data and test images are handed over without a copy,
 * concurrency.ts), one libtorch and one CPU block cache, which keeps the
 * whole `reproduce mnist` under 1 GB where two processes would each hold
 * their own data and libraries; the threads die with the process, so a killed
 * run leaves no orphan behind, and the bench's peak resident memory stays one
 * process's. What libtorch keeps per process is made per job: the random
 * generator (ownGenerator), and the thread counts, which are set before any
 * job computes (each thread sets its own and reports ready; the main thread
 * sends "go" once all have), as libtorch's and OpenBLAS's settings are
 * process-wide and unsafe to change while another thread computes. Grad mode
 * is per thread in libtorch already.
 */
import { Worker } from "node:worker_threads";
import { InternalError } from "./errors.js";
import { getNumThreads, setNumThreads } from "./engine.js";
import { getBlasThreads, setBlasThreads } from "./concurrency.js";
import { silentProgress, type Progress, type ProgressFactory } from "./progress.js";
import { fromJobError, type MainMessage, type ThreadData, type ThreadMessage } from "./job-protocol.js";

export interface JobThreadsOptions {
  /** The compiled module of the job threads (it calls jobThreadMain with `role`). */
  module: URL;
  role: string;
  /** One entry per thread: what its job is given. */
  data: unknown[];
  /** libtorch intra-op threads of each job (and OpenBLAS's, process-wide, while the jobs run). */
  threadsPerJob: number;
  progress?: ProgressFactory;
  log?: (line: string) => void;
  /** The jobs' own messages, by thread index. */
  onMessage?: (thread: number, message: unknown) => void;
}

interface ThreadState {
  worker: Worker;
  ready: boolean;
  finished: boolean;
  exited: boolean;
  bars: Map<number, Progress>;
}

export class JobThreads {
  private readonly threads: ThreadState[] = [];
  private failure: Error | undefined;
  private settle: { resolve(): void; reject(e: Error): void } | undefined;
  private readonly allExited: Promise<void>;
  private readyWaiter: (() => void) | undefined;
  private readonly restore: () => void;

  private constructor(private readonly o: JobThreadsOptions) {
    // Saved before the first thread changes the process-wide counts; restored once all have exited.
    const mainThreads = getNumThreads();
    const blas = getBlasThreads();
    if (blas !== undefined) setBlasThreads(o.threadsPerJob);
    this.restore = () => {
      setNumThreads(mainThreads);
      if (blas !== undefined) setBlasThreads(blas);
    };
    this.allExited = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    // A rejection nobody awaits yet (a thread failed during start) must not crash the process.
    this.allExited.catch(() => undefined);
  }

  /** Starts one thread per data entry; resolves once every thread has set its threads and generator. */
  static async start(o: JobThreadsOptions): Promise<JobThreads> {
    if (o.data.length === 0) throw new InternalError("JobThreads.start: no jobs to start");
    const jobs = new JobThreads(o);
    o.data.forEach((data, i) => jobs.spawn(i, data));
    await jobs.ready();
    for (const t of jobs.threads) t.worker.postMessage({ kind: "go" } satisfies MainMessage);
    return jobs;
  }

  /** Sends a job message to one thread. */
  post(thread: number, message: unknown): void {
    this.threads[thread].worker.postMessage({ kind: "job", message } satisfies MainMessage);
  }

  /** Resolves when every job finished; rejects with the first failure once the other threads are stopped. */
  finished(): Promise<void> {
    return this.allExited;
  }

  /** Stops every thread now (their jobs are abandoned) and waits until they have exited. */
  async stop(reason?: Error): Promise<void> {
    this.fail(reason ?? new InternalError("the jobs were stopped"));
    await this.allExited.catch(() => undefined);
  }

  private spawn(index: number, data: unknown): void {
    const workerData: ThreadData = { role: this.o.role, threads: this.o.threadsPerJob, data };
    const worker = new Worker(this.o.module, { workerData });
    const state: ThreadState = { worker, ready: false, finished: false, exited: false, bars: new Map() };
    this.threads.push(state);
    worker.on("message", (m: ThreadMessage) => this.receive(index, state, m));
    worker.on("error", (e) => this.fail(e instanceof Error ? e : new InternalError(String(e))));
    worker.on("exit", (code) => {
      state.exited = true;
      for (const bar of state.bars.values()) bar.stop();
      state.bars.clear();
      // A thread's last messages (its failure) come before its exit; a turn later, no failure means it died.
      setImmediate(() => {
        if (!state.finished) this.fail(new InternalError(`job thread ${index + 1} stopped early (exit code ${code})`));
        this.checkAllExited();
      });
    });
  }

  /** Resolves once every thread is ready; rejects, after every thread has exited, when one failed first. */
  private ready(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.readyWaiter = () => {
        if (this.failure || !this.threads.every((t) => t.ready)) return;
        this.readyWaiter = undefined;
        resolve();
      };
      this.allExited.catch((e: Error) => reject(e));
      this.readyWaiter();
    });
  }

  private receive(index: number, state: ThreadState, m: ThreadMessage): void {
    switch (m.kind) {
      case "ready":
        state.ready = true;
        this.readyWaiter?.();
        return;
      case "log":
        (this.o.log ?? ((l: string) => process.stderr.write(l + "\n")))(m.line);
        return;
      case "progress-start":
        state.bars.set(m.bar, (this.o.progress ?? silentProgress)(m.label, m.total, m.unit));
        return;
      case "progress":
        state.bars.get(m.bar)?.update(m.done, m.fields);
        return;
      case "progress-stop":
        state.bars.get(m.bar)?.stop();
        state.bars.delete(m.bar);
        return;
      case "job":
        if (!this.failure) this.o.onMessage?.(index, m.message);
        return;
      case "failed":
        this.fail(fromJobError(m.error));
        return;
      case "finished":
        state.finished = true;
        return;
    }
  }

  /** The first failure wins; every thread still running is stopped. */
  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const t of this.threads) if (!t.exited) void t.worker.terminate();
    this.checkAllExited();
  }

  private checkAllExited(): void {
    if (!this.threads.every((t) => t.exited) || this.settle === undefined) return;
    const settle = this.settle;
    this.settle = undefined;
    this.restore();
    if (this.failure) settle.reject(this.failure);
    else settle.resolve();
  }
}
