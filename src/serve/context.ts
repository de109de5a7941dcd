/** What every route of one server shares: its models, batcher, metrics and limits. */
import type { ImageDataset } from "../data/dataset.js";
import { noGrad, tidy } from "../core/engine.js";
import type { EvaluationResult } from "../report/types.js";
import type { DynamicBatcher } from "./batching.js";
import { HttpError } from "./errors.js";
import type { PixelImage } from "./images.js";
import type { ServeMetrics } from "./metrics.js";
import type { ServeModels, ServedDefense } from "./models.js";
import type { ModelRunner } from "./runner.js";

export interface ServeLimits {
  /** Largest request body in bytes. */
  bodyLimit: number;
  /** Most pixels of one image (decompression bombs). */
  maxPixels: number;
  /** Most images in one JSON batch request. */
  maxImagesPerRequest: number;
  /** Time a client has to send its whole request (milliseconds); slower ones get 408. */
  requestTimeoutMs: number;
}

export const DEFAULT_LIMITS: ServeLimits = {
  bodyLimit: 4 * 1024 * 1024,
  maxPixels: 2048 * 2048,
  maxImagesPerRequest: 64,
  requestTimeoutMs: 10000,
};

/** /v1/attack: on or off, and the most work one request may ask for. */
export interface AttackLimits {
  enabled: boolean;
  maxSteps: number;
  maxQueries: number;
  maxRestarts: number;
  maxEot: number;
}

export const DEFAULT_ATTACK_LIMITS: AttackLimits = {
  enabled: true,
  maxSteps: 100,
  maxQueries: 1000,
  maxRestarts: 2,
  maxEot: 10,
};

export interface ServeContext {
  models: ServeModels;
  /** Where the batches run: a model worker thread, or the main thread. */
  runner: ModelRunner;
  batcher: DynamicBatcher;
  metrics: ServeMetrics;
  limits: ServeLimits;
  attack: AttackLimits;
  /** Test images the page offers (MNIST test digits), when the classifier takes them. */
  samples?: SampleSet;
  /** A results file for the page's accuracy-versus-epsilon plot. */
  results?: EvaluationResult;
}

/** A served defense by the id a request names (its spec), or 400 listing the served ones. */
export function findDefense(ctx: ServeContext, id: unknown): ServedDefense {
  if (id === undefined) {
    return ctx.models.defenses.find((d) => d.id !== "none") ?? ctx.models.defenses[0];
  }
  const found = typeof id === "string" ? ctx.models.defenses.find((d) => d.id === id.trim()) : undefined;
  if (!found) {
    throw new HttpError(
      400,
      "unknown_defense",
      `Unknown defense ${JSON.stringify(id)}; this server has ${ctx.models.defenses.map((d) => d.id).join(", ")}`,
    );
  }
  return found;
}

/** Labelled test images held as plain arrays (no tensors kept alive for the page). */
export interface SampleSet {
  name: string;
  source: string;
  classNames: readonly string[];
  items: { image: PixelImage; label: number }[];
}

/** The first `limit` images of a data set as a SampleSet. */
export function sampleSet(ds: ImageDataset, limit: number): SampleSet {
  const [n, c, h, w] = ds.images.dims;
  const count = Math.min(n, limit);
  const { pixels, labels } = noGrad(() =>
    tidy(() => ({
      pixels: ds.images.narrow(0, 0, count).float().contiguous().dataSync() as Float32Array,
      labels: Array.from(ds.labels.narrow(0, 0, count).dataSync() as BigInt64Array, Number),
    })),
  );
  const size = c * h * w;
  return {
    name: ds.name,
    source: ds.source,
    classNames: ds.classNames,
    items: labels.map((label, i) => ({
      image: { data: pixels.slice(i * size, (i + 1) * size), shape: [c, h, w] as [number, number, number] },
      label,
    })),
  };
}
