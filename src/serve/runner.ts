/**
 * Where the models run. The routes hand whole batches (from the batcher) to a
 * ModelRunner and never touch libtorch themselves:
 *
 * - `WorkerRunner` (the default for models loaded from files): a worker
 *   thread (model-worker.ts) that loads its own copy of the same files and
 *   runs every batch, so Node's main thread only does HTTP, codecs and
 *   batching while libtorch computes on another core. Pixels cross as one
 *   flat float32 array per batch, transferred both ways (no copies besides
 *   stacking the batch). A worker that dies (crash, exit) fails the batches
 *   it held with a 500 in the usual error shape and is started again for the
 *   next batch; nothing waits on it forever.
 * - `InlineRunner`: the batches run on the main thread (models built in
 *   memory, or `--model-thread main`).
 */
import { Worker } from "node:worker_threads";
import { ArgumentError, ShapeError } from "../core/errors.js";
import type { AttackChoice } from "../eval/config.js";
import type { DefenseView } from "../defenses/index.js";
import {
  attackBatch,
  classifyBatch,
  flattenImages,
  purifyBatch,
  splitClassified,
  splitImages,
  type AttackJob,
  type AttackOutcome,
  type FlatBatch,
} from "./compute.js";
import { HttpError } from "./errors.js";
import type { PixelImage } from "./images.js";
import type { ModelFiles, ServeModels } from "./models.js";

/** An attack's settings by name (the defense by its id), so they can cross to a worker. */
export interface AttackRequest {
  choice: AttackChoice;
  eps: number;
  mode: DefenseView;
  defense: string;
  eot?: number;
}

export interface ModelRunner {
  /** "worker" or "main": where the batches run. */
  readonly where: "worker" | "main";
  /** Tensors alive where the batches run, beyond the main thread's own (the worker's, after its last batch). */
  readonly liveTensors: number;
  /** Resolves once the models are loaded where they run (rejects if they cannot be). */
  ready(): Promise<void>;
  purify(defense: string, images: PixelImage[]): Promise<PixelImage[]>;
  /** result[image][defense], the defenses in the order of ServeModels.defenses. */
  classify(images: PixelImage[]): Promise<Float32Array[][]>;
  attack(request: AttackRequest, jobs: AttackJob[]): Promise<AttackOutcome[]>;
  close(): Promise<void>;
}

function servedDefense(models: ServeModels, id: string) {
  const d = models.defenses.find((x) => x.id === id);
  if (!d) throw new Error(`no served defense "${id}"`);
  return d.defense;
}

/** Batches on the main thread, with the server's own models. */
export class InlineRunner implements ModelRunner {
  readonly where = "main" as const;
  readonly liveTensors = 0;
  constructor(private readonly models: ServeModels) {}
  async ready(): Promise<void> {}
  purify(defense: string, images: PixelImage[]): Promise<PixelImage[]> {
    return purifyBatch(servedDefense(this.models, defense), images);
  }
  classify(images: PixelImage[]): Promise<Float32Array[][]> {
    return classifyBatch(
      this.models.classifier,
      this.models.defenses.map((d) => d.defense),
      images,
    );
  }
  attack(r: AttackRequest, jobs: AttackJob[]): Promise<AttackOutcome[]> {
    return attackBatch(
      this.models.classifier,
      { choice: r.choice, eps: r.eps, mode: r.mode, defense: servedDefense(this.models, r.defense), eot: r.eot },
      jobs,
    );
  }
  async close(): Promise<void> {}
}

/** Messages to the worker. */
export type WorkerJob =
  | { id: number; op: "purify"; defense: string; batch: FlatBatch }
  | { id: number; op: "classify"; batch: FlatBatch }
  | { id: number; op: "attack"; request: AttackRequest; batch: FlatBatch; labels: number[] };

/** An error as it crosses from the worker: its class by name, so 400s stay 400s. */
export interface WorkerError {
  name: string;
  message: string;
  status?: number;
  code?: string;
  headers?: Record<string, string>;
}

/** Messages from the worker. */
export type WorkerReply =
  | { type: "ready"; live: number }
  | { type: "load-error"; error: WorkerError }
  | {
      type: "result";
      id: number;
      /** Tensors alive in the worker after the batch (its models' included). */
      live: number;
      batch?: FlatBatch;
      /** classify: [N, defenses, K] */
      probs?: Float32Array;
      defenses?: number;
      outcomes?: AttackOutcome[];
    }
  | { type: "error"; id: number; live: number; error: WorkerError };

export interface WorkerData {
  role: "vaeguard-serve-models";
  files: ModelFiles;
  threads?: number;
  seed: number;
}

export function toWorkerError(e: unknown): WorkerError {
  if (e instanceof HttpError) {
    return { name: "HttpError", message: e.message, status: e.status, code: e.code, headers: e.headers };
  }
  if (e instanceof Error) return { name: e.constructor.name, message: e.message };
  return { name: "Error", message: String(e) };
}

/** The worker's error as the class the error handler maps (ArgumentError and ShapeError: 400; others: 500). */
export function fromWorkerError(e: WorkerError): Error {
  switch (e.name) {
    case "HttpError":
      return new HttpError(e.status ?? 500, e.code ?? "internal", e.message, e.headers ?? {});
    case "ArgumentError":
      return new ArgumentError(e.message);
    case "ShapeError":
      return new ShapeError(e.message);
    default:
      return new Error(`model worker: ${e.name}: ${e.message}`);
  }
}

const workerFailed = () =>
  new HttpError(
    500,
    "model_failed",
    "The model worker stopped while computing this request; it was not computed (see the server log)",
  );

export interface WorkerRunnerOptions {
  files: ModelFiles;
  /** libtorch threads of the worker (default: libtorch's own). */
  threads?: number;
  seed?: number;
  /** The worker's script (tests replace it); default model-worker.js beside this file. */
  script?: URL;
  /** Where failures of the worker are reported (default stderr). */
  log?: (message: string) => void;
}

interface Pending {
  resolve: (m: WorkerReply & { type: "result" }) => void;
  reject: (e: unknown) => void;
}

export class WorkerRunner implements ModelRunner {
  readonly where = "worker" as const;
  private worker: Worker | undefined;
  private started: Promise<Worker> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  private readonly log: (message: string) => void;
  /** Workers started so far (1 unless one died). */
  starts = 0;
  liveTensors = 0;

  constructor(private readonly options: WorkerRunnerOptions) {
    this.log = options.log ?? ((m) => process.stderr.write(`vaeguard serve: ${m}\n`));
  }

  ready(): Promise<void> {
    return this.start().then(() => undefined);
  }

  /** The running worker, started (again) when there is none. */
  private start(): Promise<Worker> {
    if (this.closed) return Promise.reject(new HttpError(503, "shutting_down", "The server is shutting down"));
    if (this.started) return this.started;
    this.starts++;
    const data: WorkerData = {
      role: "vaeguard-serve-models",
      files: this.options.files,
      threads: this.options.threads,
      seed: this.options.seed ?? 0,
    };
    const worker = new Worker(this.options.script ?? new URL("./model-worker.js", import.meta.url), {
      workerData: data,
    });
    worker.unref();
    this.worker = worker;
    const started = new Promise<Worker>((resolve, reject) => {
      let ready = false;
      worker.on("message", (m: WorkerReply) => {
        if (m.type === "ready") {
          ready = true;
          this.liveTensors = m.live;
          resolve(worker);
        } else if (m.type === "load-error") {
          ready = true;
          this.log(`the model worker could not load the models: ${m.error.name}: ${m.error.message}`);
          reject(new HttpError(500, "model_failed", "The model worker could not load the models (see the server log)"));
          void worker.terminate();
        } else this.settle(m);
      });
      worker.on("error", (e) => {
        this.log(`the model worker failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        if (!ready) reject(workerFailed());
      });
      worker.on("exit", (code) => {
        if (this.worker === worker) {
          this.liveTensors = 0;
          this.worker = undefined;
          this.started = undefined;
        }
        if (!ready) reject(workerFailed());
        if (this.pending.size > 0) {
          if (!this.closed)
            this.log(`the model worker exited (code ${code}) with ${this.pending.size} batch(es) unfinished`);
          const err = this.closed ? new HttpError(503, "shutting_down", "The server is shutting down") : workerFailed();
          for (const p of this.pending.values()) p.reject(err);
          this.pending.clear();
        }
      });
    });
    // A start that failed is retried by the next batch.
    started.catch(() => {
      if (this.started === started) this.started = undefined;
    });
    this.started = started;
    return started;
  }

  private settle(m: WorkerReply): void {
    if (m.type !== "result" && m.type !== "error") return;
    const p = this.pending.get(m.id);
    this.liveTensors = m.live;
    if (!p) return;
    this.pending.delete(m.id);
    if (this.pending.size === 0) this.worker?.unref();
    if (m.type === "error") p.reject(fromWorkerError(m.error));
    else p.resolve(m);
  }

  private async send(job: WorkerJob): Promise<WorkerReply & { type: "result" }> {
    const worker = await this.start();
    // It may have died since it was ready (its exit already failed what it held): this batch too.
    if (worker !== this.worker)
      throw this.closed ? new HttpError(503, "shutting_down", "The server is shutting down") : workerFailed();
    return new Promise((resolve, reject) => {
      this.pending.set(job.id, { resolve, reject });
      // Waiting on the worker keeps the process alive; an idle worker does not.
      worker.ref();
      try {
        worker.postMessage(job, [job.batch.data.buffer as ArrayBuffer]);
      } catch (e) {
        this.pending.delete(job.id);
        reject(e);
      }
    });
  }

  async purify(defense: string, images: PixelImage[]): Promise<PixelImage[]> {
    const r = await this.send({ id: this.nextId++, op: "purify", defense, batch: flattenImages(images) });
    return splitImages(r.batch!);
  }

  async classify(images: PixelImage[]): Promise<Float32Array[][]> {
    const r = await this.send({ id: this.nextId++, op: "classify", batch: flattenImages(images) });
    return splitClassified(r.probs!, images.length, r.defenses!);
  }

  async attack(request: AttackRequest, jobs: AttackJob[]): Promise<AttackOutcome[]> {
    const r = await this.send({
      id: this.nextId++,
      op: "attack",
      request,
      batch: flattenImages(jobs.map((j) => j.image)),
      labels: jobs.map((j) => j.label),
    });
    return r.outcomes!;
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    this.started = undefined;
    if (w) await w.terminate();
  }
}
