/**
 * The paper's NIPS 2017 experiment (Luo & Pfister 2018, sections 5 and 6,
 * Tables 3, 6 and 7) on its own 1,000 images with their true labels, as named
 * steps:
 *
 * 1. data: split the images into an evaluation and a training half (data.ts);
 * 2. train: the patch VAEs of Table 3 on the training half (train-vaes.ts);
 * 3. classifier: check the classifier and how its outputs map to the labels (classifier.ts);
 * 4. evaluate: FGSM and I-FGSM, gray-box, against the columns of Tables 6
 *    and 7 (columns.ts), on the shared pipeline (../pipeline.ts) like every
 *    other reproduction: cells of (attack, epsilon, shard of images), each
 *    seeded from the cell alone and stored atomically in OUT/sweep-gray-box.json
 *    as it finishes, here or on the workers of a job queue;
 * 5. report: the paper's claims checked (paired tests on the cells' per-image
 *    predictions) and the picture grid, in a draft that report/imagenet.ts
 *    writes (tables beside the paper's, plots, loss curves): the command calls
 *    it, so eval/ never writes a report.
 */
import type { ProgressFactory } from "../../core/progress.js";
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { getNumThreads } from "../../core/engine.js";
import { ArgumentError } from "../../core/errors.js";
import { checkInt, checkNumber } from "../../core/validate.js";
import type { Nips2017Split } from "../../data/nips2017.js";
import type { EvaluationSetup } from "../evaluation.js";
import type { CellRunner } from "../sweep.js";
import { sweepModes, withPipeline, type Pipeline, type PipelineInputs, type SweepOutcome } from "../pipeline.js";
import type { GridCell, ResultRow } from "../results.js";
import { checkClaims, cleanAcceptance, type AcceptanceCheck, type ClaimCheck } from "./claims.js";
import { imagenetLoading, loadImagenetClassifier, modelName, type ImagenetClassifier } from "./classifier.js";
import { columnSpecs, tableAttacks, type AttackKey } from "./columns.js";
import { loadTrainingPatches, splitImages } from "./data.js";
import { gridHeaders, pictureGrid } from "./grid.js";
import { refuseOldResults } from "./legacy.js";
import { IFGSM_STEPS, PATCH_SIZES, type PatchSize } from "./settings.js";
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
  attacks?: AttackKey[];
  ifgsmSteps?: number;
  evalBatchSize: number;
  /** Images per cell, the unit of seeding, storage and distribution (default: evalBatchSize). */
  shardSize?: number;
  /** Where the cells run (default: in this process); given the sweep's setup. */
  runner?: (setup: EvaluationSetup) => CellRunner;
  /** Start no new cell after this many minutes (the report covers the first shards done; a later run continues). */
  evalMinutes?: number;
  /** Run one share of the cells in this process (1-based index of count; cells whose shard mod count is index - 1) and write no report. */
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

/** What the steps after training share. */
interface Trained {
  o: ImagenetOptions;
  log: (line: string) => void;
  split: Nips2017Split;
  /** The classifier's description and class names (its weights are the pipeline's). */
  model: Omit<ImagenetClassifier, "classifier">;
  summaries: PatchVaeSummary[];
}

/** Step 2: the patch VAEs of Table 3 on the training half (trained, resumed or reused); only their checkpoints are kept. */
async function trainStep(o: ImagenetOptions, split: Nips2017Split, log: (line: string) => void) {
  const source = await loadTrainingPatches(split);
  const trained = await trainPatchVaes({
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
  // The pipeline loads them again by content hash, as a queue worker does.
  for (const m of trained.models.values()) m.dispose();
  return trained.summaries;
}

/** Step 3, checked before any training: a bad model file fails at once; only its description is kept. */
function checkClassifier(o: ImagenetOptions): Trained["model"] | undefined {
  if (o.trainOnly) return undefined;
  const { classifier, ...model } = loadImagenetClassifier(o.model!, o.classOrder);
  classifier.dispose?.();
  return model;
}

/** The pipeline's inputs: the evaluation half, the classifier, the VAE checkpoints and the columns. */
function pipelineInputs(t: Trained): PipelineInputs {
  const { o } = t;
  const { defenses, titles } = columnSpecs(t.summaries.map((v) => v.patchSize));
  return {
    dataset: "nips2017",
    dataDir: resolve(o.images),
    samples: o.samples ?? (o.quick ? QUICK_SAMPLES : undefined),
    classifier: t.model.path,
    classifierLoading: imagenetLoading(o.model!, o.classOrder),
    patchVaes: Object.fromEntries(t.summaries.map((v) => [String(v.patchSize), v.checkpoint])),
    defenses,
    defenseTitles: titles,
    keepPredictions: true,
    // Gray-box: the attacks see the classifier only, so no EOT; one noise draw per image, as the paper.
    eot: 1,
    passes: 1,
    batchSize: o.evalBatchSize,
    seed: o.seed,
    shardSize: o.shardSize ?? o.evalBatchSize,
  };
}

/** Results files of the processes that ran shares of the cells (--shard k/n), to merge. */
function shareFiles(outDir: string): string[] {
  return (existsSync(outDir) ? readdirSync(outDir) : [])
    .filter((f) => /^sweep-gray-box\.shard\d+-of-\d+\.json$/.test(f))
    .sort()
    .map((f) => join(outDir, f));
}

/** Step 4: FGSM and I-FGSM, gray-box, on the shared sweep; partial with a share of the cells or a time cap. */
async function evaluateStep(t: Trained, p: Pipeline): Promise<SweepOutcome> {
  const { o } = t;
  const share = o.shard;
  if (share) {
    checkInt(share.count, "shard count", 1);
    checkInt(share.index, "shard index", 1, share.count);
  }
  return sweepModes(p, {
    modes: ["gray-box"],
    attacks: () => tableAttacks({ ...o, ifgsmSteps: checkInt(o.ifgsmSteps ?? IFGSM_STEPS, "ifgsmSteps", 1) }),
    epsilons: [0],
    out: o.outDir,
    restart: o.restart,
    resultsFile: (mode) =>
      join(o.outDir, share ? `sweep-${mode}.shard${share.index}-of-${share.count}.json` : `sweep-${mode}.json`),
    only: share ? (task) => task.cell.shard % share.count === share.index - 1 : undefined,
    mergeFrom: () => (share || o.restart ? [] : shareFiles(o.outDir)),
    maxSeconds: o.evalMinutes === undefined ? undefined : checkNumber(o.evalMinutes, "evalMinutes", 0) * 60,
    partial: share !== undefined || o.evalMinutes !== undefined,
    fingerprint: () => ({
      experiment: "nips2017",
      split: t.split.rule,
      model: {
        name: modelName(t.model),
        bytes: statSync(t.model.path).size,
        classOrder: t.model.classOrder ? basename(t.model.classOrder) : null,
      },
      vaes: t.summaries.map((v) => ({ checkpoint: basename(v.checkpoint), epochs: v.history.length })),
    }),
    gridImages: () => undefined,
    runner: o.runner,
    quiet: o.quiet,
    progress: o.progress,
    log: t.log,
  });
}

/** Step 5, first part: the picture grid of the first evaluation images (clean, attacked, each column's output). */
async function gridStep(t: Trained, p: Pipeline, images: number): Promise<NonNullable<ReportData["grid"]>> {
  const { o } = t;
  const attacks = tableAttacks({ ...o, ifgsmSteps: o.ifgsmSteps ?? IFGSM_STEPS });
  // I-FGSM at the first epsilon of at least 0.03 (else its first), or FGSM's first: a visible perturbation.
  const chosen = attacks.find((a) => a.kind === "ifgsm") ?? attacks[0];
  const eps = chosen.epsilons!.filter((e) => e > 0);
  const epsilon = chosen.kind === "ifgsm" ? (eps.find((e) => e >= 0.03) ?? eps[0]) : eps[0];
  const k = Math.min(o.gridImages ?? 4, images);
  const entries = t.split.evaluation.slice(0, k);
  const x = p.test.images.narrow(0, 0, k);
  try {
    const cells = await pictureGrid({
      classifier: p.classifier,
      columns: p.defenses,
      images: x,
      labels: entries.map((e) => e.label),
      ids: entries.map((e) => e.id),
      attack: chosen.kind as AttackKey,
      epsilon,
      ifgsmSteps: o.ifgsmSteps ?? IFGSM_STEPS,
      classNames: t.model.classNames.map((n) => n.split(",")[0]),
      seed: o.seed,
    });
    return {
      cells,
      headers: gridHeaders(p.defenses),
      caption: `The first ${k} evaluation images, clean and under ${chosen.name} epsilon ${epsilon}: the input, then each defense's output, with the classifier's prediction.`,
    };
  } finally {
    x.dispose();
  }
}

/** Step 5: the paper's claims (paired tests on the cells' predictions), the acceptance check and the grid, as the report's draft. */
async function reportStep(t: Trained, p: Pipeline, swept: SweepOutcome, seconds: { data: number; training: number }) {
  const { o } = t;
  if (swept.images === 0) throw new ArgumentError("No image was evaluated (the time cap came first)");
  const rows = swept.rows;
  const labels = t.split.evaluation.slice(0, swept.images).map((e) => e.label);
  const claims = checkClaims({ rows, predictions: swept.predictions!, labels });
  const acceptance = cleanAcceptance(rows);
  const t0 = performance.now();
  const grid = await gridStep(t, p, swept.images);
  const report: ReportData = {
    outDir: o.outDir,
    rows,
    columns: p.defenses.map((d) => d.name),
    images: swept.images,
    evaluationHalf: t.split.evaluation.length,
    splitDescription: t.split.description,
    classifierDescription: t.model.description,
    classOrder: t.model.classOrder,
    vaes: t.summaries,
    training: { beta: o.beta, lr: o.lr, flip: o.flip, convergence: o.convergence ?? 0.01 },
    claims,
    acceptance,
    ifgsmSteps: o.ifgsmSteps ?? IFGSM_STEPS,
    grid,
    seconds: { ...seconds, evaluation: swept.seconds, report: (performance.now() - t0) / 1000 },
    threads: getNumThreads(),
    seed: o.seed,
    command: o.command,
  };
  return { rows, images: swept.images, claims, acceptance, report };
}

/** Steps 4 and 5 on the pipeline: evaluate, then (without a share) the report's draft. */
async function evaluateAndReport(t: Trained, seconds: { data: number; training: number }) {
  return withPipeline(pipelineInputs(t), async (p) => {
    const swept = await evaluateStep(t, p);
    const share = t.o.shard;
    if (share) {
      t.log(
        `evaluate: shard ${share.index} of ${share.count} done; run without --shard to merge the shards and write the report`,
      );
      return {};
    }
    return reportStep(t, p, swept, seconds);
  });
}

export async function reproduceImagenet(o: ImagenetOptions): Promise<ImagenetResult> {
  const log = o.log ?? (o.quiet ? () => {} : (l: string) => process.stderr.write(l + "\n"));
  if (!o.trainOnly && !o.model) throw new ArgumentError("--model is required (a classifier file) unless --train-only");
  if (o.samples !== undefined) checkInt(o.samples, "samples", 1);
  if (!o.trainOnly) {
    tableAttacks({ ...o, ifgsmSteps: checkInt(o.ifgsmSteps ?? IFGSM_STEPS, "ifgsmSteps", 1) });
    refuseOldResults(o.outDir, o.restart);
  }
  const t0 = performance.now();
  // 1. Data; 3 (checked early), the classifier: a bad model file fails before an hour of VAE training.
  const split = splitImages(resolve(o.images));
  log(`data: ${split.description}`);
  const model = checkClassifier(o);
  const seconds = { data: (performance.now() - t0) / 1000, training: 0 };
  const t1 = performance.now();
  const summaries = await trainStep(o, split, log);
  seconds.training = (performance.now() - t1) / 1000;
  const result: ImagenetResult = {
    vaes: summaries,
    split: { rule: split.rule, evaluation: split.evaluation.length, training: split.training.length },
  };
  if (!model) return result;
  return { ...result, ...(await evaluateAndReport({ o, log, split, model, summaries }, seconds)) };
}
