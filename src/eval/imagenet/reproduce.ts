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
 * 5. report: tables beside the paper's, plots, loss curves, picture grid,
 *    the paper's claims checked (report.ts).
 */
import type { ProgressFactory } from "../../core/progress.js";
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { getNumThreads } from "../../core/engine.js";
import { ArgumentError } from "../../core/errors.js";
import { checkInt, checkNumber } from "../../core/validate.js";
import type { BundlePaths } from "../../report/bundle.js";
import type { ResultRow } from "../results.js";
import { checkClaims, cleanAcceptance, type AcceptanceCheck, type ClaimCheck } from "./claims.js";
import { loadImagenetClassifier, modelName } from "./classifier.js";
import { loadEvaluationImages, loadTrainingPatches, splitImages } from "./data.js";
import { buildColumns, evaluateImagenet, resultRows, type EvaluationPoint } from "./evaluate.js";
import { gridHeaders, pictureGrid } from "./grid.js";
import { writeImagenetReport } from "./report.js";
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
  paths?: BundlePaths;
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

export async function reproduceImagenet(o: ImagenetOptions): Promise<ImagenetResult> {
  const log = o.log ?? (o.quiet ? () => {} : (l: string) => process.stderr.write(l + "\n"));
  const patchSizes = o.patchSizes ?? [...PATCH_SIZES];
  if (!o.trainOnly && !o.model) throw new ArgumentError("--model is required (a classifier file) unless --train-only");
  if (o.samples !== undefined) checkInt(o.samples, "samples", 1);
  const points = evaluationPoints(o);
  const ifgsmSteps = checkInt(o.ifgsmSteps ?? IFGSM_STEPS, "ifgsmSteps", 1);
  const t0 = performance.now();

  // 1. Data.
  const split = splitImages(resolve(o.images));
  log(`data: ${split.description}`);
  // 3 (checked early). The classifier: a bad model file fails before an hour of VAE training.
  const model = o.trainOnly ? undefined : loadImagenetClassifier(o.model!, o.classOrder);
  const tData = (performance.now() - t0) / 1000;

  // 2. Patch VAEs.
  const t1 = performance.now();
  let trained: Awaited<ReturnType<typeof trainPatchVaes>>;
  try {
    const source = await loadTrainingPatches(split);
    trained = await trainPatchVaes({
      images: source,
      imageIds: split.training.map((e) => e.id),
      patchSizes,
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
  } catch (e) {
    model?.classifier.dispose?.();
    throw e;
  }
  const { models, summaries } = trained;
  const tTrain = (performance.now() - t1) / 1000;
  const result: ImagenetResult = {
    vaes: summaries,
    split: { rule: split.rule, evaluation: split.evaluation.length, training: split.training.length },
  };
  try {
    if (!model) return result;
    const classifier = model.classifier;
    classifier.eval();

    // 4. Evaluation.
    const limit = o.samples ?? (o.quick ? QUICK_SAMPLES : undefined);
    const entries = limit === undefined ? split.evaluation : split.evaluation.slice(0, limit);
    const columns = buildColumns(models);
    const shard = o.shard;
    if (shard) {
      checkInt(shard.count, "shard count", 1);
      checkInt(shard.index, "shard index", 1, shard.count);
    }
    const resultsFile = join(
      o.outDir,
      shard ? `evaluation.shard${shard.index}-of-${shard.count}.json` : "evaluation.json",
    );
    const shardFiles = shard
      ? []
      : (existsSync(o.outDir) ? readdirSync(o.outDir) : [])
          .filter((f) => /^evaluation\.shard\d+-of-\d+\.json$/.test(f))
          .sort()
          .map((f) => join(o.outDir, f));
    const stat = statSync(model.path);
    const evaluation = await evaluateImagenet({
      classifier,
      split,
      entries,
      columns,
      points,
      ifgsmSteps,
      batchSize: o.evalBatchSize,
      seed: o.seed,
      resultsFile,
      fingerprint: {
        experiment: "nips2017",
        split: split.rule,
        model: {
          name: modelName(model),
          bytes: stat.size,
          classOrder: model.classOrder ? basename(model.classOrder) : null,
        },
        vaes: summaries.map((v) => ({ checkpoint: basename(v.checkpoint), epochs: v.history.length })),
      },
      restart: o.restart,
      maxSeconds: o.evalMinutes === undefined ? undefined : checkNumber(o.evalMinutes, "evalMinutes", 0) * 60,
      ...(shard ? { shard: { index: shard.index - 1, count: shard.count } } : { mergeFiles: shardFiles }),
      quiet: o.quiet,
      progress: o.progress,
      log,
    });
    if (shard) {
      log(
        `evaluate: shard ${shard.index} of ${shard.count} done; run without --shard to merge the shards and write the report`,
      );
      return result;
    }
    const labels = evaluation.images.map((e) => e.label);
    if (evaluation.images.length === 0) throw new ArgumentError("No image was evaluated (the time cap came first)");
    const rows = resultRows(evaluation, points, labels);
    const claims = checkClaims({ rows, results: evaluation, points, labels });
    const acceptance = cleanAcceptance(rows);

    // 5. Report.
    const t3 = performance.now();
    const k = Math.min(o.gridImages ?? 4, evaluation.images.length);
    const gridEntries = evaluation.images.slice(0, k);
    const gridImages = await loadEvaluationImages(split, gridEntries);
    const gridPoint = points.find((p) => p.attack === "ifgsm") ?? points.find((p) => p.attack === "fgsm")!;
    const gridEps =
      gridPoint.attack === "ifgsm"
        ? (points.filter((p) => p.attack === "ifgsm").find((p) => p.epsilon >= 0.03)?.epsilon ?? gridPoint.epsilon)
        : gridPoint.epsilon;
    let cells;
    try {
      cells = await pictureGrid({
        classifier,
        columns,
        images: gridImages,
        labels: gridEntries.map((e) => e.label),
        ids: gridEntries.map((e) => e.id),
        attack: gridPoint.attack as "fgsm" | "ifgsm",
        epsilon: gridEps,
        ifgsmSteps,
        classNames: model.classNames.map((n) => n.split(",")[0]),
        seed: o.seed,
      });
    } finally {
      gridImages.dispose();
    }
    const paths = await writeImagenetReport({
      outDir: o.outDir,
      rows,
      columns: evaluation.columns,
      images: evaluation.images.length,
      evaluationHalf: split.evaluation.length,
      splitDescription: split.description,
      classifierDescription: model.description,
      classOrder: model.classOrder,
      vaes: summaries,
      training: { beta: o.beta, lr: o.lr, flip: o.flip, convergence: o.convergence ?? 0.01 },
      claims,
      acceptance,
      ifgsmSteps,
      grid: {
        cells,
        headers: gridHeaders(columns),
        caption: `The first ${k} evaluation images, clean and under ${gridPoint.attack === "ifgsm" ? "I-FGSM" : "FGSM"} epsilon ${gridEps}: the input, then each defense's output, with the classifier's prediction.`,
      },
      seconds: {
        data: tData,
        training: tTrain,
        evaluation: evaluation.seconds,
        report: (performance.now() - t3) / 1000,
      },
      threads: getNumThreads(),
      seed: o.seed,
      command: o.command,
    });
    return { ...result, rows, images: evaluation.images.length, claims, acceptance, paths };
  } finally {
    for (const m of models.values()) m.dispose();
    model?.classifier.dispose?.();
  }
}
