/** `vaeguard reproduce <dataset>`: the paper's experiments end to end. */
import { checkWritableDir } from "../io/preflight.js";
import type { Command } from "commander";
import { join, resolve } from "node:path";
import { setProcessThreads } from "../core/concurrency.js";
import { getNumThreads } from "../core/engine.js";
import { LIMITS } from "../core/limits.js";
import { UsageError, concurrentOutput, progressBars, runAction } from "./common.js";
import { parseIntArg, parseListArg, parseNumberArg, parseThreadsArg } from "./args.js";
import { reproduceSmall, RECIPES, DEFAULT_DEFENSES, type SmallDataset } from "../eval/reproduce.js";
import { DEFAULT_MAX_JOBS, defaultJobs } from "../eval/jobs.js";
import { renderTextTable } from "../report/table.js";
import { writeRunReport } from "../report/run-report.js";
import { addQueueOptions, queueRunners, type QueueOpts } from "./queue-options.js";
import { registerImagenetSubcommand } from "./reproduce-imagenet.js";

interface Opts extends QueueOpts {
  quick?: boolean;
  out?: string;
  checkpoints: string;
  dataDir?: string;
  seed: number;
  samples?: number;
  trainSamples?: number;
  eps?: number[];
  defenses?: string[];
  attacks?: string[];
  mode: string;
  epochsClassifier?: number;
  epochsVae?: number;
  beta: number;
  reconstruction: string;
  batchSize: number;
  evalBatchSize: number;
  passes: number;
  shardSize?: number;
  restart?: boolean;
  threads?: number;
  jobs?: number;
  json?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  const reproduce = program
    .command("reproduce")
    // Options after `reproduce imagenet` belong to the imagenet subcommand.
    .enablePositionalOptions()
    .description(
      "reproduce the paper's experiment on a data set: train (or reuse) the classifier and the VAE, sweep FGSM and I-FGSM (here, or with --queue on workers), write a report",
    )
    .argument(
      "<dataset>",
      `one of ${Object.keys(RECIPES).join(", ")} (and imagenet: see \`vaeguard reproduce imagenet --help\`)`,
    )
    .option("--quick", "a short run on subsets (10,000 training and 1,000 test images, fewer epochs and epsilons)")
    .option("--out <dir>", "report folder (default runs/<dataset>[-quick])")
    .option("--checkpoints <dir>", "where trained models are kept and reused", "runs/checkpoints")
    .option("--data-dir <dir>", "data files to use instead of the default source")
    .option("--seed <n>", "random seed", parseIntArg("seed", 0), 0)
    .option("--samples <n>", "test images to evaluate (default: all)", parseIntArg("samples", 1))
    .option(
      "--train-samples <n>",
      "training images to use (default: all but the validation split)",
      parseIntArg("train-samples", 1),
    )
    .option("--eps <list>", "comma-separated epsilons in [0, 1]", parseListArg(parseNumberArg("eps", 0, 1)))
    .option(
      "--defenses <list>",
      `comma-separated defenses (default ${DEFAULT_DEFENSES.join(",")})`,
      parseListArg(String),
    )
    .option("--attacks <list>", "comma-separated attacks: fgsm,ifgsm", parseListArg(String))
    .option("--mode <mode>", "gray-box (the paper's) or adaptive (attacks see the defense)", "gray-box")
    .option("--epochs-classifier <n>", "classifier training epochs", parseIntArg("epochs-classifier", 1, LIMITS.epochs))
    .option("--epochs-vae <n>", "VAE training epochs", parseIntArg("epochs-vae", 1, LIMITS.epochs))
    .option("--beta <x>", "weight of the VAE's KL term", parseNumberArg("beta", 0), 0.01)
    .option("--reconstruction <kind>", "VAE reconstruction loss: bce or mse", "bce")
    .option("--batch-size <n>", "training batch size", parseIntArg("batch-size", 1, LIMITS.batchSize), 128)
    .option("--eval-batch-size <n>", "evaluation batch size", parseIntArg("eval-batch-size", 1, LIMITS.batchSize), 500)
    .option(
      "--passes <n>",
      "forward passes per randomized defense (scored as their mean)",
      parseIntArg("passes", 1, LIMITS.passes),
      1,
    )
    .option(
      "--shard-size <n>",
      "images per cell, the unit of work, seeding and resumption (default: all, one cell per row); part of the settings, like --seed",
      parseIntArg("shard-size", 1),
    );
  addQueueOptions(reproduce)
    .option("--restart", "ignore existing checkpoints and results; train and evaluate from scratch")
    .option("--threads <n>", "libtorch threads (default: all cores), shared among the --jobs", parseThreadsArg())
    .option(
      "--jobs <n>",
      `jobs side by side, each with threads/jobs libtorch threads: the classifier and the VAE train at the same time (when both need training) and the sweep's cells run on that many threads of this process; with as many threads per job, the results are those of --jobs 1 bit for bit (default: ${DEFAULT_MAX_JOBS} when --threads allows ${DEFAULT_MAX_JOBS}, else 1; 1: one job at a time with all threads)`,
      parseIntArg("jobs", 1, 64),
    )
    .option("--json", "print the result rows as JSON on stdout")
    .option("--quiet", "no progress output")
    .action((dataset: string, opts: Opts) => runAction(() => reproduceCommand(dataset, opts)));
  registerImagenetSubcommand(reproduce);
}

/** The choices commander leaves to us: one line naming the bad one. */
function checkChoices(dataset: string, opts: Opts): void {
  if (!(dataset in RECIPES)) {
    throw new UsageError(
      `Expected one of ${Object.keys(RECIPES).join(", ")} for dataset but received ${JSON.stringify(dataset)}` +
        " (large images: `vaeguard reproduce imagenet`)",
    );
  }
  if (!["gray-box", "adaptive"].includes(opts.mode)) {
    throw new UsageError(`Expected one of "gray-box", "adaptive" for --mode but received ${JSON.stringify(opts.mode)}`);
  }
  if (!["bce", "mse"].includes(opts.reconstruction)) {
    throw new UsageError(
      `Expected one of "bce", "mse" for --reconstruction but received ${JSON.stringify(opts.reconstruction)}`,
    );
  }
  for (const a of opts.attacks ?? []) {
    if (a !== "fgsm" && a !== "ifgsm")
      throw new UsageError(`Expected "fgsm" or "ifgsm" in --attacks but received ${JSON.stringify(a)}`);
  }
}

const plainLog = (l: string) => void process.stderr.write(l + "\n");

async function reproduceCommand(dataset: string, opts: Opts): Promise<void> {
  checkChoices(dataset, opts);
  if (opts.threads) setProcessThreads(opts.threads);
  const jobs = opts.jobs ?? defaultJobs(getNumThreads());
  // Two jobs' progress at once needs bars that share the terminal; one job keeps the single bar it always had.
  const output = jobs > 1 ? concurrentOutput(opts.quiet) : { progress: progressBars(opts.quiet), log: plainLog };
  const log = output.log;
  const runner = queueRunners(opts, Boolean(opts.restart), log);
  const ds = dataset as SmallDataset;
  const out = checkWritableDir(opts.out ?? join("runs", `${ds}${opts.quick ? "-quick" : ""}`), "the report");
  checkWritableDir(opts.checkpoints, "checkpoints");
  const t0 = performance.now();
  const { rows, report, cleanAccuracy } = await reproduceSmall({
    dataset: ds,
    quick: Boolean(opts.quick),
    outDir: out,
    checkpointDir: resolve(opts.checkpoints),
    dataDir: opts.dataDir && resolve(opts.dataDir),
    seed: opts.seed,
    samples: opts.samples,
    trainSamples: opts.trainSamples,
    epsilons: opts.eps,
    defenses: opts.defenses,
    attacks: opts.attacks as ("fgsm" | "ifgsm")[] | undefined,
    mode: opts.mode as "gray-box" | "adaptive",
    epochsClassifier: opts.epochsClassifier,
    epochsVae: opts.epochsVae,
    beta: opts.beta,
    reconstruction: opts.reconstruction as "bce" | "mse",
    batchSize: opts.batchSize,
    evalBatchSize: opts.evalBatchSize,
    passes: opts.passes,
    shardSize: opts.shardSize,
    restart: Boolean(opts.restart),
    command: ["vaeguard", ...process.argv.slice(2)].join(" "),
    quiet: opts.quiet,
    progress: output.progress,
    log,
    runner,
    jobs,
  });
  const paths = await writeRunReport(out, report);
  const seconds = (performance.now() - t0) / 1000;
  if (opts.json) {
    console.log(JSON.stringify({ cleanAccuracy, rows, report: paths.report, seconds }, null, 2));
    return;
  }
  for (const attack of [...new Set(rows.map((r) => r.attack))]) {
    console.log(`\n${attack} (${opts.mode}) on ${RECIPES[ds].title}; top-1 accuracy by defense`);
    console.log(renderTextTable(rows.filter((r) => r.attack === attack)));
  }
  console.log(`\nClean accuracy of the classifier: ${cleanAccuracy.toFixed(4)}`);
  console.log(`Report: ${paths.report} (${seconds.toFixed(0)} s)`);
}
