/**
 * The paper's NIPS 2017 experiment (Luo & Pfister 2018, sections 5 and 6,
 * Tables 3, 6 and 7) on its own 1,000 images with their true labels, as named
 * steps:
 *
 * 1. data: split the images into an evaluation and a training half (data.ts);
 * 2. train: the patch VAEs of Table 3 on the training half (train-vaes.ts);
 * 3. classifier: load the classifier and map the labels to its outputs (classifier.ts);
 * 4. evaluate: FGSM and I-FGSM, gray-box, against the columns of Tables 6
 *    and 7, per image and resumable (evaluate.ts);
 * 5. report: the paper's claims checked and the picture grid, in a draft
 *    that report/imagenet.ts writes (tables beside the paper's, plots, loss
 *    curves): the command calls it, so eval/ never writes a report.
 */
import type { ProgressFactory } from "../../core/progress.js";
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { getNumThreads } from "../../core/engine.js";
import { ArgumentError } from "../../core/errors.js";
import { checkInt, checkNumber } from "../../core/validate.js";
import type { ConvVae } from "../../models/vae.js";
import type { Defense } from "../../defenses/index.js";
import type { GridCell, ResultRow } from "../results.js";
import { checkClaims, cleanAcceptance, type AcceptanceCheck, type ClaimCheck } from "./claims.js";
import { loadImagenetClassifier, modelName, type ImagenetClassifier } from "./classifier.js";
import { loadEvaluationImages, loadTrainingPatches, splitImages } from "./data.js";
import type { Nips2017Split } from "../../data/nips2017.js";
import {
  buildColumns,
  evaluateImagenet,
  resultRows,
  type EvaluationPoint,
  type EvaluationResults,
} from "./evaluate.js";
import { gridHeaders, pictureGrid } from "./grid.js";
import {
  DEFAULT_FGSM_EPS,
  DEFAULT_IFGSM_EPS,
  IFGSM_STEPS,
  PATCH_SIZES,
  QUICK_FGSM_EPS,
  QUICK_IFGSM_EPS,
  type PatchSize,
} from "./settings.js";
import { trainPatchVaes, type PatchVaeSummary } from "./train-vaes.js";

/** Images evaluated by --quick. */
export const QUICK_SAMPLES = 4;

export interface ImagenetOptions {
  /** Folder in the NIPS 2017 layout (dev_dataset.csv, images/). */
  images: string;
  /** Classifier file (required unless trainOnly). */
  model?: string;
  /** For a 1000-class model: its output order as WordNet ids, one per line (default: a *wnids.txt beside the model). */
  classOrder?: string;
  /** Evaluate the first this-many images of the evaluation half (default all). */
  samples?: number;
  patchSizes?: PatchSize[];
  epochPatches?: Partial<Record<PatchSize, number>>;
  trainMinutes?: Partial<Record<PatchSize, number>>;
  trainCpuMinutes?: Partial<Record<PatchSize, number>>;
  maxEpochs?: number;
  convergence?: number;
  beta: number;
  lr: number;
  batchSize?: Partial<Record<PatchSize, number>>;
  flip: boolean;
  fgsmEpsilons?: number[];
  ifgsmEpsilons?: number[];
  attacks?: ("fgsm" | "ifgsm")[];
  ifgsmSteps?: number;
  evalBatchSize: number;
  /** Start no new evaluation batch after this many minutes (a later run continues). */
  evalMinutes?: number;
  /** Evaluate one share of the images in this process (1-based index of count) and write no report. */
  shard?: { index: number; count: number };
  gridImages?: number;
  /** Train (or resume) the VAEs and stop. */
  trainOnly?: boolean;
  quick: boolean;
  outDir: string;
  checkpointDir: string;
  seed: number;
  restart: boolean;
  command: string;
  quiet?: boolean;
  /** Progress of training and evaluation (default: nothing). */
  progress?: ProgressFactory;
  log?: (line: string) => void;
}

export interface ImagenetResult {
  vaes: PatchVaeSummary[];
  split: { rule: string; evaluation: number; training: number };
  /** The rest is absent with trainOnly. */
  rows?: ResultRow[];
  images?: number;
  claims?: ClaimCheck[];
  acceptance?: { undefended: number; checks: AcceptanceCheck[] };
  /** The report folder's contents (absent with a shard); report/imagenet.ts writes it. */
  report?: ReportData;
}

/** Step 5's output: what report/imagenet.ts writes. */
export interface ReportData {
  outDir: string;
  rows: ResultRow[];
  columns: string[];
  images: number;
  /** Images in the evaluation half (the run may have done fewer). */
  evaluationHalf: number;
  splitDescription: string;
  classifierDescription: string;
  classOrder?: string;
  vaes: PatchVaeSummary[];
  training: { beta: number; lr: number; flip: boolean; convergence: number };
  claims: ClaimCheck[];
  acceptance: { undefended: number; checks: AcceptanceCheck[] };
  ifgsmSteps: number;
  grid?: { cells: GridCell[][]; headers: string[]; caption: string };
  seconds: { data: number; training: number; evaluation: number; report: number };
  threads: number;
  seed: number;
  command: string;
}

/** The (attack, epsilon) points: the clean point once, then each attack's epsilons above 0. */
export function evaluationPoints(
  o: Pick<ImagenetOptions, "fgsmEpsilons" | "ifgsmEpsilons" | "attacks" | "quick">,
): EvaluationPoint[] {
  const attacks = o.attacks ?? ["fgsm", "ifgsm"];
  const fgsm = o.fgsmEpsilons ?? (o.quick ? QUICK_FGSM_EPS : DEFAULT_FGSM_EPS);
  const ifgsm = o.ifgsmEpsilons ?? (o.quick ? QUICK_IFGSM_EPS : DEFAULT_IFGSM_EPS);
  const points: EvaluationPoint[] = [{ attack: "clean", epsilon: 0 }];
  const add = (attack: "fgsm" | "ifgsm", eps: number[]) => {
    for (const e of [...new Set(eps)].sort((a, b) => a - b)) {
      checkNumber(e, `${attack} epsilon`, 0, 1);
      if (e > 0) points.push({ attack, epsilon: e });
    }
  };
  if (attacks.includes("fgsm")) add("fgsm", fgsm);
  if (attacks.includes("ifgsm")) add("ifgsm", ifgsm);
  if (points.length === 1) throw new ArgumentError("No attack to run");
  return points;
}

/** What the steps after training share. */
interface Trained {
  o: ImagenetOptions;
  log: (line: string) => void;
  split: Nips2017Split;
  model: ImagenetClassifier;
  vaes: Map<PatchSize, ConvVae>;
  summaries: PatchVaeSummary[];
  columns: Defense[];
  points: EvaluationPoint[];
  ifgsmSteps: number;
}

/** Step 2: the patch VAEs of Table 3 on the training half (trained, resumed or reused). */
async function trainStep(o: ImagenetOptions, split: Nips2017Split, log: (line: string) => void) {
  const source = await loadTrainingPatches(split);
  return trainPatchVaes({
    images: source,
    imageIds: split.training.map((e) => e.id),
    patchSizes: o.patchSizes ?? [...PATCH_SIZES],
    epochPatches: o.epochPatches,
    maxMinutes: o.trainMinutes,
    maxCpuMinutes: o.trainCpuMinutes,
    maxEpochs: o.maxEpochs,
    convergence: o.convergence,
    beta: o.beta,
    lr: o.lr,
    batchSize: o.batchSize,
    flip: o.flip,
    seed: o.seed,
    quick: o.quick,
    checkpointDir: o.checkpointDir,
    restart: o.restart,
    quiet: o.quiet,
    progress: o.progress,
    log,
  });
}

/** The results file of this process (its shard's, or the whole run's); without a shard, the shard files to merge. */
function resultsFiles(o: ImagenetOptions): { resultsFile: string; mergeFiles?: string[] } {
  const shard = o.shard;
  if (shard) {
    checkInt(shard.count, "shard count", 1);
    checkInt(shard.index, "shard index", 1, shard.count);
    return { resultsFile: join(o.outDir, `evaluation.shard${shard.index}-of-${shard.count}.json`) };
  }
  const mergeFiles = (existsSync(o.outDir) ? readdirSync(o.outDir) : [])
    .filter((f) => /^evaluation\.shard\d+-of-\d+\.json$/.test(f))
    .sort()
    .map((f) => join(o.outDir, f));
  return { resultsFile: join(o.outDir, "evaluation.json"), mergeFiles };
}

/** Step 4: FGSM and I-FGSM, gray-box, per image, resumable (and, with a shard, one share of the images). */
async function evaluateStep(t: Trained): Promise<EvaluationResults> {
  const { o, model } = t;
  const limit = o.samples ?? (o.quick ? QUICK_SAMPLES : undefined);
  const entries = limit === undefined ? t.split.evaluation : t.split.evaluation.slice(0, limit);
  const shard = o.shard;
  const stat = statSync(model.path);
  return evaluateImagenet({
    classifier: model.classifier,
    split: t.split,
    entries,
    columns: t.columns,
    points: t.points,
    ifgsmSteps: t.ifgsmSteps,
    batchSize: o.evalBatchSize,
    seed: o.seed,
    ...resultsFiles(o),
    fingerprint: {
      experiment: "nips2017",
      split: t.split.rule,
      model: {
        name: modelName(model),
        bytes: stat.size,
        classOrder: model.classOrder ? basename(model.classOrder) : null,
      },
      vaes: t.summaries.map((v) => ({ checkpoint: basename(v.checkpoint), epochs: v.history.length })),
    },
    restart: o.restart,
    maxSeconds: o.evalMinutes === undefined ? undefined : checkNumber(o.evalMinutes, "evalMinutes", 0) * 60,
    ...(shard ? { shard: { index: shard.index - 1, count: shard.count } } : {}),
    quiet: o.quiet,
    progress: o.progress,
    log: t.log,
  });
}

/** Step 5, first part: the picture grid of the first evaluation images (clean, attacked, each defense's output). */
async function gridStep(t: Trained, evaluation: EvaluationResults): Promise<NonNullable<ReportData["grid"]>> {
  const { o, points } = t;
  const k = Math.min(o.gridImages ?? 4, evaluation.images.length);
  const gridEntries = evaluation.images.slice(0, k);
  const gridImages = await loadEvaluationImages(t.split, gridEntries);
  const gridPoint = points.find((p) => p.attack === "ifgsm") ?? points.find((p) => p.attack === "fgsm")!;
  const gridEps =
    gridPoint.attack === "ifgsm"
      ? (points.filter((p) => p.attack === "ifgsm").find((p) => p.epsilon >= 0.03)?.epsilon ?? gridPoint.epsilon)
      : gridPoint.epsilon;
  try {
    const cells = await pictureGrid({
      classifier: t.model.classifier,
      columns: t.columns,
      images: gridImages,
      labels: gridEntries.map((e) => e.label),
      ids: gridEntries.map((e) => e.id),
      attack: gridPoint.attack as "fgsm" | "ifgsm",
      epsilon: gridEps,
      ifgsmSteps: t.ifgsmSteps,
      classNames: t.model.classNames.map((n) => n.split(",")[0]),
      seed: o.seed,
    });
    const attack = gridPoint.attack === "ifgsm" ? "I-FGSM" : "FGSM";
    return {
      cells,
      headers: gridHeaders(t.columns),
      caption: `The first ${k} evaluation images, clean and under ${attack} epsilon ${gridEps}: the input, then each defense's output, with the classifier's prediction.`,
    };
  } finally {
    gridImages.dispose();
  }
}

/** Step 5: rows, the paper's claims checked, the acceptance check and the grid, as the report's draft. */
async function reportStep(t: Trained, evaluation: EvaluationResults, seconds: { data: number; training: number }) {
  const { o } = t;
  const labels = evaluation.images.map((e) => e.label);
  if (evaluation.images.length === 0) throw new ArgumentError("No image was evaluated (the time cap came first)");
  const rows = resultRows(evaluation, t.points, labels);
  const claims = checkClaims({ rows, results: evaluation, points: t.points, labels });
  const acceptance = cleanAcceptance(rows);
  const t0 = performance.now();
  const grid = await gridStep(t, evaluation);
  const report: ReportData = {
    outDir: o.outDir,
    rows,
    columns: evaluation.columns,
    images: evaluation.images.length,
    evaluationHalf: t.split.evaluation.length,
    splitDescription: t.split.description,
    classifierDescription: t.model.description,
    classOrder: t.model.classOrder,
    vaes: t.summaries,
    training: { beta: o.beta, lr: o.lr, flip: o.flip, convergence: o.convergence ?? 0.01 },
    claims,
    acceptance,
    ifgsmSteps: t.ifgsmSteps,
    grid,
    seconds: { ...seconds, evaluation: evaluation.seconds, report: (performance.now() - t0) / 1000 },
    threads: getNumThreads(),
    seed: o.seed,
    command: o.command,
  };
  return { rows, images: evaluation.images.length, claims, acceptance, report };
}

export async function reproduceImagenet(o: ImagenetOptions): Promise<ImagenetResult> {
  const log = o.log ?? (o.quiet ? () => {} : (l: string) => process.stderr.write(l + "\n"));
  if (!o.trainOnly && !o.model) throw new ArgumentError("--model is required (a classifier file) unless --train-only");
  if (o.samples !== undefined) checkInt(o.samples, "samples", 1);
  const points = evaluationPoints(o);
  const ifgsmSteps = checkInt(o.ifgsmSteps ?? IFGSM_STEPS, "ifgsmSteps", 1);
  const t0 = performance.now();
  // 1. Data; 3 (checked early), the classifier: a bad model file fails before an hour of VAE training.
  const split = splitImages(resolve(o.images));
  log(`data: ${split.description}`);
  const model = o.trainOnly ? undefined : loadImagenetClassifier(o.model!, o.classOrder);
  const seconds = { data: (performance.now() - t0) / 1000, training: 0 };
  const t1 = performance.now();
  let trained: Awaited<ReturnType<typeof trainStep>>;
  try {
    trained = await trainStep(o, split, log);
  } catch (e) {
    model?.classifier.dispose?.();
    throw e;
  }
  seconds.training = (performance.now() - t1) / 1000;
  const { models: vaes, summaries } = trained;
  const result: ImagenetResult = {
    vaes: summaries,
    split: { rule: split.rule, evaluation: split.evaluation.length, training: split.training.length },
  };
  try {
    if (!model) return result;
    model.classifier.eval();
    const t = { o, log, split, model, vaes, summaries, columns: buildColumns(vaes), points, ifgsmSteps };
    const evaluation = await evaluateStep(t);
    if (o.shard) {
      log(
        `evaluate: shard ${o.shard.index} of ${o.shard.count} done; run without --shard to merge the shards and write the report`,
      );
      return result;
    }
    return { ...result, ...(await reportStep(t, evaluation, seconds)) };
  } finally {
    for (const m of vaes.values()) m.dispose();
    model?.classifier.dispose?.();
  }
}
