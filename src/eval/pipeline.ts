/**
 * The one evaluation pipeline of `vaeguard evaluate` and `vaeguard reproduce`
 * (small images), in named steps:
 *
 * 1. loadData: the first N test images, hashed (a worker checks its copy against the hash);
 * 2. loadModels: the classifier and VAE checkpoints, by path and content hash
 *    (what a worker of a distributed run is told to load);
 * 3. buildDefenses: the defense specs on those models, checked against the images' shape;
 * 4. sweepModes: each mode's cells, in this process or on the queue's workers
 *    (the sweep seeds every cell from the cell alone), resumed from and stored
 *    in OUT/sweep-<mode>.json;
 * 5. report: the caller turns the rows into a ReportDraft; report/run-report.ts
 *    writes it (eval never writes a report itself).
 *
 * The callers (evaluate.ts, reproduce.ts) give the settings, table names,
 * resume fingerprints and notes; everything else is here, once.
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { manualSeed } from "../core/engine.js";
import { CheckpointError } from "../core/errors.js";
import type { ProgressFactory } from "../core/progress.js";
import { softwareVersions } from "../core/versions.js";
import { datasetSize, type ImageDataset } from "../data/index.js";
import type { Defense } from "../defenses/index.js";
import type { ImageClassifier } from "../models/classifiers.js";
import type { Purifier } from "../models/purifier.js";
import type { Module } from "../nn/module.js";
import type { PaperTable } from "./paper.js";
import { needsVae } from "./config.js";
import {
  EvaluationCache,
  datasetSha256,
  fileSha256,
  loadTestData,
  type ClassifierLoading,
  type EvaluationSetup,
  type ModelRef,
  type SetupAttack,
} from "./evaluation.js";
import type { CellTask } from "./cells.js";
import type { AttackMode, GridSample, ResultRow, RunMetadata } from "./results.js";
import { sweep, type CellRunner } from "./sweep.js";
import { TEST_SETS, type DatasetName } from "./test-sets.js";

/** What the pipeline evaluates: data, checkpoints and every setting of the setup but its attacks. */
export interface PipelineInputs {
  dataset: DatasetName;
  dataDir?: string;
  /** Where a loader may keep decoded data (never changes the images). */
  cacheDir?: string;
  /** The first N test images (default: all). */
  samples?: number;
  classifier: string;
  /** How a pretrained classifier file is read (see EvaluationSetup). */
  classifierLoading?: ClassifierLoading;
  /** Loaded only when a defense needs it. */
  vae?: string;
  /** Patch VAE checkpoints by patch size, for "patchvae" defenses. */
  patchVaes?: Record<string, string>;
  defenses: string[];
  /** Table names of defenses by spec (see EvaluationSetup). */
  defenseTitles?: Record<string, string>;
  /** Keep each image's prediction per defense (see EvaluationSetup). */
  keepPredictions?: boolean;
  eot: number;
  passes: number;
  batchSize: number;
  seed: number;
  /** Images per cell (default: all of them, one cell per row and, in adaptive mode, defense). */
  shardSize?: number;
}

/** What a command tells a run of the pipeline besides its settings. */
export interface RunOptions {
  /** Delete the results files (and, reproduce, the checkpoints) and start over. */
  restart?: boolean;
  /** The command line, for the report. */
  command: string;
  quiet?: boolean;
  /** Progress of training and of each mode's cells (default: nothing). */
  progress?: ProgressFactory;
  log?: (line: string) => void;
  /** Where the cells run (default: in this process); given each sweep's setup. */
  runner?: (setup: EvaluationSetup) => CellRunner;
}

/** What a run gives back; the command writes `report` with report/run-report.ts. */
export interface RunOutcome {
  rows: ResultRow[];
  cleanAccuracy: number;
  report: ReportDraft;
}

/** Steps 1 to 3 done: models, data and defenses, held until the pipeline's body returns. */
export interface Pipeline {
  readonly cache: EvaluationCache;
  readonly test: ImageDataset;
  /** Images in the whole test split. */
  readonly total: number;
  readonly classifier: Module & ImageClassifier;
  readonly vae?: Purifier;
  readonly classifierRef: ModelRef;
  readonly vaeRef?: ModelRef;
  readonly patchVaeRefs?: Record<string, ModelRef>;
  readonly defenses: Defense[];
  /** The setup of a sweep with these attacks (named as its rows name them): what a worker rebuilds it from. */
  setup(attacks: SetupAttack[]): EvaluationSetup;
}

/** The results file of one mode, resumed by the next run with the same settings. */
export function resultsFileFor(out: string, mode: AttackMode): string {
  return join(out, `sweep-${mode}.json`);
}

/** sha256 of a checkpoint, or one line saying why it cannot be read. */
export function checkpointSha256(file: string): string {
  if (!existsSync(file)) throw new CheckpointError(file, "no such checkpoint file");
  try {
    return fileSha256(file);
  } catch (e) {
    throw new CheckpointError(file, `cannot read the checkpoint (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

/** Step 1: the first N test images, hashed, and held by the cache (freed with it). */
export async function loadData(cache: EvaluationCache, i: PipelineInputs) {
  const { test, total } = await loadTestData(i.dataset, i.dataDir, i.samples, i.cacheDir);
  const data = { dataset: i.dataset, dataDir: i.dataDir, samples: datasetSize(test), dataSha256: datasetSha256(test) };
  cache.adoptTestData(data, test);
  return { test, total, data };
}

/** Step 2: the checkpoints by path and content hash, loaded into the cache. */
export function loadModels(cache: EvaluationCache, i: PipelineInputs) {
  const ref = (path: string): ModelRef => ({ path, sha256: checkpointSha256(path) });
  const classifierRef = ref(i.classifier);
  const usesVae = i.defenses.some(needsVae);
  const vaeRef = usesVae && i.vae ? ref(i.vae) : undefined;
  const patchVaeRefs = i.patchVaes
    ? Object.fromEntries(Object.entries(i.patchVaes).map(([k, path]) => [k, ref(path)]))
    : undefined;
  const classifier = cache.model(classifierRef, "classifier", i.classifierLoading) as Module & ImageClassifier;
  const vae = vaeRef ? (cache.model(vaeRef, "vae") as Purifier) : undefined;
  return { classifierRef, vaeRef, patchVaeRefs, classifier, vae };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Step 3: the defenses on the loaded models; the models must take the data set's images. */
export function buildDefenses(p: Omit<Pipeline, "defenses">, i: PipelineInputs): Defense[] {
  const defenses = p.cache.sweepContext(p.setup([])).defenses;
  const shape = p.test.images.dims.slice(1);
  const title = TEST_SETS[i.dataset].title;
  const check = (file: string, what: string, dims: readonly number[]) => {
    if (!sameShape(dims, shape)) {
      throw new CheckpointError(file, `${what} [${dims.join(", ")}] but ${title} images are [${shape.join(", ")}]`);
    }
  };
  check(i.classifier, "the classifier takes images of shape", p.classifier.inputShape);
  if (p.vae) check(i.vae!, "the VAE reconstructs images of shape", p.vae.inputShape);
  return defenses;
}

/**
 * Steps 1 to 3, then `body`; models and data are freed when it returns or throws.
 * `makeModels` (reproduce: train them, or reuse their checkpoints) runs between
 * steps 1 and 2, so bad test data stops the run before any training.
 */
export async function withPipeline<T>(
  i: PipelineInputs,
  body: (p: Pipeline) => Promise<T>,
  makeModels?: () => Promise<void>,
): Promise<T> {
  manualSeed(i.seed);
  const cache = new EvaluationCache();
  try {
    const { test, total, data } = await loadData(cache, i);
    await makeModels?.();
    const models = loadModels(cache, i);
    const base: Omit<EvaluationSetup, "attacks"> = {
      ...data,
      classifier: models.classifierRef,
      vae: models.vaeRef,
      // Only where given: the setup (and job ids) of a run without them stays as it was.
      ...(i.classifierLoading ? { classifierLoading: i.classifierLoading } : {}),
      ...(models.patchVaeRefs ? { patchVaes: models.patchVaeRefs } : {}),
      ...(i.defenseTitles ? { defenseTitles: i.defenseTitles } : {}),
      ...(i.keepPredictions ? { keepPredictions: true } : {}),
      defenses: i.defenses,
      eot: i.eot,
      passes: i.passes,
      batchSize: i.batchSize,
      seed: i.seed,
      shardSize: i.shardSize ?? data.samples,
    };
    const loaded = { cache, test, total, ...models, setup: (attacks: SetupAttack[]) => ({ ...base, attacks }) };
    return await body({ ...loaded, defenses: buildDefenses(loaded, i) });
  } finally {
    cache.dispose();
  }
}

export interface SweepStep {
  modes: AttackMode[];
  /** A mode's attacks, named as its rows will be. */
  attacks: (mode: AttackMode) => SetupAttack[];
  epsilons: number[];
  /** The report folder, holding each mode's results file. */
  out: string;
  /** Delete the results files of these modes first. */
  restart?: boolean;
  /** Settings a resumed results file must have been made with. */
  fingerprint: (mode: AttackMode) => Record<string, unknown>;
  /** Images of the first shard kept for the picture grid (at the largest epsilon). */
  gridImages: (mode: AttackMode) => number | undefined;
  /** Where a mode's cells run (default: in this process). */
  runner?: (setup: EvaluationSetup) => CellRunner;
  /** A mode's results file (default: resultsFileFor). */
  resultsFile?: (mode: AttackMode) => string;
  /** Partial runs and shares of one sweep over several processes: see SweepOptions. */
  only?: (task: CellTask) => boolean;
  mergeFrom?: (mode: AttackMode) => string[];
  maxSeconds?: number;
  partial?: boolean;
  quiet?: boolean;
  progress?: ProgressFactory;
  log: (line: string) => void;
}

export interface SweepOutcome {
  rows: ResultRow[];
  grid?: GridSample;
  resultsFiles: string[];
  seconds: number;
  /** Images the rows cover (the fewest of any mode). */
  images: number;
  /** With keepPredictions: per row, each defense's per-image predictions. */
  predictions?: Record<string, number[]>[];
}

/** Step 4: sweep each mode, here or on workers; the rows of all modes in order. */
export async function sweepModes(p: Pipeline, s: SweepStep): Promise<SweepOutcome> {
  const rows: ResultRow[] = [];
  const resultsFiles: string[] = [];
  let grid: GridSample | undefined;
  let images = Infinity;
  const predictions: Record<string, number[]>[] = [];
  const t0 = performance.now();
  for (const mode of s.modes) {
    const file = s.resultsFile?.(mode) ?? resultsFileFor(s.out, mode);
    resultsFiles.push(file);
    if (s.restart) rmSync(file, { force: true });
    const setup = p.setup(s.attacks(mode));
    const result = await sweep({
      ...p.cache.sweepContext(setup),
      epsilons: s.epsilons,
      mode,
      seed: setup.seed,
      shardSize: setup.shardSize,
      resultsFile: file,
      fingerprint: s.fingerprint(mode),
      gridImages: s.gridImages(mode),
      gridEpsilon: s.epsilons.filter((e) => e > 0).at(-1),
      runner: s.runner?.(setup),
      only: s.only,
      mergeFrom: s.mergeFrom?.(mode),
      maxSeconds: s.maxSeconds === undefined ? undefined : Math.max(0, s.maxSeconds - (performance.now() - t0) / 1000),
      partial: s.partial,
      quiet: s.quiet,
      progress: s.progress,
      log: s.log,
    });
    rows.push(...result.rows);
    grid ??= result.grid;
    images = Math.min(images, result.images);
    if (result.predictions) predictions.push(...result.predictions);
  }
  const seconds = (performance.now() - t0) / 1000;
  const kept = predictions.length === rows.length && rows.length > 0 ? { predictions } : {};
  return { rows, grid, resultsFiles, seconds, images: Number.isFinite(images) ? images : 0, ...kept };
}

/** Step 5's output: everything report/run-report.ts needs to write the report folder. */
export interface ReportDraft {
  title: string;
  /** `versions` are eval's; the report step adds its own (image codecs). */
  metadata: RunMetadata;
  rows: ResultRow[];
  defenses: string[];
  grid?: { sample: GridSample; classNames: readonly string[]; defenses: string[]; caption: string };
  notes: string;
  paperComparisons?: {
    paper: PaperTable;
    attack: string;
    mode?: AttackMode;
    pairs?: readonly { paper: string; ours: string }[];
  }[];
  /** Remove plots in the folder that this report does not have (left by a run with other attacks or modes). */
  removeStalePlots?: boolean;
}

/** What the labels of a data set's test images are, for the report. */
export function labelSourceOf(dataset: DatasetName, test: ImageDataset): string {
  const set = TEST_SETS[dataset];
  return set.labelSourceOf?.(test) ?? set.labelSource;
}

/** What a run's report says beyond what the pipeline knows. */
export interface DraftParts {
  title: string;
  /** The data set as the report names it. */
  dataset: string;
  command: string;
  attackParams: RunMetadata["attackParams"];
  paperReference?: string;
  /** The picture grid's columns after the attacked image, and its caption. */
  gridDefenses: string[];
  gridCaption: (grid: GridSample) => string;
  notes: string;
}

/** Step 5: the report draft of a run, its metadata taken from the pipeline. */
export function reportDraft(p: Pipeline, swept: SweepOutcome, d: DraftParts): ReportDraft {
  const setup = p.setup([]);
  return {
    title: d.title,
    metadata: {
      dataset: d.dataset,
      labelSource: labelSourceOf(setup.dataset, p.test),
      samples: setup.samples,
      seed: setup.seed,
      command: d.command,
      versions: softwareVersions(),
      attackParams: d.attackParams,
      createdAt: new Date().toISOString(),
      paperReference: d.paperReference,
    },
    rows: swept.rows,
    defenses: p.defenses.map((x) => x.name),
    grid: swept.grid
      ? {
          sample: swept.grid,
          classNames: p.test.classNames,
          defenses: d.gridDefenses,
          caption: d.gridCaption(swept.grid),
        }
      : undefined,
    notes: d.notes,
  };
}
