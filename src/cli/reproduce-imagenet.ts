/**
 * `vaeguard reproduce imagenet` (alias `vaeguard reproduce-imagenet`): the
 * paper's NIPS 2017 experiment, Tables 6 and 7, on the competition's
 * development images with their true labels.
 */
import type { Command } from "commander";
import { join, resolve } from "node:path";
import { setProcessThreads } from "../core/concurrency.js";
import { LIMITS } from "../core/limits.js";
import { checkWritableDir } from "../io/preflight.js";
import { UsageError, progressBars, runAction } from "./common.js";
import { parseIntArg, parseListArg, parseNumberArg, parseThreadsArg } from "./args.js";
import {
  DEFAULT_FGSM_EPS,
  DEFAULT_IFGSM_EPS,
  DEFAULT_BATCH,
  DEFAULT_TRAIN_CPU_MINUTES,
  EPOCH_PATCHES,
  IFGSM_STEPS,
  PATCH_SIZES,
  type PatchSize,
} from "../eval/imagenet/settings.js";
import { reproduceImagenet, type ImagenetResult } from "../eval/imagenet/reproduce.js";
import type { BundlePaths } from "../report/bundle.js";
import { writeImagenetReport } from "../report/imagenet.js";
import { renderTextTable } from "../report/table.js";
import { addQueueOptions, queueRunners, type QueueOpts } from "./queue-options.js";

interface Opts extends QueueOpts {
  images?: string;
  model?: string;
  classOrder?: string;
  samples?: number;
  patchSizes?: number[];
  epochPatches?: string;
  trainMinutes?: string;
  trainCpuMinutes?: string;
  maxEpochs?: number;
  convergence: number;
  beta: number;
  lr: number;
  batchSize?: string;
  flip: boolean;
  eps?: number[];
  ifgsmEps?: number[];
  attacks?: string[];
  ifgsmSteps: number;
  evalBatchSize: number;
  evalMinutes?: number;
  shardSize?: number;
  shard?: string;
  gridImages: number;
  trainOnly?: boolean;
  quick?: boolean;
  out?: string;
  checkpoints: string;
  seed: number;
  restart?: boolean;
  threads?: number;
  json?: boolean;
  quiet?: boolean;
}

/** "12" for every patch size, or "16=12,32=15,64=33". */
export function parsePerPatchSize(
  flag: string,
  v: string,
  min: number,
  integer: boolean,
): number | Partial<Record<PatchSize, number>> {
  const t = v.trim();
  const ok = (x: number) => Number.isFinite(x) && x >= min && (!integer || Number.isInteger(x));
  if (t !== "" && !t.includes("=") && ok(Number(t))) return Number(t);
  const out: Partial<Record<PatchSize, number>> = {};
  for (const part of t.split(",")) {
    const m = /^\s*(\d+)\s*=\s*([0-9.eE+-]+)\s*$/.exec(part);
    if (!m || !(PATCH_SIZES as readonly number[]).includes(Number(m[1])) || !ok(Number(m[2]))) {
      throw new UsageError(
        `Expected ${integer ? "an integer" : "a number"} of at least ${min} or a list like 16=N,32=N,64=N for --${flag} but received ${v}`,
      );
    }
    out[Number(m[1]) as PatchSize] = Number(m[2]);
  }
  return out;
}

function perSize(
  x: number | Partial<Record<PatchSize, number>> | undefined,
): Partial<Record<PatchSize, number>> | undefined {
  if (x === undefined || typeof x === "object") return x;
  return Object.fromEntries(PATCH_SIZES.map((p) => [p, x]));
}

const spec = (r: Record<number, number>) =>
  Object.entries(r)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");

/** The development images, the classifier and how many images to evaluate. */
function addDataOptions(cmd: Command): Command {
  return cmd
    .option(
      "--images <dir>",
      "the NIPS 2017 development set: dev_dataset.csv (ImageId, TrueLabel) and images/<ImageId>.png, 299x299",
    )
    .option(
      "--model <path>",
      "classifier: a .tflite file, a TF.js Layers model.json (or its folder) or a TorchScript .pt; 1001 outputs (TrueLabel) or 1000",
    )
    .option(
      "--class-order <file>",
      "for a 1000-class model: its outputs' WordNet ids, one per line (default: the only *wnids.txt beside the model; none: the standard sorted order)",
    )
    .option(
      "--samples <n>",
      "evaluate the first n images of the evaluation half (default: all 500)",
      parseIntArg("samples", 1),
    );
}

/** Training of the patch VAEs (Table 3); the time caps make long runs resumable. */
function addVaeTrainingOptions(cmd: Command): Command {
  return cmd
    .option("--patch-sizes <list>", "patch VAEs: 16,32,64", parseListArg(parseIntArg("patch-sizes", 1)))
    .option(
      "--epoch-patches <spec>",
      `fresh training patches per epoch: N or 16=N,32=N,64=N (default ${spec(EPOCH_PATCHES)})`,
    )
    .option(
      "--train-cpu-minutes <spec>",
      `cap on the CPU time of training per VAE, all sessions together: N or 16=N,32=N,64=N (default ${spec(DEFAULT_TRAIN_CPU_MINUTES)}); a larger cap later resumes`,
    )
    .option("--train-minutes <spec>", "the same cap in wall-clock minutes (none by default)")
    .option("--max-epochs <n>", "most training epochs per VAE", parseIntArg("max-epochs", 1, LIMITS.epochs))
    .option(
      "--convergence <x>",
      "stop training when the reconstruction term changes by less than this fraction per epoch (the paper's criterion)",
      parseNumberArg("convergence", 0, 1),
      0.01,
    )
    .option("--beta <x>", "weight of the VAE's KL term (the authors: 0.01)", parseNumberArg("beta", 0), 0.01)
    .option("--lr <x>", "Adam learning rate for the VAEs (the authors: 0.001)", parseNumberArg("lr", 0), 1e-3)
    .option("--batch-size <spec>", `VAE training batch: N or 16=N,32=N,64=N (default ${spec(DEFAULT_BATCH)})`)
    .option("--no-flip", "no random horizontal flips of the training patches");
}

/** The attacks of Tables 6 and 7 and how evaluation is batched. */
function addAttackOptions(cmd: Command): Command {
  return cmd
    .option(
      "--eps <list>",
      `FGSM epsilons (default ${DEFAULT_FGSM_EPS.join(",")})`,
      parseListArg(parseNumberArg("eps", 0, 1)),
    )
    .option(
      "--ifgsm-eps <list>",
      `I-FGSM epsilons (default ${DEFAULT_IFGSM_EPS.join(",")})`,
      parseListArg(parseNumberArg("ifgsm-eps", 0, 1)),
    )
    .option("--attacks <list>", "comma-separated: fgsm,ifgsm", parseListArg(String))
    .option(
      "--ifgsm-steps <n>",
      "I-FGSM iterations (the paper: 10)",
      parseIntArg("ifgsm-steps", 1, LIMITS.attackSteps),
      IFGSM_STEPS,
    )
    .option(
      "--eval-batch-size <n>",
      "images per attack and defense batch",
      parseIntArg("eval-batch-size", 1, LIMITS.batchSize),
      8,
    )
    .option(
      "--eval-minutes <x>",
      "start no new cell after this many minutes; the report covers the first shards of images done, a later run continues",
      parseNumberArg("eval-minutes", 0),
    )
    .option(
      "--shard-size <n>",
      "images per cell, the unit of work, seeding and resumption (default: the eval batch size); part of the settings, like --seed",
      parseIntArg("shard-size", 1),
    );
}

/** Sharding, output folders and run control. */
function addRunOptions(cmd: Command): Command {
  return cmd
    .option(
      "--shard <k/n>",
      "run only the k-th of n shares of the cells (shards of images), in its own results file and without a report (run n such processes, then one without --shard to merge and report; or see --queue)",
    )
    .option("--grid-images <n>", "images in the picture grid", parseIntArg("grid-images", 1), 4)
    .option("--train-only", "train (or resume) the patch VAEs and stop")
    .option("--quick", "a short run: 4 images, tiny VAE training, FGSM at 0 and 0.03, I-FGSM at 0.03")
    .option("--out <dir>", "report folder (default runs/imagenet[-quick])")
    .option("--checkpoints <dir>", "where trained VAEs are kept, reused and resumed", "runs/checkpoints")
    .option("--seed <n>", "random seed", parseIntArg("seed", 0), 0)
    .option("--restart", "ignore existing checkpoints and results; train and evaluate from scratch")
    .option("--threads <n>", "libtorch threads (default: all cores)", parseThreadsArg())
    .option("--json", "print the results as JSON on stdout")
    .option("--quiet", "no progress output");
}

/** --queue, and the options after it, as `reproduce` orders them. */
function addQueueAndRunOptions(cmd: Command): Command {
  return addRunOptions(addQueueOptions(cmd));
}

/** Options and action of the command, on `cmd` (the subcommand and its alias share them). */
function define(cmd: Command): void {
  cmd.description(
    "the paper's NIPS 2017 experiment (Tables 6 and 7): split the images into an evaluation and a training half, train the patch VAEs of Table 3 " +
      "on the training half, attack the classifier with FGSM and I-FGSM (gray-box) on the evaluation half with true labels, defend with JPEG, patch VAEs and their ensemble, write a report",
  );
  // Declared in this order so --help lists them as before.
  addDataOptions(cmd);
  addVaeTrainingOptions(cmd);
  addAttackOptions(cmd);
  addQueueAndRunOptions(cmd);
  cmd.action((opts: Opts) => runAction(() => imagenetCommand(opts)));
}

/** `vaeguard reproduce imagenet`, on the `reproduce` command. */
export function registerImagenetSubcommand(reproduce: Command): void {
  define(reproduce.command("imagenet"));
}

/** `vaeguard reproduce-imagenet`: the same command under its older name. */
export function register(program: Command): void {
  define(program.command("reproduce-imagenet"));
}

async function imagenetCommand(opts: Opts): Promise<void> {
  if (!opts.images) throw new UsageError("--images is required (the NIPS 2017 development set folder)");
  for (const a of opts.attacks ?? []) {
    if (a !== "fgsm" && a !== "ifgsm")
      throw new UsageError(`Expected "fgsm" or "ifgsm" in --attacks but received ${JSON.stringify(a)}`);
  }
  for (const p of opts.patchSizes ?? []) {
    if (!(PATCH_SIZES as readonly number[]).includes(p))
      throw new UsageError(`Expected patch sizes among ${PATCH_SIZES.join(", ")} in --patch-sizes but received ${p}`);
  }
  const epochPatches =
    opts.epochPatches === undefined ? undefined : parsePerPatchSize("epoch-patches", opts.epochPatches, 1, true);
  const trainMinutes =
    opts.trainMinutes === undefined ? undefined : parsePerPatchSize("train-minutes", opts.trainMinutes, 0, false);
  const trainCpuMinutes =
    opts.trainCpuMinutes === undefined
      ? undefined
      : parsePerPatchSize("train-cpu-minutes", opts.trainCpuMinutes, 0, false);
  const batchSize = opts.batchSize === undefined ? undefined : parsePerPatchSize("batch-size", opts.batchSize, 1, true);
  let shard: { index: number; count: number } | undefined;
  if (opts.shard !== undefined) {
    const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(opts.shard);
    if (!m || Number(m[2]) < 1 || Number(m[1]) < 1 || Number(m[1]) > Number(m[2])) {
      throw new UsageError(`Expected k/n with 1 <= k <= n (for example 1/2) for --shard but received ${opts.shard}`);
    }
    shard = { index: Number(m[1]), count: Number(m[2]) };
  }
  const runner = queueRunners(opts, Boolean(opts.restart), (l) => process.stderr.write(l + "\n"));
  if (runner && shard) throw new UsageError("--shard and --queue both share the cells out; use one of them");
  if (opts.threads) setProcessThreads(opts.threads);
  const out = checkWritableDir(opts.out ?? join("runs", `imagenet${opts.quick ? "-quick" : ""}`), "the report");
  checkWritableDir(opts.checkpoints, "checkpoints");
  const t0 = performance.now();
  const { report, ...result } = await reproduceImagenet({
    images: opts.images,
    model: opts.model,
    classOrder: opts.classOrder,
    samples: opts.samples,
    patchSizes: opts.patchSizes as PatchSize[] | undefined,
    epochPatches: perSize(epochPatches),
    trainMinutes: perSize(trainMinutes),
    trainCpuMinutes: perSize(trainCpuMinutes) ?? (opts.quick ? undefined : DEFAULT_TRAIN_CPU_MINUTES),
    maxEpochs: opts.maxEpochs,
    convergence: opts.convergence,
    beta: opts.beta,
    lr: opts.lr,
    batchSize: perSize(batchSize),
    flip: opts.flip,
    fgsmEpsilons: opts.eps,
    ifgsmEpsilons: opts.ifgsmEps,
    attacks: opts.attacks as ("fgsm" | "ifgsm")[] | undefined,
    ifgsmSteps: opts.ifgsmSteps,
    evalBatchSize: opts.evalBatchSize,
    evalMinutes: opts.evalMinutes,
    shardSize: opts.shardSize,
    runner,
    shard,
    gridImages: opts.gridImages,
    trainOnly: Boolean(opts.trainOnly),
    quick: Boolean(opts.quick),
    outDir: out,
    progress: progressBars(opts.quiet),
    checkpointDir: resolve(opts.checkpoints),
    seed: opts.seed,
    restart: Boolean(opts.restart),
    command: ["vaeguard", ...process.argv.slice(2)].join(" "),
    quiet: opts.quiet,
  });
  const paths = report ? await writeImagenetReport(report) : undefined;
  const seconds = (performance.now() - t0) / 1000;
  if (opts.json) {
    console.log(JSON.stringify({ ...result, paths, seconds }, null, 2));
    return;
  }
  printResult(result, paths, seconds);
}

/** The tables, the claims and the acceptance check on stdout. */
function printResult(result: Omit<ImagenetResult, "report">, paths: BundlePaths | undefined, seconds: number): void {
  for (const v of result.vaes) {
    console.log(
      `VAE ${v.patchSize}x${v.patchSize}: ${v.history.length} epoch(s), stopped: ${v.stopReason}, ${(v.trainSeconds / 60).toFixed(1)} min, ${v.checkpoint}`,
    );
  }
  const rows = result.rows ?? [];
  for (const attack of [...new Set(rows.map((r) => r.attack))]) {
    console.log(`\n${attack} (gray-box), top-1 accuracy on ${result.images} evaluation images (true labels)`);
    console.log(renderTextTable(rows.filter((r) => r.attack === attack)));
  }
  for (const c of result.claims ?? []) console.log(`claim (${c.id}) ${c.claim}: ${c.outcome}`);
  for (const a of result.acceptance?.checks ?? []) {
    console.log(
      `clean accuracy kept by ${a.column}: ${a.ratio.toFixed(3)} of undefended (${a.passes ? "passes" : "FAILS"} >= 0.85)`,
    );
  }
  if (paths) console.log(`\nReport: ${paths.report}`);
  console.log(`(${seconds.toFixed(0)} s)`);
}
