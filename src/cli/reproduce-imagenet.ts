/** `vaeguard reproduce-imagenet`: the paper's large-image experiment (Tables 6 and 7) on local photographs. */
import { checkWritableDir } from "../io/preflight.js";
import type { Command } from "commander";
import { join, resolve } from "node:path";
import { setNumThreads } from "../core/engine.js";
import { LIMITS } from "../core/limits.js";
import { UsageError, parseIntArg, parseListArg, parseNumberArg, runAction, parseThreadsArg } from "./common.js";
import {
  DEFAULT_FGSM_EPS,
  DEFAULT_IFGSM_EPS,
  DEFAULT_MODELS_DIR,
  DEFAULT_PATCHES,
  DEFAULT_TRAIN_SOURCES,
  PATCH_SIZES,
  QUICK_PATCHES,
  reproduceImagenet,
  type PatchSize,
} from "../eval/reproduce-imagenet.js";
import { INPUT_SCALINGS, type InputScalingName } from "../models/tfjs.js";
import { renderTextTable } from "../report/table.js";

interface Opts {
  images?: string;
  model?: string;
  modelsDir: string;
  inputScaling?: string;
  inputSize?: number;
  mean?: number[];
  std?: number[];
  trainSources?: string[];
  evalSources?: string[];
  sourceColumn: string;
  trainImages?: string;
  labels: string;
  labelOffset: number;
  samples?: number;
  patchSizes?: number[];
  patches?: string;
  epochsVae: number;
  beta: number;
  lr: number;
  batchSize: number;
  flip: boolean;
  eps?: number[];
  ifgsmEps?: number[];
  attacks?: string[];
  ifgsmSteps: number;
  mode: string;
  evalBatchSize: number;
  passes: number;
  gridImages: number;
  quick?: boolean;
  out?: string;
  checkpoints: string;
  seed: number;
  restart?: boolean;
  threads?: number;
  json?: boolean;
  quiet?: boolean;
}

/** "4000" for every patch size, or "16=4000,32=2000,64=1000". */
export function parsePatches(v: string): number | Partial<Record<PatchSize, number>> {
  const t = v.trim();
  if (/^\d+$/.test(t) && Number(t) >= 1) return Number(t);
  const out: Partial<Record<PatchSize, number>> = {};
  for (const part of t.split(",")) {
    const m = /^\s*(\d+)\s*=\s*(\d+)\s*$/.exec(part);
    if (!m || !(PATCH_SIZES as readonly number[]).includes(Number(m[1])) || Number(m[2]) < 1) {
      throw new UsageError(
        `Expected a count of at least 1 or a list like 16=4000,32=2000,64=1000 for --patches but received ${v}`,
      );
    }
    out[Number(m[1]) as PatchSize] = Number(m[2]);
  }
  return out;
}

export function register(program: Command): void {
  program
    .command("reproduce-imagenet")
    .description(
      "the paper's large-image experiment (Tables 6 and 7): train the patch VAEs of Table 3 on photographs not used for evaluation, " +
        "attack a pretrained classifier with FGSM and I-FGSM (gray-box), defend with JPEG, patch VAEs and their ensemble, write a report",
    )
    .option(
      "--images <dir>",
      "image folder: CSV layout (NIPS 2017: ImageId, TrueLabel, optional Source column) or class folders (default: the Debian photo set in .cache/photos, built when missing)",
    )
    .option(
      "--model <path>",
      "classifier: a TF.js Layers model.json (or its folder) or a TorchScript .pt file (default: nsfwjs' Inception V3, extracted when missing)",
    )
    .option("--models-dir <dir>", "where the default nsfwjs models are extracted", DEFAULT_MODELS_DIR)
    .option(
      "--input-scaling <name>",
      `TF.js input scaling: ${Object.keys(INPUT_SCALINGS).join(", ")} (default: the model.json's vaeguard metadata, else unit)`,
    )
    .option(
      "--input-size <n>",
      "TorchScript: square input size",
      parseIntArg("input-size", 1, LIMITS.imageSide),
      undefined,
    )
    .option(
      "--mean <list>",
      "TorchScript: per-channel mean subtracted from [0, 1] images",
      parseListArg(parseNumberArg("mean")),
    )
    .option("--std <list>", "TorchScript: per-channel standard deviation", parseListArg(parseNumberArg("std", 1e-12)))
    .option(
      "--train-sources <list>",
      `sources (CSV Source column, e.g. Debian packages) whose images train the VAEs (default ${DEFAULT_TRAIN_SOURCES.join(",")})`,
      parseListArg(String),
    )
    .option(
      "--eval-sources <list>",
      "sources to evaluate (default: every source not used for training)",
      parseListArg(String),
    )
    .option("--source-column <name>", "CSV column that names each image's source", "Source")
    .option("--train-images <dir>", "a separate folder of training images (then every image of --images is evaluated)")
    .option(
      "--labels <kind>",
      "clean: the classifier's clean predictions (\"agreement with the clean prediction\"); dataset: the folder's labels",
      "clean",
    )
    .option(
      "--label-offset <n>",
      "added to the folder's labels with --labels dataset (NIPS 2017 CSV with a 1000-class model: -1)",
      parseIntArg("label-offset"),
      0,
    )
    .option("--samples <n>", "evaluate at most this many images (default: all; quick: 4)", parseIntArg("samples", 1))
    .option(
      "--patch-sizes <list>",
      "patch VAEs to train and evaluate: 16,32,64 (64x64 has ~100M parameters in its dense layers and trains slowly on a CPU)",
      parseListArg(parseIntArg("patch-sizes", 1)),
    )
    .option(
      "--patches <spec>",
      `training patches per VAE: N, or 16=N,32=N,64=N (default ${Object.entries(DEFAULT_PATCHES)
        .map(([k, v]) => `${k}=${v}`)
        .join(",")}; quick ${Object.entries(QUICK_PATCHES)
        .map(([k, v]) => `${k}=${v}`)
        .join(",")})`,
    )
    .option(
      "--epochs-vae <n>",
      "VAE training epochs over the patches (resumes a checkpoint with fewer)",
      parseIntArg("epochs-vae", 1, LIMITS.epochs),
      1,
    )
    .option("--beta <x>", "weight of the VAE's KL term (the authors' code: 0.01)", parseNumberArg("beta", 0), 0.01)
    .option("--lr <x>", "Adam learning rate for the VAEs", parseNumberArg("lr", 0), 1e-3)
    .option("--batch-size <n>", "VAE training batch size", parseIntArg("batch-size", 1, LIMITS.batchSize), 32)
    .option("--no-flip", "no random horizontal flips of the training patches")
    .option(
      "--eps <list>",
      `FGSM epsilons (default ${DEFAULT_FGSM_EPS.join(",")}; quick 0,0.03)`,
      parseListArg(parseNumberArg("eps", 0, 1)),
    )
    .option(
      "--ifgsm-eps <list>",
      `I-FGSM epsilons (default ${DEFAULT_IFGSM_EPS.join(",")}; quick 0.03)`,
      parseListArg(parseNumberArg("ifgsm-eps", 0, 1)),
    )
    .option("--attacks <list>", "comma-separated: fgsm,ifgsm", parseListArg(String))
    .option(
      "--ifgsm-steps <n>",
      "I-FGSM iterations (the paper: 10)",
      parseIntArg("ifgsm-steps", 1, LIMITS.attackSteps),
      10,
    )
    .option("--mode <mode>", "gray-box (the paper's) or adaptive (attacks see the defense)", "gray-box")
    .option(
      "--eval-batch-size <n>",
      "images per attack and defense batch",
      parseIntArg("eval-batch-size", 1, LIMITS.batchSize),
      16,
    )
    .option(
      "--passes <n>",
      "forward passes per randomized defense (scored as their mean)",
      parseIntArg("passes", 1, LIMITS.passes),
      1,
    )
    .option("--grid-images <n>", "images in the picture grid", parseIntArg("grid-images", 1), 4)
    .option("--quick", "a short run: 4 images, tiny VAE training, FGSM at 0 and 0.03, I-FGSM at 0.03")
    .option("--out <dir>", "report folder (default runs/imagenet[-quick])")
    .option("--checkpoints <dir>", "where trained VAEs are kept and reused", "runs/checkpoints")
    .option("--seed <n>", "random seed", parseIntArg("seed", 0), 0)
    .option("--restart", "ignore existing checkpoints and results; train and evaluate from scratch")
    .option("--threads <n>", "libtorch threads (default: all cores)", parseThreadsArg())
    .option("--json", "print the result rows as JSON on stdout")
    .option("--quiet", "no progress output")
    .action((opts: Opts) =>
      runAction(async () => {
        if (!["gray-box", "adaptive"].includes(opts.mode)) {
          throw new UsageError(
            `Expected one of "gray-box", "adaptive" for --mode but received ${JSON.stringify(opts.mode)}`,
          );
        }
        if (!["clean", "dataset"].includes(opts.labels)) {
          throw new UsageError(
            `Expected one of "clean", "dataset" for --labels but received ${JSON.stringify(opts.labels)}`,
          );
        }
        for (const a of opts.attacks ?? []) {
          if (a !== "fgsm" && a !== "ifgsm")
            throw new UsageError(`Expected "fgsm" or "ifgsm" in --attacks but received ${JSON.stringify(a)}`);
        }
        for (const p of opts.patchSizes ?? []) {
          if (!(PATCH_SIZES as readonly number[]).includes(p))
            throw new UsageError(
              `Expected patch sizes among ${PATCH_SIZES.join(", ")} in --patch-sizes but received ${p}`,
            );
        }
        if (opts.inputScaling !== undefined && !(opts.inputScaling in INPUT_SCALINGS)) {
          throw new UsageError(
            `Expected one of ${Object.keys(INPUT_SCALINGS).join(", ")} for --input-scaling but received ${JSON.stringify(opts.inputScaling)}`,
          );
        }
        if (opts.trainImages && (opts.trainSources || opts.evalSources)) {
          throw new UsageError("Give either --train-images or --train-sources/--eval-sources, not both");
        }
        if (opts.threads) setNumThreads(opts.threads);
        const out = checkWritableDir(opts.out ?? join("runs", `imagenet${opts.quick ? "-quick" : ""}`), "the report");
        checkWritableDir(opts.checkpoints, "checkpoints");
        const t0 = performance.now();
        const result = await reproduceImagenet({
          images: opts.images,
          model: opts.model,
          modelsDir: opts.modelsDir,
          inputScaling: opts.inputScaling as InputScalingName | undefined,
          inputSize: opts.inputSize,
          mean: opts.mean,
          std: opts.std,
          trainSources: opts.trainSources,
          evalSources: opts.evalSources,
          sourceColumn: opts.sourceColumn,
          trainImages: opts.trainImages,
          labels: opts.labels as "clean" | "dataset",
          labelOffset: opts.labelOffset,
          samples: opts.samples,
          patchSizes: opts.patchSizes as PatchSize[] | undefined,
          patches: opts.patches === undefined ? undefined : parsePatches(opts.patches),
          epochsVae: opts.epochsVae,
          beta: opts.beta,
          lr: opts.lr,
          batchSize: opts.batchSize,
          flip: opts.flip,
          fgsmEpsilons: opts.eps,
          ifgsmEpsilons: opts.ifgsmEps,
          attacks: opts.attacks as ("fgsm" | "ifgsm")[] | undefined,
          ifgsmSteps: opts.ifgsmSteps,
          mode: opts.mode as "gray-box" | "adaptive",
          evalBatchSize: opts.evalBatchSize,
          passes: opts.passes,
          gridImages: opts.gridImages,
          quick: Boolean(opts.quick),
          outDir: out,
          checkpointDir: resolve(opts.checkpoints),
          seed: opts.seed,
          restart: Boolean(opts.restart),
          command: ["vaeguard", ...process.argv.slice(2)].join(" "),
          quiet: opts.quiet,
        });
        const seconds = (performance.now() - t0) / 1000;
        if (opts.json) {
          console.log(
            JSON.stringify(
              {
                rows: result.rows,
                evalImages: result.evalImages,
                trainImages: result.trainImages,
                vaes: result.vaes,
                report: result.paths.report,
                seconds,
              },
              null,
              2,
            ),
          );
          return;
        }
        for (const attack of [...new Set(result.rows.map((r) => r.attack))]) {
          console.log(`\n${attack} (${opts.mode}); agreement with the clean prediction by defense`);
          console.log(renderTextTable(result.rows.filter((r) => r.attack === attack)));
        }
        console.log(`\nReport: ${result.paths.report} (${seconds.toFixed(0)} s)`);
      }),
    );
}
