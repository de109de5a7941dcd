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
import { resolve } from "node:path";
import { ArgumentError } from "../../core/errors.js";
import { checkInt } from "../../core/validate.js";
import { loadTrainingPatches, splitImages } from "./data.js";
import { PATCH_SIZES, type PatchSize } from "./settings.js";
import { trainPatchVaes, type PatchVaeSummary } from "./train-vaes.js";

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
  maxEpochs?: number;
  convergence?: number;
  beta: number;
  lr: number;
  batchSize: number;
  flip: boolean;
  fgsmEpsilons?: number[];
  ifgsmEpsilons?: number[];
  attacks?: ("fgsm" | "ifgsm")[];
  ifgsmSteps?: number;
  evalBatchSize: number;
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
  log?: (line: string) => void;
}

export interface ImagenetResult {
  vaes: PatchVaeSummary[];
  split: { rule: string; evaluation: number; training: number };
}

export async function reproduceImagenet(o: ImagenetOptions): Promise<ImagenetResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const patchSizes = o.patchSizes ?? [...PATCH_SIZES];
  if (!o.trainOnly && !o.model) throw new ArgumentError("--model is required (a classifier file) unless --train-only");
  if (o.samples !== undefined) checkInt(o.samples, "samples", 1);

  // 1. Data.
  const split = splitImages(resolve(o.images));
  log(`data: ${split.description}`);

  // 2. Patch VAEs.
  const source = await loadTrainingPatches(split);
  const { models, summaries } = await trainPatchVaes({
    images: source,
    imageIds: split.training.map((e) => e.id),
    patchSizes,
    epochPatches: o.epochPatches,
    maxMinutes: o.trainMinutes,
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
    log,
  });
  try {
    const result: ImagenetResult = {
      vaes: summaries,
      split: { rule: split.rule, evaluation: split.evaluation.length, training: split.training.length },
    };
    if (o.trainOnly) return result;
    throw new ArgumentError("evaluation is not written yet");
  } finally {
    for (const m of models.values()) m.dispose();
  }
}
