/**
 * The vaeguard side of the pipeline benchmark (bench/pipeline.ts starts it as
 * a child process): `reproduceSmall`, the code of `vaeguard reproduce mnist`,
 * on the given work, in fresh temporary folders so that no checkpoint or
 * result is reused. Prints one JSON line: wall seconds per stage, the clean
 * accuracy and the table.
 *
 * reproduce does not time its stages separately, so they are read from its
 * own progress and log, without changing it:
 * - classifier: from the start (test and training data loaded and hashed) to
 *   the start of the VAE's first epoch;
 * - vae: to the VAE's last epoch line (its validation included);
 * - evaluation: the rest (the last checkpoint write, loading the models by
 *   content hash, the clean accuracy, the sweep).
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setNumThreads } from "../src/core/engine.js";
import { silentProgress, type ProgressFactory } from "../src/core/progress.js";
import { softwareVersions } from "../src/core/versions.js";
import { reproduceSmall } from "../src/eval/reproduce.js";
import type { EngineRun, PipelineWork } from "./pipeline.js";

const work = JSON.parse(process.argv[2]) as PipelineWork;
setNumThreads(work.threads);
const dir = mkdtempSync(join(tmpdir(), "vaeguard-pipeline-"));
const outDir = join(dir, "report");
const checkpointDir = join(dir, "checkpoints");
mkdirSync(outDir);
mkdirSync(checkpointDir);

let vaeStart: number | undefined;
let vaeEnd: number | undefined;
const lastVaeEpoch = `vae epoch ${work.epochs.vae}/${work.epochs.vae}:`;
// Every loop's progress factory is asked for a reporter when the loop starts: the VAE's first epoch marks its stage.
const progress: ProgressFactory = (label, totalUnits, unit) => {
  if (vaeStart === undefined && label.startsWith("vae epoch ")) vaeStart = performance.now();
  return silentProgress(label, totalUnits, unit);
};
const log = (line: string) => {
  if (line.startsWith(lastVaeEpoch)) vaeEnd = performance.now();
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
  });
  const t1 = performance.now();
  if (vaeStart === undefined || vaeEnd === undefined) throw new Error("the VAE's first or last epoch was not seen");
  const result: EngineRun = {
    stages: {
      classifier: (vaeStart - t0) / 1000,
      vae: (vaeEnd - vaeStart) / 1000,
      evaluation: (t1 - vaeEnd) / 1000,
    },
    cleanAccuracy: outcome.cleanAccuracy,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    rows: outcome.rows.map((r) => ({ attack: r.attack, epsilon: r.epsilon, relL2: r.relL2, accuracy: r.accuracy })),
    about: { ...softwareVersions(), threads: work.threads },
  };
  console.log(JSON.stringify(result));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
