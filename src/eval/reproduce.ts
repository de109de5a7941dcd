/**
 * The paper's experiment on a small-image data set (MNIST, Fashion-MNIST,
 * CIFAR-10): train the classifier and the VAE when no checkpoint exists
 * (reuse or resume them otherwise), sweep FGSM and I-FGSM over an epsilon
 * grid, and return the report folder's draft (Markdown, JSON, CSV, plots,
 * picture grid) for report/run-report.ts. Training happens here, in this
 * process; the evaluation is the pipeline's (pipeline.ts), the same as
 * `vaeguard evaluate`'s: the checkpoints are named by content hash, so the
 * sweep's cells can also run on the workers of a job queue.
 */
import { dirname, join } from "node:path";
import { dispose, getNumThreads, manualSeed } from "../core/engine.js";
import { splitValidation, takeFirst, datasetSize } from "../data/index.js";
import { VAE_PRESETS } from "../models/vae.js";
import { accuracy } from "../train/trainer.js";
import { DEFAULT_RANDOMIZED_EOT_SAMPLES } from "../attacks/index.js";
import { NoDefense } from "../defenses/none.js";
import type { AttackMode, AttackParams } from "./results.js";
import type { SetupAttack } from "./evaluation.js";
import { reportDraft, sweepModes, withPipeline } from "./pipeline.js";
import type { Pipeline, ReportDraft, RunOptions, RunOutcome, SweepOutcome } from "./pipeline.js";
import { RECIPES, type SmallDataset } from "./recipes.js";
import { defaultJobs, threadsPerJob } from "./jobs.js";
import { trainJobs } from "./train-job.js";
import { trainModels } from "./train-models.js";
import { threadRunner } from "./thread-runner.js";
import { localRunner, type CellRunner } from "./sweep.js";
import type { EvaluationSetup } from "./evaluation.js";

// Their home is recipes.ts; kept here for the importers of reproduce.js.
export { RECIPES, type SmallDataset };

export interface ReproduceOptions extends RunOptions {
  dataset: SmallDataset;
  quick: boolean;
  outDir: string;
  checkpointDir: string;
  dataDir?: string;
  seed: number;
  /** Test images to evaluate (default: all; quick: 1000). */
  samples?: number;
  /** Training images (default: all but 5,000 for validation; quick: 10,000). */
  trainSamples?: number;
  epsilons?: number[];
  defenses?: string[];
  attacks?: ("fgsm" | "ifgsm")[];
  mode?: AttackMode;
  epochsClassifier?: number;
  epochsVae?: number;
  beta: number;
  reconstruction: "bce" | "mse";
  batchSize: number;
  evalBatchSize: number;
  passes: number;
  /** Images per cell (default: all, one cell per row); part of the settings, like the seed. */
  shardSize?: number;
  restart: boolean;
  /**
   * Jobs side by side, each with an equal share of the libtorch threads: the
   * two trainings, then the sweep's cells on that many threads (eval/jobs.ts;
   * default: 2 when at least 2 threads are allowed). 1: one job at a time, with all threads.
   */
  jobs?: number;
}

export type ReproduceOutcome = RunOutcome;

/** The paper's two attacks as the pipeline names them; I-FGSM takes ten steps. */
const ATTACKS: Record<"fgsm" | "ifgsm", SetupAttack> = {
  fgsm: { name: "FGSM", kind: "fgsm", params: {} },
  ifgsm: { name: "I-FGSM", kind: "ifgsm", params: { steps: 10 } },
};

export const DEFAULT_DEFENSES = ["none", "jpeg:10", "jpeg:23", "vae"];

/** What the report says about the training data. */
interface TrainingSummary {
  seconds: number;
  trainImages: number;
  trainSource: string;
  validationImages: number;
}

/**
 * The training split (after the validation split and the --train-samples cut)
 * and the validation split; the full set and what the cut leaves are freed at
 * once (they used to wait for the garbage collector: 188 MB for MNIST).
 */
async function loadTrainingData(o: ReproduceOptions, cacheDir: string) {
  const full = await RECIPES[o.dataset].load("train", o.dataDir, cacheDir);
  try {
    const limit = o.trainSamples ?? (o.quick ? 10000 : undefined);
    const valSize = Math.min(5000, Math.floor(datasetSize(full) / 10));
    const split = splitValidation(full, valSize, o.seed);
    if (!(limit && limit < datasetSize(split.train))) return split;
    const train = takeFirst(split.train, limit);
    dispose([split.train.images, split.train.labels]);
    return { train, validation: split.validation };
  } finally {
    dispose([full.images, full.labels]);
  }
}

/** Steps before the pipeline: the training data and the models trained on it (freed once their checkpoints exist). */
async function trainingStep(
  o: ReproduceOptions & { log: (line: string) => void },
  checkpoints: { classifier: string; vae: string },
  cacheDir: string,
  jobs: number,
): Promise<TrainingSummary> {
  const t0 = performance.now();
  manualSeed(o.seed);
  const data = await loadTrainingData(o, cacheDir);
  try {
    await trainModels(trainJobs(o, checkpoints), data, { jobs, progress: o.progress, log: o.log });
    return {
      seconds: (performance.now() - t0) / 1000,
      trainImages: datasetSize(data.train),
      trainSource: data.train.source,
      validationImages: datasetSize(data.validation),
    };
  } finally {
    dispose([data.train.images, data.train.labels, data.validation.images, data.validation.labels]);
  }
}

/** Where the sweep's cells run: the queue's workers when given, else `jobs` threads here (one: this thread). */
function cellRunner(o: ReproduceOptions, p: Pipeline, jobs: number, log: (line: string) => void) {
  if (o.runner || jobs <= 1) return o.runner;
  const threads = threadsPerJob(getNumThreads(), jobs);
  return (setup: EvaluationSetup): CellRunner =>
    threadRunner({
      setup,
      test: p.test,
      jobs,
      threadsPerJob: threads,
      single: () => localRunner(p.cache.sweepContext(setup)),
      log,
    });
}

export async function reproduceSmall(o: ReproduceOptions): Promise<ReproduceOutcome> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const recipe = RECIPES[o.dataset];
  const cacheDir = join(dirname(o.checkpointDir), "cache");
  const tag = o.quick ? "-quick" : "";
  const checkpoints = {
    classifier: join(o.checkpointDir, `${o.dataset}-classifier${tag}.safetensors`),
    vae: join(o.checkpointDir, `${o.dataset}-vae-b${o.beta}-${o.reconstruction}${tag}.safetensors`),
  };
  const inputs = {
    dataset: o.dataset,
    dataDir: o.dataDir,
    cacheDir,
    samples: o.samples ?? (o.quick ? 1000 : undefined),
    ...checkpoints,
    defenses: o.defenses ?? DEFAULT_DEFENSES,
    // The attacks' own default on a randomized model (adaptive mode), as before the pipeline.
    eot: DEFAULT_RANDOMIZED_EOT_SAMPLES,
    passes: o.passes,
    batchSize: o.evalBatchSize,
    seed: o.seed,
    shardSize: o.shardSize,
  };
  const jobs = o.jobs ?? defaultJobs(getNumThreads());
  let trained: TrainingSummary | undefined;
  const train = async () => void (trained = await trainingStep({ ...o, log }, checkpoints, cacheDir, jobs));
  return withPipeline(
    inputs,
    async (p) => {
      const cleanAccuracy = accuracy(p.classifier, p.test);
      log(`classifier clean accuracy on ${datasetSize(p.test)} test images: ${cleanAccuracy.toFixed(4)}`);
      const epsilons = o.epsilons ?? (o.quick ? recipe.quickEpsilons : recipe.epsilons);
      const ifgsmEpsilons = o.epsilons ?? (o.quick ? recipe.quickEpsilons : recipe.ifgsmEpsilons);
      const attacks = (o.attacks ?? ["fgsm", "ifgsm"]).map((a) =>
        a === "ifgsm" ? { ...ATTACKS[a], epsilons: ifgsmEpsilons } : ATTACKS[a],
      );
      const mode = o.mode ?? "gray-box";
      const swept = await sweepModes(p, {
        modes: [mode],
        attacks: () => attacks,
        epsilons,
        out: o.outDir,
        restart: o.restart,
        fingerprint: () => ({
          dataset: o.dataset,
          test: p.test.source,
          seed: o.seed,
          quick: o.quick,
          beta: o.beta,
          recon: o.reconstruction,
        }),
        gridImages: () => 6,
        runner: cellRunner(o, p, jobs, log),
        quiet: o.quiet,
        progress: o.progress,
        log,
      });
      const report = reproduceReport(o, { p, trained: trained!, swept, cleanAccuracy, mode, attacks, epsilons, jobs });
      return { rows: swept.rows, cleanAccuracy, report };
    },
    train,
  );
}

interface ReportParts {
  p: Pipeline;
  /** Jobs side by side (the report names them beside the thread count when more than one). */
  jobs: number;
  trained: TrainingSummary;
  swept: SweepOutcome;
  cleanAccuracy: number;
  mode: AttackMode;
  attacks: SetupAttack[];
  epsilons: number[];
}

/** Each attack's parameters for the report, with its epsilon grid instead of one epsilon. */
function attackParamsOf(r: ReportParts): Record<string, AttackParams> {
  const specs = r.p.cache.sweepContext(r.p.setup(r.attacks)).attacks;
  const params: Record<string, AttackParams> = {};
  for (const a of specs) {
    const described = a.make(r.p.classifier, r.epsilons.at(-1) ?? 0.1).describe();
    delete (described as Record<string, unknown>).eps;
    params[a.name] = {
      ...(described as Record<string, string | number>),
      epsilons: (a.epsilons ?? r.epsilons).join(", "),
    };
  }
  return params;
}

function reproduceNotes(o: ReproduceOptions, r: ReportParts): string {
  const recipe = RECIPES[o.dataset];
  const n = datasetSize(r.p.test);
  const t = r.trained;
  return [
    `Classifier (${recipe.title} CNN of Table 1): clean top-1 accuracy ${r.cleanAccuracy.toFixed(4)} on ${n} test images.`,
    `VAE (Table 2 encoder, latent ${VAE_PRESETS[recipe.vaePreset].latentDim}): beta ${o.beta}, ${o.reconstruction.toUpperCase()} reconstruction, latent noise clipped to [-5, 5].`,
    `Test data: ${r.p.test.source}.`,
    `Training data: ${t.trainImages} images (${t.trainSource}); validation: ${t.validationImages} held-out training images.`,
    `Time: training or loading models ${t.seconds.toFixed(0)} s, evaluation ${r.swept.seconds.toFixed(0)} s.`,
    `Randomized defenses are scored as the mean over ${o.passes} forward pass(es); ± is the standard deviation over passes.`,
    r.mode === "gray-box"
      ? "Gray-box numbers are the paper's setting: the attacker does not know the defense. They overstate robustness; see `vaeguard evaluate --mode adaptive` for attacks that see the defense."
      : "Adaptive: each defense was attacked through itself (exact gradients for the VAE, BPDA identity for JPEG).",
  ].join("\n\n");
}

/** Step 5 of reproduce: the report with the paper's table beside ours. */
function reproduceReport(o: ReproduceOptions, r: ReportParts): ReportDraft {
  const recipe = RECIPES[o.dataset];
  const { p } = r;
  const names = p.defenses.map((d) => d.name);
  const pairs = [
    { paper: "No Def", ours: "No defense" },
    { paper: "JPEG 23", ours: "JPEG 23" },
    { paper: "VAE", ours: "VAE" },
  ].filter((x) => names.includes(x.ours));
  const draft = reportDraft(p, r.swept, {
    title: `vaeguard: ${recipe.title} reproduction of Luo & Pfister (2018)`,
    dataset: `${recipe.title} test set`,
    command: o.command,
    attackParams: attackParamsOf(r),
    paperReference: recipe.paper?.reference,
    gridDefenses: p.defenses.filter((d) => !(d instanceof NoDefense)).map((d) => d.name),
    gridCaption: (g) => `First test images at ${g.attack} eps ${g.epsilon}`,
    notes: reproduceNotes(o, r),
  });
  if (r.jobs > 1) {
    const each = threadsPerJob(getNumThreads(), r.jobs);
    draft.metadata.versions.jobs = `${r.jobs} side by side, ${each} libtorch thread${each === 1 ? "" : "s"} each`;
  }
  return {
    ...draft,
    paperComparisons: recipe.paper ? [{ paper: recipe.paper, attack: "FGSM", mode: r.mode, pairs }] : [],
  };
}
