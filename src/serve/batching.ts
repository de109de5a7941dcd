/**
 * Dynamic batching: concurrent requests for the same computation (same key:
 * same model, defense, attack settings, image shape) are gathered into one
 * libtorch batch. A batch never starts in the middle of a turn of the event
 * loop: it starts at the end of the turn (setImmediate), so every request
 * read in the same turn joins it, at no cost in latency when the model is
 * idle. An item waits at most `windowMs` more for company (default 0), unless
 * a batch is already running: then items keep gathering until a slot frees,
 * which is what makes throughput grow with load. (The model runs on the main
 * thread, so nothing is read while a batch runs; what arrived meanwhile is
 * read in the next turn, before the next batch starts.)
 *
 * Bounded: at most `concurrency` batches run at once, at most `queueLimit`
 * items wait; past that `submit` fails at once with a 503 and Retry-After
 * (never unbounded memory), and an item that waited longer than `timeoutMs`
 * is answered with a 503 instead of being computed late.
 */
import { checkInt, checkNumber } from "../core/validate.js";
import { HttpError } from "./errors.js";

export interface BatcherOptions {
  /** Items per batch at most. */
  maxBatchSize: number;
  /** How long the first item of a batch waits for others (milliseconds). */
  windowMs: number;
  /** Batches running at once. */
  concurrency: number;
  /** Items waiting (not yet running) across all keys at most. */
  queueLimit: number;
  /** An item that waited this long is rejected instead of run (milliseconds). */
  timeoutMs: number;
  /** Called with the size of every batch that starts. */
  onBatch?: (key: string, size: number) => void;
}

export const DEFAULT_BATCHER_OPTIONS: BatcherOptions = {
  maxBatchSize: 64,
  windowMs: 0,
  concurrency: 1,
  queueLimit: 512,
  timeoutMs: 30000,
};

/** Runs a whole batch; returns one result per item, in order. */
export type BatchRunner<T, R> = (items: T[]) => Promise<R[]>;

interface Waiting<T, R> {
  item: T;
  since: number;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

interface Group<T, R> {
  run: BatchRunner<T, R>;
  waiting: Waiting<T, R>[];
}

export function queueFull(limit: number): HttpError {
  return new HttpError(503, "overloaded", `The server is at capacity (${limit} images waiting); retry after a second`, {
    "retry-after": "1",
  });
}

export class DynamicBatcher {
  readonly options: BatcherOptions;
  private readonly groups = new Map<string, Group<unknown, unknown>>();
  private queued = 0;
  private running = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;

  constructor(options: Partial<BatcherOptions> = {}) {
    const o = { ...DEFAULT_BATCHER_OPTIONS, ...options };
    this.options = {
      maxBatchSize: checkInt(o.maxBatchSize, "maxBatchSize", 1),
      windowMs: checkNumber(o.windowMs, "windowMs", 0),
      concurrency: checkInt(o.concurrency, "concurrency", 1),
      queueLimit: checkInt(o.queueLimit, "queueLimit", 1),
      timeoutMs: checkNumber(o.timeoutMs, "timeoutMs", 1),
      onBatch: o.onBatch,
    };
  }

  /** Items waiting for a batch. */
  get depth(): number {
    return this.queued;
  }

  /** Batches running now. */
  get active(): number {
    return this.running;
  }

  /**
   * Queue all items of one request under `key`, or none of them: a request
   * that does not fit is refused whole (503), so it never half-runs.
   */
  submitAll<T, R>(key: string, items: T[], run: BatchRunner<T, R>): Promise<R[]> {
    if (this.closed) return Promise.reject(new HttpError(503, "shutting_down", "The server is shutting down"));
    if (this.queued + items.length > this.options.queueLimit) return Promise.reject(queueFull(this.options.queueLimit));
    let group = this.groups.get(key) as Group<T, R> | undefined;
    if (!group) {
      group = { run, waiting: [] };
      this.groups.set(key, group as Group<unknown, unknown>);
    }
    const now = Date.now();
    const promises = items.map(
      (item) =>
        new Promise<R>((resolve, reject) => {
          group!.waiting.push({ item, since: now, resolve, reject });
        }),
    );
    this.queued += items.length;
    this.pumpSoon();
    return Promise.all(promises);
  }

  submit<T, R>(key: string, item: T, run: BatchRunner<T, R>): Promise<R> {
    return this.submitAll(key, [item], run).then((r) => r[0]);
  }

  /** Refuse everything still waiting (the running batches finish). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    for (const g of this.groups.values()) {
      for (const w of g.waiting.splice(0)) w.reject(new HttpError(503, "shutting_down", "The server is shutting down"));
    }
    this.queued = 0;
  }

  private expire(now: number): void {
    for (const g of this.groups.values()) {
      while (g.waiting.length > 0 && now - g.waiting[0].since > this.options.timeoutMs) {
        const w = g.waiting.shift()!;
        this.queued--;
        w.reject(
          new HttpError(
            503,
            "timeout",
            `The request waited more than ${this.options.timeoutMs} ms for the model; retry later`,
            { "retry-after": "1" },
          ),
        );
      }
    }
  }

  /** The group to run next: full, or past its window, oldest first. */
  private nextReady(now: number): [string, Group<unknown, unknown>] | undefined {
    let best: [string, Group<unknown, unknown>] | undefined;
    for (const entry of this.groups) {
      const w = entry[1].waiting;
      if (w.length === 0) continue;
      const ready = w.length >= this.options.maxBatchSize || now - w[0].since >= this.options.windowMs;
      if (ready && (best === undefined || w[0].since < best[1].waiting[0].since)) best = entry;
    }
    return best;
  }

  /** Pump at the end of this turn of the event loop, once, whatever was submitted in it. */
  private pumpSoon(): void {
    if (this.immediate || this.closed) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.pump();
    });
  }

  private pump(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    const now = Date.now();
    this.expire(now);
    while (this.running < this.options.concurrency) {
      const next = this.nextReady(now);
      if (!next) break;
      const [key, group] = next;
      const batch = group.waiting.splice(0, this.options.maxBatchSize);
      if (group.waiting.length === 0) this.groups.delete(key);
      this.queued -= batch.length;
      this.running++;
      this.options.onBatch?.(key, batch.length);
      void this.execute(group.run, batch);
    }
    if (this.running < this.options.concurrency) {
      // Wake up when the oldest waiting item's window closes.
      let oldest = Infinity;
      for (const g of this.groups.values()) if (g.waiting.length > 0) oldest = Math.min(oldest, g.waiting[0].since);
      if (oldest < Infinity) {
        this.timer = setTimeout(() => this.pump(), Math.max(0, oldest + this.options.windowMs - now));
      }
    }
  }

  private async execute(run: BatchRunner<unknown, unknown>, batch: Waiting<unknown, unknown>[]): Promise<void> {
    try {
      const results = await run(batch.map((w) => w.item));
      if (results.length !== batch.length) {
        throw new Error(`batch runner returned ${results.length} results for ${batch.length} items`);
      }
      batch.forEach((w, i) => w.resolve(results[i]));
    } catch (e) {
      for (const w of batch) w.reject(e);
    } finally {
      this.running--;
      this.pumpSoon();
    }
  }
}
