/**
 * The vaeguard side of the pipeline benchmark (bench/pipeline.ts starts it as
 * a child process): `reproduceSmall`, the code of `vaeguard reproduce mnist`,
 * on the given work, in fresh temporary folders so that no checkpoint or
 * result is reused. Prints one JSON line: wall seconds per stage, the clean
 * accuracy and the table.
 *
 * It runs with reproduce's default jobs (two side by side when --threads is
 * 2 or more) unless the work names --jobs; the output says which.
 *
 * reproduce does not time its stages separately, so they are read from its
 * own progress and log, without changing it. One job at a time:
 * - classifier: from the start (test and training data loaded and hashed) to
 *   the start of the VAE's first epoch;
 * - vae: to the VAE's last epoch line (its validation included);
 * - evaluation: the rest (the last checkpoint write, loading the models by
 *   content hash, the clean accuracy, the sweep).
 * With the models trained side by side the stages overlap, so each ends where
 * the next can start: classifier, from the start to the classifier's last
 * epoch line (the VAE training alongside); vae, from there to the VAE's last
 * epoch line (0 if it finished first); evaluation, the rest. The total is the
 * wall time either way.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getNumThreads, setNumThreads } from "../src/core/engine.js";
import { defaultJobs, threadsPerJob } from "../src/eval/jobs.js";
import { silentProgress, type ProgressFactory } from "../src/core/progress.js";
import { softwareVersions } from "../src/core/versions.js";
import { reproduceSmall } from "../src/eval/reproduce.js";
import type { EngineRun, PipelineWork } from "./pipeline.js";

const work = JSON.parse(process.argv[2]) as PipelineWork;
setNumThreads(work.threads);
const jobs = work.jobs ?? defaultJobs(getNumThreads());
const dir = mkdtempSync(join(tmpdir(), "vaeguard-pipeline-"));
const outDir = join(dir, "report");
const checkpointDir = join(dir, "checkpoints");
mkdirSync(outDir);
mkdirSync(checkpointDir);

let vaeStart: number | undefined;
let vaeEnd: number | undefined;
let classifierEnd: number | undefined;
let sideBySide = false;
const lastVaeEpoch = `vae epoch ${work.epochs.vae}/${work.epochs.vae}:`;
const lastClassifierEpoch = `classifier epoch ${work.epochs.classifier}/${work.epochs.classifier}:`;
// Every loop's progress factory is asked for a reporter when the loop starts: the VAE's first epoch marks its stage.
const progress: ProgressFactory = (label, totalUnits, unit) => {
  if (vaeStart === undefined && label.startsWith("vae epoch ")) vaeStart = performance.now();
  return silentProgress(label, totalUnits, unit);
};
const log = (line: string) => {
  if (line.startsWith(lastVaeEpoch)) vaeEnd = performance.now();
  if (line.startsWith(lastClassifierEpoch)) classifierEnd = performance.now();
  if (/^training .* side by side/.test(line)) sideBySide = true;
  process.stderr.write(`[vaeguard] ${line}\n`);
};

try {
  const t0 = performance.now();
  const outcome = await reproduceSmall({
    dataset: "mnist",
    quick: false,
    outDir,
    checkpointDir,
    seed: work.seed,
    samples: work.testImages,
    trainSamples: work.trainImages,
    epochsClassifier: work.epochs.classifier,
    epochsVae: work.epochs.vae,
    epsilons: undefined,
    defenses: work.defenses,
    attacks: ["fgsm", "ifgsm"],
    mode: "gray-box",
    beta: work.beta,
    reconstruction: "bce",
    batchSize: work.batchSize,
    evalBatchSize: work.evalBatchSize,
    passes: 1,
    restart: true,
    command: "npm run bench -- --only pipeline",
    progress,
    log,
    jobs,
  });
  const t1 = performance.now();
  if (vaeStart === undefined || vaeEnd === undefined || classifierEnd === undefined) {
    throw new Error("the classifier's last epoch, or the VAE's first or last, was not seen");
  }
  const trained = Math.max(classifierEnd, vaeEnd);
  const stages = sideBySide
    ? { classifier: classifierEnd - t0, vae: trained - classifierEnd, evaluation: t1 - trained }
    : { classifier: vaeStart - t0, vae: vaeEnd - vaeStart, evaluation: t1 - vaeEnd };
  const result: EngineRun = {
    stages: {
      classifier: stages.classifier / 1000,
      vae: stages.vae / 1000,
      evaluation: stages.evaluation / 1000,
    },
    cleanAccuracy: outcome.cleanAccuracy,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    rows: outcome.rows.map((r) => ({ attack: r.attack, epsilon: r.epsilon, relL2: r.relL2, accuracy: r.accuracy })),
    about: {
      ...softwareVersions(),
      threads: work.threads,
      jobs,
      threadsPerJob: threadsPerJob(work.threads, jobs),
      trainedSideBySide: String(sideBySide),
    },
  };
  console.log(JSON.stringify(result));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
