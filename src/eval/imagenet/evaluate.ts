/**
 * Step 4 of the NIPS 2017 experiment: gray-box FGSM and I-FGSM (the paper's
 * setting: the attacker differentiates through the classifier and does not
 * know the defense) against the columns of Tables 6 and 7, scored per image
 * against the true labels.
 *
 * The outer loop runs over batches of evaluation images and the inner one
 * over every (attack, epsilon) point, so whenever the run stops, the images
 * done so far have every point: a run cut short still gives complete tables
 * on fewer images, and a later run with the same settings goes on from there.
 * Per image and point the results file keeps the relative L2 difference and
 * each column's prediction; it is written atomically after every batch.
 *
 * Each VAE column reconstructs all patches of the whole batch of images in
 * one call (chunked only to bound memory, see PatchVaeDefense). The ensemble
 * column averages the pixels of the four VAE columns' outputs, the very
 * reconstructions those columns were scored on.
 */
import { readResultsJson } from "../../io/results-file.js";
import { dispose, manualSeed, noGrad, tidy } from "../../core/engine.js";
import { VaeguardError } from "../../core/errors.js";
import { tensor, type Tensor } from "../../core/tensor.js";
import { createAttack } from "../../attacks/index.js";
import type { Attack } from "../../attacks/types.js";
import type { ImageFolderEntry } from "../../data/image-folder.js";
import type { Nips2017Split } from "../../data/nips2017.js";
import { deriveSeed } from "../../data/random.js";
import { JpegDefense, NoDefense, PatchVaeDefense, type Defense } from "../../defenses/index.js";
import type { ImageClassifier } from "../../models/classifiers.js";
import type { ConvVae } from "../../models/vae.js";
import { writeJsonAtomic } from "../../io/atomic.js";
import { silentProgress, type ProgressFactory } from "../../core/progress.js";
import type { ResultRow } from "../results.js";
import { relativeL2 } from "../metrics.js";
import { loadEvaluationImages } from "./data.js";
import { VAE_COLUMNS, type PatchSize } from "./settings.js";

export const ENSEMBLE = "Ensemble";

export type AttackKey = "fgsm" | "ifgsm";
export const ATTACK_TITLES: Record<AttackKey, string> = { fgsm: "FGSM", ifgsm: "I-FGSM" };

/** One (attack, epsilon) point; epsilon 0 is the clean point, shared by both tables. */
export interface EvaluationPoint {
  attack: AttackKey | "clean";
  epsilon: number;
}

export function pointKey(p: EvaluationPoint): string {
  return p.attack === "clean" ? "clean" : `${p.attack}@${p.epsilon}`;
}

/** The columns of Tables 6 and 7 for the VAEs at hand: No defense, JPEG 10, JPEG 23, VAE columns, Ensemble. */
export function buildColumns(vaes: ReadonlyMap<PatchSize, ConvVae>): Defense[] {
  const cols: Defense[] = [new NoDefense(), new JpegDefense({ quality: 10 }), new JpegDefense({ quality: 23 })];
  for (const c of VAE_COLUMNS) {
    const vae = vaes.get(c.patchSize);
    if (vae) cols.push(new PatchVaeDefense(vae, { patchSize: c.patchSize, stride: c.stride }));
  }
  return cols;
}

export function columnNames(columns: readonly Defense[]): string[] {
  const vaes = columns.filter((c) => c instanceof PatchVaeDefense).length;
  return [...columns.map((c) => c.name), ...(vaes >= 2 ? [ENSEMBLE] : [])];
}

interface ImageResult {
  /** Relative L2 difference between the clean and the attacked image. */
  l2: number;
  /** Top-1 prediction per column (columnNames order). */
  pred: number[];
}

interface ResultsFile {
  format: "vaeguard-imagenet/1";
  fingerprint: Record<string, unknown>;
  columns: string[];
  /** pointKey -> ImageId -> result. */
  points: Record<string, Record<string, ImageResult>>;
}

export interface EvaluateOptions {
  classifier: ImageClassifier;
  split: Nips2017Split;
  /** Evaluation images, in order (a prefix of the evaluation half). */
  entries: readonly ImageFolderEntry[];
  columns: Defense[];
  points: EvaluationPoint[];
  ifgsmSteps: number;
  batchSize: number;
  seed: number;
  resultsFile: string;
  /** What must match for a resume (model, VAE checkpoints, settings). */
  fingerprint: Record<string, unknown>;
  restart: boolean;
  /** Start no new batch after this many seconds (the images done so far are kept; a later run continues). */
  maxSeconds?: number;
  /**
   * Evaluate only batches b with b mod count = index (0-based): several
   * processes share the work, each with its own results file. Batches and
   * seeds are those of an unsharded run, so the numbers are the same.
   */
  shard?: { index: number; count: number };
  /** Results files of shards to take finished images from (same settings required). */
  mergeFiles?: readonly string[];
  quiet?: boolean;
  /** Progress over the images (default: nothing). */
  progress?: ProgressFactory;
  log: (line: string) => void;
}

export interface EvaluationResults {
  columns: string[];
  /** Images with every point done, in order. */
  images: ImageFolderEntry[];
  /** pointKey -> per image (same order as images): l2 and predictions. */
  perImage: Map<string, ImageResult[]>;
  seconds: number;
}

function stringHash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

function loadResults(path: string, fingerprint: Record<string, unknown>, columns: string[]): ResultsFile | undefined {
  const parsed = readResultsJson(path) as ResultsFile | undefined;
  if (parsed === undefined) return undefined;
  if (parsed.format !== "vaeguard-imagenet/1" || typeof parsed.points !== "object" || parsed.points === null) {
    throw new VaeguardError(`${path}: not a vaeguard NIPS 2017 results file; delete it or pass --restart`);
  }
  if (
    JSON.stringify(parsed.fingerprint) !== JSON.stringify(fingerprint) ||
    JSON.stringify(parsed.columns) !== JSON.stringify(columns)
  ) {
    throw new VaeguardError(
      `${path}: was made with other settings (model, VAEs, seed or attack settings); use another --out, delete it or pass --restart`,
    );
  }
  return parsed;
}

/** Predictions of the classifier (no gradients). */
function predict(classifier: ImageClassifier, x: Tensor): number[] {
  return tidy(() => noGrad(() => classifier.forward(x).argmax(1).toArray() as number[]));
}

/** Predictions of every column on attacked images `adv`. */
async function predictColumns(
  classifier: ImageClassifier,
  columns: readonly Defense[],
  adv: Tensor,
): Promise<number[][]> {
  const out: number[][] = [];
  let sum: Tensor | null = null;
  let members = 0;
  try {
    for (const d of columns) {
      const purified = await d.apply(adv);
      try {
        out.push(predict(classifier, purified));
        if (d instanceof PatchVaeDefense) {
          const prev = sum as Tensor | null;
          sum = prev ? tidy(() => prev.add(purified)) : tidy(() => purified.clone());
          prev?.dispose();
          members++;
        }
      } finally {
        if (purified !== adv) purified.dispose();
      }
    }
    if (members >= 2) {
      const s = sum!;
      out.push(tidy(() => predict(classifier, s.div(members))));
    }
  } finally {
    sum?.dispose();
  }
  return out;
}

function makeAttack(classifier: ImageClassifier, p: EvaluationPoint, steps: number): Attack | undefined {
  if (p.attack === "clean") return undefined;
  return p.attack === "fgsm"
    ? createAttack("fgsm", classifier, { eps: p.epsilon })
    : createAttack("ifgsm", classifier, { eps: p.epsilon, steps });
}

/**
 * The results store to continue from: the results file unless restarting,
 * plus any image results the shard files have that it lacks (same settings
 * required, checked through the fingerprint).
 */
function openResultsStore(o: EvaluateOptions, fingerprint: Record<string, unknown>, columns: string[]): ResultsFile {
  const previous = o.restart ? undefined : loadResults(o.resultsFile, fingerprint, columns);
  const store: ResultsFile = previous ?? { format: "vaeguard-imagenet/1", fingerprint, columns, points: {} };
  for (const p of o.points) store.points[pointKey(p)] ??= {};
  for (const f of o.restart ? [] : (o.mergeFiles ?? [])) {
    const shard = loadResults(f, fingerprint, columns);
    if (!shard) continue;
    let taken = 0;
    for (const p of o.points) {
      for (const [id, r] of Object.entries(shard.points[pointKey(p)] ?? {})) {
        if (store.points[pointKey(p)][id] === undefined) {
          store.points[pointKey(p)][id] = r;
          taken++;
        }
      }
    }
    if (taken > 0) o.log(`evaluate: took ${taken} image results from ${f}`);
  }
  return store;
}

/** Attack one batch at every point it still lacks and record every column's predictions in the store. */
async function evaluateBatch(
  o: EvaluateOptions,
  store: ResultsFile,
  batch: ImageFolderEntry[],
  start: number,
): Promise<void> {
  const x = await loadEvaluationImages(o.split, batch);
  const y = tensor(
    BigInt64Array.from(batch, (e) => BigInt(e.label)),
    [batch.length],
  );
  try {
    for (const p of o.points) {
      const slot = store.points[pointKey(p)];
      if (batch.every((e) => slot[e.id] !== undefined)) continue;
      // Seeded per (point, batch): a resumed run draws the same latent noise as an uninterrupted one.
      manualSeed(deriveSeed(o.seed, stringHash(pointKey(p)), start));
      const attack = makeAttack(o.classifier, p, o.ifgsmSteps);
      const adv = attack ? await attack.generate(x, y) : x;
      try {
        const l2 = attack ? relativeL2(x, adv) : new Float32Array(batch.length);
        const preds = await predictColumns(o.classifier, o.columns, adv);
        batch.forEach((e, i) => {
          slot[e.id] = { l2: Math.round(l2[i] * 1e6) / 1e6, pred: preds.map((col) => col[i]) };
        });
      } finally {
        if (adv !== x) adv.dispose();
      }
    }
  } finally {
    dispose([x, y]);
  }
}

/** Only a prefix of the images done: a later, longer run extends the same prefix. */
function donePrefix(
  o: EvaluateOptions,
  store: ResultsFile,
  isDone: (id: string) => boolean,
): Pick<EvaluationResults, "images" | "perImage"> {
  const firstMissing = o.entries.findIndex((e) => !isDone(e.id));
  const images = firstMissing < 0 ? [...o.entries] : o.entries.slice(0, firstMissing);
  const perImage = new Map<string, ImageResult[]>();
  for (const p of o.points) {
    const slot = store.points[pointKey(p)];
    perImage.set(
      pointKey(p),
      images.map((e) => slot[e.id]),
    );
  }
  return { images, perImage };
}

/** Run (or resume) the evaluation; returns every image's results. */
export async function evaluateImagenet(o: EvaluateOptions): Promise<EvaluationResults> {
  const t0 = performance.now();
  const columns = columnNames(o.columns);
  const fingerprint = {
    ...o.fingerprint,
    points: o.points.map(pointKey),
    ifgsmSteps: o.ifgsmSteps,
    batchSize: o.batchSize,
    seed: o.seed,
  };
  const store = openResultsStore(o, fingerprint, columns);
  const isDone = (id: string) => o.points.every((p) => store.points[pointKey(p)][id] !== undefined);
  const already = o.entries.filter((e) => isDone(e.id)).length;
  if (already > 0) o.log(`evaluate: resuming ${o.resultsFile} (${already} of ${o.entries.length} images done)`);

  o.classifier.eval();
  const bar = (o.quiet ? silentProgress : (o.progress ?? silentProgress))(
    `evaluate ${o.points.length} points x ${columns.length} columns`,
    o.entries.length,
    "images",
  );
  bar.update(already);
  for (let start = 0; start < o.entries.length; start += o.batchSize) {
    const batch = o.entries.slice(start, start + o.batchSize);
    if (o.shard && Math.floor(start / o.batchSize) % o.shard.count !== o.shard.index) continue;
    if (batch.every((e) => isDone(e.id))) continue;
    if (o.maxSeconds !== undefined && (performance.now() - t0) / 1000 >= o.maxSeconds) {
      o.log(`evaluate: time cap of ${(o.maxSeconds / 60).toFixed(0)} min reached; stopping before image ${start + 1}`);
      break;
    }
    await evaluateBatch(o, store, batch, start);
    // Written after every batch so an interrupted run resumes from here.
    writeJsonAtomic(o.resultsFile, store);
    bar.update(o.entries.filter((e) => isDone(e.id)).length);
    // Let Node run the finalizers of disposed tensor handles between batches.
    await new Promise((r) => setImmediate(r));
  }
  bar.stop();
  writeJsonAtomic(o.resultsFile, store);
  const { images, perImage } = donePrefix(o, store, isDone);
  return { columns, images, perImage, seconds: (performance.now() - t0) / 1000 };
}

/** Table rows (one per point and attack; the clean point is epsilon 0 of both tables): accuracy against the labels. */
export function resultRows(
  results: EvaluationResults,
  points: readonly EvaluationPoint[],
  labels: readonly number[],
): ResultRow[] {
  const n = results.images.length;
  const attacks = [...new Set(points.map((p) => p.attack).filter((a): a is AttackKey => a !== "clean"))];
  const rows: ResultRow[] = [];
  const rowOf = (attack: AttackKey, p: EvaluationPoint): ResultRow => {
    const per = results.perImage.get(pointKey(p))!;
    const accuracy: Record<string, number> = {};
    results.columns.forEach((c, j) => {
      accuracy[c] = n === 0 ? 0 : per.reduce((a, r, i) => a + (r.pred[j] === labels[i] ? 1 : 0), 0) / n;
    });
    return {
      attack: ATTACK_TITLES[attack],
      mode: "gray-box",
      epsilon: p.epsilon,
      relL2: n === 0 ? 0 : per.reduce((a, r) => a + r.l2, 0) / n,
      accuracy,
    };
  };
  const clean = points.find((p) => p.attack === "clean");
  for (const a of attacks) {
    if (clean) rows.push(rowOf(a, clean));
    for (const p of points.filter((q) => q.attack === a).sort((u, v) => u.epsilon - v.epsilon)) rows.push(rowOf(a, p));
  }
  return rows;
}
