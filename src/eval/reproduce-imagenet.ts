/**
 * The paper's large-image experiment (Luo & Pfister 2018, sections 5 and 6,
 * Tables 3, 6 and 7) on what this machine has: a pretrained classifier
 * imported from TF.js or TorchScript (default: the Inception V3 inside npm
 * nsfwjs, 5 classes, 299x299) and a folder of real photographs (default: the
 * Debian photo set of src/data/photos.ts).
 *
 * Steps:
 * 1. Split the photographs into training and evaluation images by source
 *    (the CSV's Source column: the Debian package), or take training images
 *    from a separate folder. The patch VAEs never see an evaluation image
 *    (the paper's authors trained on the same 1,000 images they evaluated).
 * 2. Train the patch VAEs of Table 3 (16x16, 32x32, 64x64) on random patches
 *    of the training images (BCE + beta * KL, latent noise clipped to
 *    [-5, 5]), or reuse / resume their checkpoints.
 * 3. Label every evaluation image with the classifier's own clean top-1
 *    prediction ("agreement with the clean prediction"): the photographs have
 *    no ImageNet labels.
 * 4. Sweep FGSM and I-FGSM (gray-box: the paper's setting) over epsilons with
 *    the columns of Tables 6 and 7 and write a report bundle with the
 *    comparison against the paper.
 */
import { existsSync, realpathSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { dispose, keep, manualSeed, noGrad, tidy } from "../core/engine.js";
import { ArgumentError, DataError } from "../core/errors.js";
import * as F from "../nn/functional.js";
import { tensor, type Tensor } from "../core/tensor.js";
import { checkInt, checkNumber, fail } from "../core/validate.js";
import { type ImageDataset } from "../data/dataset.js";
import {
  indexImageFolder,
  loadImageFolderEntries,
  type ImageFolderEntry,
  type ImageFolderIndex,
} from "../data/image-folder.js";
import { patchDataset } from "../data/patches.js";
import { buildPhotoSet } from "../data/photos.js";
import type { ImageClassifier } from "../models/classifiers.js";
import { ConvVae, VAE_PRESETS } from "../models/vae.js";
import { type InputScalingName } from "../models/tfjs.js";
import { loadClassifierFile } from "../models/load-classifier.js";
import { extractNsfwjsModels } from "../models/tfjs-nsfwjs.js";
import { trainVae, type EpochStats } from "../train/trainer.js";
import { createAttack } from "../attacks/index.js";
import {
  EnsembleDefense,
  JpegDefense,
  NoDefense,
  PatchVaeDefense,
  gaussianBlur,
  type Defense,
} from "../defenses/index.js";
import { writeReportBundle, reportSoftwareVersions, type BundlePaths } from "../report/bundle.js";
import { PAPER_TABLE_6, PAPER_TABLE_7, type PaperTable } from "./paper.js";
import { sweepGridCells } from "../report/grid.js";
import type { AttackMode, ResultRow } from "./results.js";
import { softwareVersions } from "../core/versions.js";
import type { ProgressFactory } from "../core/progress.js";
import { sweep, type AttackSpec, type GridSample } from "./sweep.js";

/** Where `vaeguard models import-nsfwjs` puts the nsfwjs models by default. */
export const DEFAULT_MODELS_DIR = "runs/models/nsfwjs";
/** The classifier used when --model is not given: nsfwjs' Inception V3, extracted on first use. */
export const DEFAULT_MODEL_NAME = "inception_v3";
/** Default training packages of the Debian photo set; the others are evaluated. */
export const DEFAULT_TRAIN_SOURCES = ["opencv-doc"];

export const LABEL_SOURCE_CLEAN =
  "agreement with the clean prediction (each image's label is the classifier's own top-1 prediction on the unattacked image; the photographs have no ImageNet labels)";

/** The paper's FGSM range on NIPS 2017 is epsilon in [0.005, 0.09]. */
export const DEFAULT_FGSM_EPS = [0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.09];
export const DEFAULT_IFGSM_EPS = [0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.09];
export const QUICK_FGSM_EPS = [0, 0.03];
export const QUICK_IFGSM_EPS = [0.03];

export const PATCH_SIZES = [16, 32, 64] as const;
export type PatchSize = (typeof PATCH_SIZES)[number];

/**
 * Default number of training patches per VAE (one epoch each): sized so that
 * the three VAEs train in roughly 8 minutes on a 2-core CPU. This is far less
 * training than the paper's ("enough epochs until the first term in the loss
 * function changes very little"); every report says so.
 */
export const DEFAULT_PATCHES: Record<PatchSize, number> = { 16: 4000, 32: 2000, 64: 1000 };
export const QUICK_PATCHES: Record<PatchSize, number> = { 16: 128, 32: 128, 64: 64 };

/** The columns of Tables 6 and 7: (patch size, stride) per VAE column. */
export const VAE_COLUMNS: readonly { patchSize: PatchSize; stride: number }[] = [
  { patchSize: 16, stride: 16 },
  { patchSize: 32, stride: 32 },
  { patchSize: 64, stride: 32 },
  { patchSize: 64, stride: 64 },
];

export type LabelMode = "clean" | "dataset";

export interface ImagenetReproduceOptions {
  /** Image folder (CSV layout or class folders); default: the Debian photo set, built when missing. */
  images?: string;
  /** Cache folder of the Debian photo set (default <repository>/.cache/photos). */
  photoCache?: string;
  /** A TF.js model.json (or its folder) or a TorchScript .pt file; default: nsfwjs' Inception V3. */
  model?: string;
  /** Where nsfwjs' models are extracted when the default model is missing. */
  modelsDir?: string;
  /** TF.js input scaling (default: the model.json's userDefinedMetadata.vaeguard.inputScaling, else "unit"). */
  inputScaling?: InputScalingName;
  /** TorchScript: square input size (default 299), per-channel mean and std (default 0 and 1). */
  inputSize?: number;
  mean?: number[];
  std?: number[];
  /** Training images by source (CSV column `sourceColumn`); default opencv-doc. */
  trainSources?: string[];
  /** Evaluation images by source; default every source not used for training. */
  evalSources?: string[];
  sourceColumn?: string;
  /** A separate folder of training images (then every image of `images` is evaluated). */
  trainImages?: string;
  /** "clean" (default): the classifier's clean predictions; "dataset": the folder's labels. */
  labels?: LabelMode;
  /** Added to the folder's labels with labels "dataset" (-1 for the NIPS 2017 CSV with a 1000-class model). */
  labelOffset?: number;
  /** At most this many evaluation images (in folder order). */
  samples?: number;
  patchSizes?: PatchSize[];
  /** Training patches per VAE: one number for all, or per patch size. */
  patches?: number | Partial<Record<PatchSize, number>>;
  epochsVae?: number;
  beta: number;
  lr: number;
  batchSize: number;
  /** Mirror half of the training patches (default true). */
  flip?: boolean;
  fgsmEpsilons?: number[];
  ifgsmEpsilons?: number[];
  attacks?: ("fgsm" | "ifgsm")[];
  ifgsmSteps?: number;
  mode?: AttackMode;
  evalBatchSize: number;
  passes: number;
  gridImages?: number;
  quick: boolean;
  outDir: string;
  checkpointDir: string;
  seed: number;
  restart: boolean;
  command: string;
  quiet?: boolean;
  /** Progress of training and of each sweep row (default: nothing). */
  progress?: ProgressFactory;
  log?: (line: string) => void;
}

export interface VaeTrainingSummary {
  patchSize: number;
  checkpoint: string;
  patches: number;
  epochs: number;
  parameters: number;
  reused: boolean;
  history: EpochStats[];
  seconds: number;
}

export interface ImagenetReproduceResult {
  rows: ResultRow[];
  paths: BundlePaths;
  evalImages: { id: string; source: string; label: string }[];
  trainImages: { id: string; source: string }[];
  vaes: VaeTrainingSummary[];
  defenses: string[];
}

// ---------------------------------------------------------------- model

interface LoadedModel {
  classifier: ImageClassifier & { dispose?: () => void };
  path: string;
  description: string;
  classNames: string[];
}

/** The default classifier: nsfwjs' Inception V3 under `modelsDir`, extracted from the npm package when missing. */
export function defaultModelPath(modelsDir: string, log: (l: string) => void): string {
  const json = resolve(modelsDir, DEFAULT_MODEL_NAME, "model.json");
  if (!existsSync(json)) {
    log(`model: extracting nsfwjs' Inception V3 into ${resolve(modelsDir)} (vaeguard models import-nsfwjs)`);
    extractNsfwjsModels(resolve(modelsDir), { models: [DEFAULT_MODEL_NAME] });
  }
  return json;
}

function loadModel(o: ImagenetReproduceOptions, log: (l: string) => void): LoadedModel {
  const path = o.model ? resolve(o.model) : defaultModelPath(o.modelsDir ?? DEFAULT_MODELS_DIR, log);
  if (!existsSync(path)) throw new ArgumentError(`--model: ${path} does not exist`);
  return loadClassifierFile(path, {
    inputScaling: o.inputScaling,
    inputSize: o.inputSize,
    mean: o.mean,
    std: o.std,
  });
}

// ---------------------------------------------------------------- data

interface Split {
  index: ImageFolderIndex;
  evalEntries: ImageFolderEntry[];
  trainIndex: ImageFolderIndex;
  trainEntries: ImageFolderEntry[];
  description: string;
}

function sourceOf(e: ImageFolderEntry, column: string): string | undefined {
  if (!e.extra) return undefined;
  const key = Object.keys(e.extra).find((k) => k.toLowerCase() === column.toLowerCase());
  return key === undefined ? undefined : e.extra[key];
}

function splitData(o: ImagenetReproduceOptions, images: string): Split {
  const index = indexImageFolder(images, o.labels === "dataset" ? { labelOffset: o.labelOffset ?? 0 } : {});
  if (index.entries.length === 0) throw new DataError(index.root, "holds no images");
  const column = o.sourceColumn ?? "Source";
  if (o.trainImages) {
    if (o.trainSources || o.evalSources) {
      throw new ArgumentError("Give either --train-images or --train-sources/--eval-sources, not both");
    }
    const trainIndex = indexImageFolder(o.trainImages, { ignoreUnlisted: false });
    const evalFiles = new Set(index.entries.map((e) => e.file));
    const shared = trainIndex.entries.filter((e) => evalFiles.has(e.file));
    if (shared.length > 0) {
      throw new ArgumentError(
        `--train-images and --images share ${shared.length} image(s) (${shared
          .slice(0, 3)
          .map((e) => basename(e.file))
          .join(", ")}); the VAEs must never train on evaluation images`,
      );
    }
    return {
      index,
      evalEntries: index.entries,
      trainIndex,
      trainEntries: trainIndex.entries,
      description: `training images: every image of ${trainIndex.root}; evaluation images: every image of ${index.root}`,
    };
  }
  const bySource = new Map<string, ImageFolderEntry[]>();
  for (const e of index.entries) {
    const s = sourceOf(e, column);
    if (s === undefined || s === "") {
      throw new DataError(
        index.csv ?? index.root,
        `image ${e.id} has no ${column} column value, so training and evaluation images cannot be split by source; pass --train-images DIR or a CSV with a ${column} column`,
      );
    }
    if (!bySource.has(s)) bySource.set(s, []);
    bySource.get(s)!.push(e);
  }
  const all = [...bySource.keys()];
  const trainSources = o.trainSources ?? DEFAULT_TRAIN_SOURCES;
  for (const s of [...trainSources, ...(o.evalSources ?? [])]) {
    if (!bySource.has(s)) fail(`one of the sources in the data (${all.join(", ")})`, "source", s);
  }
  const evalSources = o.evalSources ?? all.filter((s) => !trainSources.includes(s));
  const overlap = evalSources.filter((s) => trainSources.includes(s));
  if (overlap.length > 0) {
    throw new ArgumentError(
      `Source(s) ${overlap.join(", ")} are both training and evaluation sources; the VAEs must never train on evaluation images`,
    );
  }
  if (evalSources.length === 0) throw new ArgumentError(`No evaluation source left (sources: ${all.join(", ")})`);
  const trainEntries = trainSources.flatMap((s) => bySource.get(s)!);
  const evalEntries = index.entries.filter((e) => evalSources.includes(sourceOf(e, column)!));
  const count = (ss: string[]) => ss.map((s) => `${s} (${bySource.get(s)!.length})`).join(", ");
  return {
    index,
    evalEntries,
    trainIndex: index,
    trainEntries,
    description: `split by the ${column} column of ${index.csv ?? index.root}: training sources ${count(trainSources)}, evaluation sources ${count(evalSources)}`,
  };
}

// ---------------------------------------------------------------- defenses

/**
 * A patch-VAE column whose last output is kept for the ensemble column, so
 * the ensemble averages the very reconstructions its members were scored on
 * instead of computing the four VAEs a second time (the patch VAEs dominate
 * the cost of a sweep on a CPU). Each output is handed out once: a second
 * pass of a randomized ensemble draws fresh reconstructions.
 */
class ReusableDefense implements Defense {
  readonly name: string;
  readonly randomized: boolean;
  readonly gradient: Defense["gradient"];
  private lastInput: Tensor | null = null;
  private lastOutput: Tensor | null = null;

  constructor(readonly inner: Defense) {
    this.name = inner.name;
    this.randomized = inner.randomized;
    this.gradient = inner.gradient;
  }

  async apply(x: Tensor): Promise<Tensor> {
    const y = await this.inner.apply(x);
    this.forget();
    this.lastInput = x;
    this.lastOutput = keep(tidy(() => y.clone()));
    return y;
  }

  attackView(x: Tensor): Promise<Tensor> {
    return this.inner.attackView(x);
  }

  /** The output of the last apply() when its input was `x` (once), else a fresh one. */
  async reuse(x: Tensor): Promise<Tensor> {
    if (this.lastInput === x && this.lastOutput !== null && !this.lastOutput.isDisposed) {
      const y = this.lastOutput;
      this.lastOutput = null;
      this.lastInput = null;
      return y;
    }
    return this.inner.apply(x);
  }

  /** A view for ensembles that takes the kept output. */
  reuser(): Defense {
    return {
      name: this.name,
      randomized: this.randomized,
      gradient: this.gradient,
      apply: (x) => this.reuse(x),
      attackView: (x) => this.inner.attackView(x),
      describe: () => this.inner.describe(),
    };
  }

  forget(): void {
    this.lastOutput?.dispose();
    this.lastOutput = null;
    this.lastInput = null;
  }

  describe(): Record<string, number | string | boolean> {
    return this.inner.describe();
  }
}

// ---------------------------------------------------------------- helpers

function patchCount(o: ImagenetReproduceOptions, p: PatchSize): number {
  const dflt = o.quick ? QUICK_PATCHES[p] : DEFAULT_PATCHES[p];
  if (o.patches === undefined) return dflt;
  if (typeof o.patches === "number") return checkInt(o.patches, "patches", 1);
  return checkInt(o.patches[p] ?? dflt, `patches[${p}]`, 1);
}

function slugOf(parts: string[]): string {
  return parts
    .join("+")
    .toLowerCase()
    .replace(/[^a-z0-9+]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 60);
}

/** Top-1 predictions of a classifier on images [N, C, H, W], in batches. */
function predict(
  classifier: ImageClassifier,
  images: Tensor,
  batchSize: number,
): { labels: number[]; confidence: number[] } {
  const n = images.dims[0];
  const labels: number[] = [];
  const confidence: number[] = [];
  const was = classifier.training;
  classifier.eval();
  try {
    for (let s = 0; s < n; s += batchSize) {
      const [l, c] = tidy(() =>
        noGrad(() => {
          const logits = classifier.forward(images.narrow(0, s, Math.min(batchSize, n - s)));
          const probs = F.softmax(logits, 1);
          return [logits.argmax(1).toArray(), probs.max(1).toArray()];
        }),
      );
      labels.push(...l);
      confidence.push(...c);
    }
  } finally {
    classifier.train(was);
  }
  return { labels, confidence };
}

/** Paper rows whose rel-L2 lies further than this from every row of ours are left empty in the comparison. */
export const COMPARISON_MAX_DISTANCE = 0.02;
export const CONTROL_BLUR_SIGMA = 4;

/**
 * How often heavily destroyed versions of the clean images keep their clean
 * prediction: a constant image of each image's mean colour, and a strong
 * Gaussian blur. With labels from clean predictions of a 5-class model, a
 * defense could score well by destroying the image; these numbers say how well.
 */
function destroyedControls(
  classifier: ImageClassifier,
  images: Tensor,
  labels: number[],
  batchSize: number,
): { meanColour: number; blur: number } {
  const size = 2 * Math.round(4 * CONTROL_BLUR_SIGMA) + 1;
  const meanImages = tidy(() => images.mean([2, 3], true).expand(images.shape).contiguous());
  const blurred = tidy(() => noGrad(() => gaussianBlur(images, CONTROL_BLUR_SIGMA, size, "symmetric")));
  try {
    const agree = (t: Tensor) =>
      predict(classifier, t, batchSize).labels.reduce((a, l, i) => a + (l === labels[i] ? 1 : 0), 0);
    return { meanColour: agree(meanImages), blur: agree(blurred) };
  } finally {
    meanImages.dispose();
    blurred.dispose();
  }
}

// ---------------------------------------------------------------- main

export async function reproduceImagenet(o: ImagenetReproduceOptions): Promise<ImagenetReproduceResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const t0 = performance.now();
  checkNumber(o.beta, "beta", 0);
  checkNumber(o.lr, "lr", 0);
  checkInt(o.batchSize, "batchSize", 1);
  checkInt(o.evalBatchSize, "evalBatchSize", 1);
  checkInt(o.passes, "passes", 1);
  const patchSizes = [...new Set(o.patchSizes ?? [...PATCH_SIZES])].sort((a, b) => a - b);
  for (const p of patchSizes) {
    if (!(PATCH_SIZES as readonly number[]).includes(p)) fail(`one of ${PATCH_SIZES.join(", ")}`, "patch size", p);
  }
  const mode = o.mode ?? "gray-box";
  const attacksWanted = o.attacks ?? ["fgsm", "ifgsm"];
  const ifgsmSteps = checkInt(o.ifgsmSteps ?? 10, "ifgsmSteps", 1);
  const fgsmEps = o.fgsmEpsilons ?? (o.quick ? QUICK_FGSM_EPS : DEFAULT_FGSM_EPS);
  const ifgsmEps = o.ifgsmEpsilons ?? (o.quick ? QUICK_IFGSM_EPS : DEFAULT_IFGSM_EPS);
  for (const e of [...fgsmEps, ...ifgsmEps]) checkNumber(e, "epsilon", 0, 1);
  const labelMode = o.labels ?? "clean";
  if (labelMode !== "clean" && labelMode !== "dataset") fail('"clean" or "dataset"', "labels", labelMode);

  // 1. Model and data.
  const model = loadModel(o, log);
  const { classifier } = model;
  const [, H, W] = classifier.inputShape;
  for (const p of patchSizes) {
    if (p > H || p > W) {
      throw new ArgumentError(
        `${p}x${p} patches do not fit the classifier's ${H}x${W} input; drop ${p} from --patch-sizes`,
      );
    }
  }
  let imagesDir = o.images;
  if (!imagesDir) {
    const cache = resolve(o.photoCache ?? join(repoRootGuess(), ".cache", "photos"));
    if (!existsSync(join(cache, "images.csv"))) {
      log(`data: building the Debian photo set in ${cache} (scripts/photos.sh)`);
      await buildPhotoSet({ cacheDir: cache, log });
    }
    imagesDir = cache;
  }
  const split = splitData(o, imagesDir);
  let evalEntries = split.evalEntries;
  const samplesLimit = o.samples ?? (o.quick ? 4 : undefined);
  if (samplesLimit !== undefined && samplesLimit < evalEntries.length) {
    evalEntries = evalEntries.slice(0, checkInt(samplesLimit, "samples", 1));
  }
  if (split.trainEntries.length === 0) throw new ArgumentError("No training images: the VAEs have nothing to train on");
  log(`data: ${split.description}; evaluating ${evalEntries.length} image(s)`);
  const evalData = await loadImageFolderEntries(split.index, evalEntries, { size: [H, W] });
  const trainData = await loadImageFolderEntries(split.trainIndex, split.trainEntries, { size: [H, W] });
  const vaes: Record<string, ConvVae> = {};
  const summaries: VaeTrainingSummary[] = [];
  const defenses: Defense[] = [];
  const reusables: ReusableDefense[] = [];
  let test: ImageDataset | undefined;
  try {
    // 2. Labels.
    const clean = predict(classifier, evalData.images, o.evalBatchSize);
    let labelValues: number[];
    let labelSource: string;
    if (labelMode === "clean") {
      labelValues = clean.labels;
      labelSource = LABEL_SOURCE_CLEAN;
    } else {
      labelValues = evalEntries.map((e) => e.label);
      const bad = evalEntries.find((e) => e.label < 0 || e.label >= classifier.numClasses);
      if (bad) {
        throw new DataError(
          bad.file,
          `label ${bad.label} is outside 0..${classifier.numClasses - 1}; use --labels clean (agreement with the clean prediction) for unlabelled images`,
        );
      }
      labelSource = `labels of ${split.index.csv ?? split.index.root}${o.labelOffset ? ` (offset ${o.labelOffset})` : ""}`;
    }
    test = {
      images: evalData.images,
      labels: tensor(
        BigInt64Array.from(labelValues, (v) => BigInt(v)),
        [labelValues.length],
      ),
      classNames: model.classNames,
      name: "photos",
      split: "test",
      source: evalData.source,
    };
    const controls = destroyedControls(classifier, evalData.images, clean.labels, o.evalBatchSize);
    const cleanAgreement =
      labelValues.reduce((a, l, i) => a + (l === clean.labels[i] ? 1 : 0), 0) / Math.max(1, labelValues.length);

    // 3. Patch VAEs.
    const trainTag = slugOf(
      o.trainImages ? [basename(resolve(o.trainImages))] : (o.trainSources ?? DEFAULT_TRAIN_SOURCES),
    );
    for (const p of patchSizes) {
      const count = patchCount(o, p);
      const epochs = checkInt(o.epochsVae ?? 1, "epochsVae", 1);
      const ckpt = join(
        o.checkpointDir,
        `imagenet-patch${p}-${trainTag}-${H}px-n${count}-b${o.beta}-lr${o.lr}-s${o.seed}${o.quick ? "-quick" : ""}.safetensors`,
      );
      manualSeed(o.seed);
      const ds = patchDataset(trainData.images, {
        patchSize: p,
        count,
        seed: o.seed,
        flip: o.flip ?? true,
        source: `${split.trainEntries.length} training images (${trainData.source})`,
      });
      const t1 = performance.now();
      let fit;
      try {
        fit = await trainVae({
          makeModel: () => new ConvVae(VAE_PRESETS[`patch${p}`]),
          train: ds,
          epochs,
          batchSize: o.batchSize,
          lr: o.lr,
          seed: o.seed,
          checkpoint: ckpt,
          restart: o.restart,
          loss: { beta: o.beta, reconstruction: "bce", clip: 5 },
          label: `vae ${p}x${p}`,
          quiet: o.quiet,
          progress: o.progress,
          log,
        });
      } finally {
        dispose([ds.images, ds.labels]);
      }
      vaes[String(p)] = fit.model;
      summaries.push({
        patchSize: p,
        checkpoint: ckpt,
        patches: count,
        epochs,
        parameters: fit.model.parameters().reduce((a, t) => a + t.size, 0),
        reused: fit.reused,
        history: fit.history,
        seconds: (performance.now() - t1) / 1000,
      });
    }
    const trainSeconds = (performance.now() - t0) / 1000;

    // 4. Defenses: the columns of Tables 6 and 7 for the VAEs we have.
    defenses.push(new NoDefense(), new JpegDefense({ quality: 10 }), new JpegDefense({ quality: 23 }));
    for (const col of VAE_COLUMNS) {
      const vae = vaes[String(col.patchSize)];
      if (!vae) continue;
      const r = new ReusableDefense(new PatchVaeDefense(vae, { patchSize: col.patchSize, stride: col.stride }));
      reusables.push(r);
      defenses.push(r);
    }
    if (reusables.length >= 2) {
      defenses.push(
        new EnsembleDefense(
          reusables.map((r) => r.reuser()),
          { name: "Ensemble" },
        ),
      );
    }

    // 5. Sweeps.
    const attackSpecs: { key: "fgsm" | "ifgsm"; spec: AttackSpec; eps: number[]; paper: PaperTable }[] = [];
    if (attacksWanted.includes("fgsm")) {
      attackSpecs.push({
        key: "fgsm",
        spec: { name: "FGSM", make: (m, eps) => createAttack("fgsm", m, { eps }) },
        eps: fgsmEps,
        paper: PAPER_TABLE_6,
      });
    }
    if (attacksWanted.includes("ifgsm")) {
      attackSpecs.push({
        key: "ifgsm",
        spec: { name: "I-FGSM", make: (m, eps) => createAttack("ifgsm", m, { eps, steps: ifgsmSteps }) },
        eps: ifgsmEps,
        paper: PAPER_TABLE_7,
      });
    }
    if (attackSpecs.length === 0) throw new ArgumentError("No attack to run");
    const fingerprint = {
      experiment: "imagenet",
      model: model.path,
      images: evalEntries.map((e) => e.id),
      training: split.trainEntries.map((e) => e.id),
      labels: labelMode,
      vaes: summaries.map((s) => basename(s.checkpoint)),
      epochs: summaries.map((s) => s.epochs),
      seed: o.seed,
      quick: o.quick,
    };
    // One sweep (and one resumable results file) per attack and epsilon, so a later run with more
    // epsilons reuses every point already measured.
    const rows: ResultRow[] = [];
    let grid: GridSample | undefined;
    const t2 = performance.now();
    for (const a of attackSpecs) {
      const gridEps = a === attackSpecs[0] ? a.eps.filter((e) => e > 0).at(-1) : undefined;
      for (const eps of a.eps) {
        const res = await sweep({
          classifier,
          data: test,
          attacks: [a.spec],
          epsilons: [eps],
          defenses,
          mode,
          batchSize: o.evalBatchSize,
          passes: o.passes,
          resultsFile: join(o.outDir, "sweeps", `${a.key}-${mode}-eps${eps}.json`),
          seed: o.seed,
          fingerprint: { ...fingerprint, ifgsmSteps: a.key === "ifgsm" ? ifgsmSteps : undefined },
          gridImages: eps === gridEps ? (o.gridImages ?? 4) : undefined,
          gridEpsilon: eps === gridEps ? eps : undefined,
          quiet: o.quiet,
          progress: o.progress,
          log,
        });
        rows.push(...res.rows);
        grid ??= res.grid;
        reusables.forEach((r) => r.forget());
      }
    }
    const evalSeconds = (performance.now() - t2) / 1000;

    // 6. Report.
    const attackParams: Record<string, Record<string, string | number>> = {};
    for (const a of attackSpecs) {
      const described = a.spec.make(classifier, a.eps.at(-1) || 0.01).describe();
      attackParams[a.spec.name] = { ...(described as Record<string, string | number>), epsilons: a.eps.join(", ") };
      delete attackParams[a.spec.name].eps;
    }
    const names = defenses.map((d) => d.name);
    const pairs = [
      { paper: "No Def", ours: "No defense" },
      { paper: "JPEG 10", ours: "JPEG 10" },
      { paper: "JPEG 23", ours: "JPEG 23" },
      { paper: "VAE 16x16 s16", ours: "VAE 16x16 s16" },
      { paper: "VAE 32x32 s32", ours: "VAE 32x32 s32" },
      { paper: "VAE 64x64 s32", ours: "VAE 64x64 s32" },
      { paper: "VAE 64x64 s64", ours: "VAE 64x64 s64" },
      { paper: "Ensembled", ours: "Ensemble" },
    ].filter((p) => names.includes(p.ours));
    const paperComparisons = attackSpecs
      .filter((a) => rows.some((r) => r.attack === a.spec.name))
      .map((a) => ({ paper: a.paper, attack: a.spec.name, mode, pairs, maxDistance: COMPARISON_MAX_DISTANCE }));
    const histogram = new Map<string, number>();
    for (const l of clean.labels) histogram.set(model.classNames[l], (histogram.get(model.classNames[l]) ?? 0) + 1);
    const imageLines = evalEntries.map((e, i) => {
      const subject = e.extra ? Object.entries(e.extra).find(([k]) => k.toLowerCase() === "subject")?.[1] : undefined;
      const src = sourceOf(e, o.sourceColumn ?? "Source");
      return `| ${e.id} | ${src ?? "-"} | ${subject ?? "-"} | ${model.classNames[clean.labels[i]]} | ${clean.confidence[i].toFixed(3)} |`;
    });
    const vaeLines = summaries.map((s) => {
      const last = s.history.at(-1);
      const trainTime = s.history.reduce((a, h) => a + h.seconds, 0);
      return `| ${s.patchSize}x${s.patchSize} | ${(s.parameters / 1e6).toFixed(1)}M | ${s.patches} | ${s.epochs} | ${
        last ? last.trainLoss.toFixed(1) : "-"
      } | ${trainTime.toFixed(0)} s${s.reused ? " (reused checkpoint)" : ""} | ${basename(s.checkpoint)} |`;
    });
    const notes = [
      `**Classifier:** ${model.description}. It is not the paper's 1001-class ImageNet Inception V3: the paper's columns measure top-1 accuracy against ImageNet labels, ours measure ${labelMode === "clean" ? "agreement with the clean prediction" : "accuracy against the folder's labels"}.`,
      `**Labels:** ${labelSource}. ${labelMode === "clean" ? "By construction the unattacked, undefended row is 1.0; every other number is the fraction of images whose prediction stays what it was on the clean image." : `Clean agreement with these labels: ${cleanAgreement.toFixed(3)}.`} Clean predictions by class: ${[
        ...histogram,
      ]
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}.`,
      `**Controls (how much an image can be destroyed and still keep its prediction):** a constant image of each photograph's mean colour keeps the clean prediction for ${controls.meanColour} of ${evalEntries.length} images; a Gaussian blur with sigma ${CONTROL_BLUR_SIGMA} pixels for ${controls.blur} of ${evalEntries.length}. A defense column near these fractions may be scoring by destroying the image, not by removing the perturbation.`,
      `**Data:** ${split.description}. Evaluated: ${evalEntries.length} image(s) (${evalData.source}). The patch VAEs never saw an evaluation image (the paper trained its VAEs on the same 1,000 images it evaluated).`,
      [
        "| Image | Source | Subject | Clean prediction | Confidence |",
        "| --- | --- | --- | --- | --- |",
        ...imageLines,
      ].join("\n"),
      `**Patch VAEs (Table 3):** trained on random patches of the training images (seeded, ${(o.flip ?? true) ? "random horizontal flips, " : ""}Adam lr ${o.lr}, batch ${o.batchSize}), loss BCE + ${o.beta} x KL, latent noise clipped to [-5, 5] in training and reconstruction. ` +
        'The paper trained "enough epochs until the first term in the loss function changes very little"; these VAEs were trained far less (the budget of a 2-core CPU), so their reconstructions are blurrier than the paper\'s and the VAE columns are a lower bound on what the defense can do.',
      [
        "| VAE | Parameters | Patches | Epochs | Final loss | Training time | Checkpoint |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        ...vaeLines,
      ].join("\n"),
      `**Defenses:** JPEG at quality 10 and 23 (libjpeg via sharp, PIL settings); patch-wise VAE reconstruction with the given patch size and stride, overlaps averaged, then the paper's 5x5 smoothing filter; the ensemble averages the pixels of the ${reusables.length} VAE columns' reconstructions (the very reconstructions those columns were scored on).` +
        (patchSizes.length < PATCH_SIZES.length
          ? ` Only patch sizes ${patchSizes.join(", ")} were trained (--patch-sizes), so the other VAE columns are missing.`
          : ""),
      `**Attacks:** ${attackSpecs.map((a) => `${a.spec.name} at epsilon ${a.eps.join(", ")}`).join("; ")}${attacksWanted.includes("ifgsm") ? ` (I-FGSM: ${ifgsmSteps} steps of epsilon/${ifgsmSteps})` : ""}, on the classifier's input gradient.`,
      mode === "gray-box"
        ? "**Mode:** gray-box, the paper's setting: the attacker differentiates through the classifier and does not know the defense. Gray-box numbers overstate robustness against an attacker who knows the defense."
        : "**Mode:** adaptive: each defense was attacked through itself (exact gradients for the VAEs, BPDA identity for JPEG).",
      `Randomized defenses (the VAEs) are scored as the mean over ${o.passes} forward pass(es). Time: data, models and VAE training ${trainSeconds.toFixed(0)} s, evaluation ${evalSeconds.toFixed(0)} s.`,
    ].join("\n\n");
    const paths = await writeReportBundle(o.outDir, {
      title: "vaeguard: large-image (NIPS 2017 setting) reproduction of Luo & Pfister (2018)",
      metadata: {
        dataset: `${evalEntries.length} photographs (${evalData.source})`,
        labelSource,
        samples: evalEntries.length,
        seed: o.seed,
        command: o.command,
        versions: { ...reportSoftwareVersions(), ...softwareVersions() },
        attackParams,
        createdAt: new Date().toISOString(),
        paperReference: "Luo & Pfister 2018, Tables 6 and 7",
      },
      rows,
      defenses: names,
      grid: grid
        ? {
            cells: sweepGridCells(
              grid,
              model.classNames,
              defenses.map((d) => d.name),
              { trueLabels: false },
            ),
            caption: `First evaluation images at ${grid.attack} eps ${grid.epsilon}`,
          }
        : undefined,
      notes,
      paperComparisons,
    });
    return {
      rows,
      paths,
      evalImages: evalEntries.map((e, i) => ({
        id: e.id,
        source: sourceOf(e, o.sourceColumn ?? "Source") ?? "",
        label: model.classNames[labelValues[i]],
      })),
      trainImages: split.trainEntries.map((e) => ({ id: e.id, source: sourceOf(e, o.sourceColumn ?? "Source") ?? "" })),
      vaes: summaries,
      defenses: names,
    };
  } finally {
    reusables.forEach((r) => r.forget());
    for (const v of Object.values(vaes)) v.dispose();
    classifier.dispose?.();
    dispose([
      evalData.images,
      evalData.labels,
      evalData.targets,
      trainData.images,
      trainData.labels,
      trainData.targets,
    ]);
    test?.labels.dispose();
  }
}

/** The repository root (this file is src/eval/... or dist/src/eval/...), for the default photo cache. */
function repoRootGuess(): string {
  let d = dirname(new URL(import.meta.url).pathname);
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(d, "package.json"))) return realpathSync(d);
    d = dirname(d);
  }
  return process.cwd();
}
