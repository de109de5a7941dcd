/**
 * The thread side of job-threads.ts: a job thread sets its own libtorch
 * thread count and random generator, says it is ready, waits for the main
 * thread's "go" (so that no thread changes process-wide settings while
 * another computes), runs its job and reports how it ended. Progress and log
 * lines go to the main thread, which owns the terminal.
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { setNumThreads } from "./engine.js";
import { ownGenerator } from "./concurrency.js";
import type { ProgressFactory } from "./progress.js";
import { toJobError, type MainMessage, type ThreadData, type ThreadMessage } from "./job-protocol.js";

export interface JobContext<D> {
  /** What the main thread gave this job. */
  data: D;
  /** Progress bars, drawn by the main thread. */
  progress: ProgressFactory;
  log: (line: string) => void;
  /** One of the job's own messages to the main thread. */
  send(message: unknown): void;
  /** The main thread's next job message (in the order sent). */
  receive(): Promise<unknown>;
}

/** Whether this module runs as a job thread of `role` (and not imported by the main thread). */
export function isJobThread(role: string): boolean {
  return !isMainThread && parentPort !== null && (workerData as ThreadData | undefined)?.role === role;
}

/** When this module runs as a job thread of `role`: set up, wait for "go", run `body`, report. */
export function jobThreadMain<D>(role: string, body: (ctx: JobContext<D>) => Promise<void>): void {
  if (!isJobThread(role)) return;
  const port = parentPort!;
  const wd = workerData as ThreadData;
  const post = (m: ThreadMessage) => port.postMessage(m);
  const inbox: unknown[] = [];
  let waiting: ((message: unknown) => void) | undefined;
  let go!: () => void;
  const started = new Promise<void>((resolve) => (go = resolve));
  port.on("message", (m: MainMessage) => {
    if (m.kind === "go") go();
    else if (waiting) {
      const w = waiting;
      waiting = undefined;
      w(m.message);
    } else inbox.push(m.message);
  });
  let bars = 0;
  const ctx: JobContext<D> = {
    data: wd.data as D,
    progress: (label, total, unit) => {
      const bar = bars++;
      post({ kind: "progress-start", bar, label, total, unit });
      return {
        update: (done, fields) => post({ kind: "progress", bar, done, fields }),
        stop: () => post({ kind: "progress-stop", bar }),
      };
    },
    log: (line) => post({ kind: "log", line }),
    send: (message) => post({ kind: "job", message }),
    receive: () =>
      inbox.length > 0 ? Promise.resolve(inbox.shift()) : new Promise<unknown>((resolve) => (waiting = resolve)),
  };
  const end = () => {
    port.removeAllListeners("message");
    port.unref();
  };
  try {
    setNumThreads(wd.threads);
    ownGenerator();
  } catch (e) {
    post({ kind: "failed", error: toJobError(e) });
    end();
    return;
  }
  post({ kind: "ready" });
  void started
    .then(() => body(ctx))
    .then(
      () => post({ kind: "finished" }),
      (e: unknown) => post({ kind: "failed", error: toJobError(e) }),
    )
    .finally(end);
}
