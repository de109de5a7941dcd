/**
 * `vaeguard evaluate`: a trained classifier (and VAE) against a list of
 * attacks, an epsilon grid and a list of defenses, in gray-box mode, adaptive
 * mode or both side by side; resumes from its results files; writes a report
 * folder with sanity checks. Settings come from the command line or from a
 * JSON or YAML config file (see src/eval/config.ts).
 */
import { checkReadableFile, checkWritableDir } from "../io/preflight.js";
import type { Command } from "commander";
import { setProcessThreads } from "../core/concurrency.js";
import { describeAttackParams, describeAttacks } from "../attacks/index.js";
import { describeDefenseParams, listDefenses } from "../defenses/index.js";
import { renderTextTable } from "../report/table.js";
import { groupLabel, groupRows } from "../report/types.js";
import { writeRunReport } from "../report/run-report.js";
import { CONFIG_KEYS, DEFAULTS, resolveConfig, type RawSettings } from "../eval/config.js";
import { runEvaluate } from "../eval/evaluate.js";
import { RECIPES } from "../eval/recipes.js";
import { progressBars, runAction } from "./common.js";
import { parseThreadsArg } from "./args.js";
import { addQueueOptions, queueRunners, type QueueOpts } from "./queue-options.js";

/** The defenses evaluate can build (patch VAEs need models it does not load). */
function defenseHelp(): string {
  const usable = listDefenses().filter((d) => d.name !== "patchvae");
  const width = Math.max(...usable.map((d) => d.syntax.length));
  const lines = usable.map((d) => `  ${d.syntax.padEnd(width)}  ${d.description}`).join("\n");
  return `${lines}\nParameters by defense (KEY=VALUE or a bare value where shown; flags as a bare word):\n${describeDefenseParams(["patchvae"])}`;
}

const HELP_AFTER = () => `
Attacks (--attacks): NAME[:KEY=VALUE[:KEY=VALUE...]], several separated by commas,
e.g. "fgsm,ifgsm:steps=10,pgd:steps=40:restarts=2,square:queries=1000".
${describeAttacks()}
Parameters by attack (defaults are the attack's own):
${describeAttackParams()}
  eps comes from --eps (for pgd-l2 it is the L2 radius per image); EOT samples
  from --eot (used in adaptive mode on randomized defenses, e.g. the VAE).

Defenses (--defenses), separated by commas, arguments by ":" as for attacks:
"vae:samples=8:clip=2,jpeg:23" is two defenses (the old "vae:samples=8,clip=2"
still works, with a deprecation warning):
${defenseHelp()}

Modes: gray-box (the paper's: the attack sees only the classifier), adaptive
(the attack sees each defense: exact gradients, BPDA, EOT), both (side by side,
with a gray-box vs adaptive table; quote the adaptive number).

Config file (--config run.yaml or run.json): keys are the long options without
"--": ${CONFIG_KEYS.join(", ")}.
Lists may be arrays; an attack may be {name: pgd, steps: 40}. Relative paths are
taken from the config file's folder and must stay inside it (give other paths on
the command line). Command-line options override the file.
  # run.yaml
  dataset: mnist
  classifier: checkpoints/mnist-classifier.safetensors
  vae: checkpoints/mnist-vae-b0.01-bce.safetensors
  defenses: [none, "jpeg:23", vae, "median:3"]
  attacks: [fgsm, {name: pgd, steps: 40, restarts: 2}, "square:queries=1000"]
  eps: [0, 0.05, 0.1, 0.2, 0.3]
  mode: both

Cells: the evaluation is cut into cells of --shard-size images (one attack,
mode, epsilon and, in adaptive mode, defense), each seeded from the cell alone.
Resume: each mode's finished cells are kept in OUT/sweep-<mode>.json and reused
by the next run with the same settings (data, checkpoint contents, defenses,
attacks, eot, passes, seed, samples, batch size, shard size); --restart starts
over. Exit code 2 for bad usage or input.

Distributed: --queue redis://HOST:PORT puts the cells in a BullMQ queue on that
Redis; run \`vaeguard worker --queue redis://HOST:PORT\` on any number of
machines (with the same checkpoint and data files: they are checked by sha256).
The results file, table and report are the same as a run in one process.
\`vaeguard queue status --queue ...\` shows the queue. See docs/distributed.md.
`;

interface Opts extends QueueOpts {
  config?: string;
  restart?: boolean;
  json?: boolean;
  quiet?: boolean;
  threads?: number;
  [key: string]: unknown;
}

/** commander's camelCase option names back to config keys. */
function flagSettings(opts: Opts): RawSettings {
  const out: RawSettings = {};
  for (const key of CONFIG_KEYS) {
    const camel = key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (opts[camel] !== undefined) out[key] = opts[camel];
  }
  return out;
}

export function register(program: Command): void {
  const command = program
    .command("evaluate")
    .description(
      "evaluate a trained classifier behind a list of defenses against a list of attacks over an epsilon grid, gray-box and/or adaptive; resumable; writes a report with sanity checks",
    )
    .option("--config <file>", "JSON or YAML file with any of the settings below (options given here override it)")
    .option("--dataset <name>", `test data: ${Object.keys(RECIPES).join(", ")} (default ${DEFAULTS.dataset})`)
    .option("--data-dir <dir>", "data files to use instead of the default source (CIFAR-10: the binary version)")
    .option("--samples <n>", `first N test images, or "all" (default ${DEFAULTS.samples})`)
    .option(
      "--classifier <file>",
      "classifier: a vaeguard checkpoint (.safetensors), or a .tflite, TorchScript .pt or TF.js model.json taking the data set's image size; required",
    )
    .option("--vae <file>", "VAE checkpoint, needed by the vae defense")
    .option(
      "--defenses <list>",
      `defense specs, comma-separated (default "${DEFAULTS.defensesWithVae}" with --vae, else "${DEFAULTS.defensesWithoutVae}")`,
    )
    .option("--attacks <list>", `attack specs, comma-separated (default "${DEFAULTS.attacks}"; syntax below)`)
    .option("--eps <list>", "comma-separated epsilons in [0, 1] (default: the data set's grid from the paper)")
    .option("--mode <mode>", `gray-box, adaptive or both (default ${DEFAULTS.mode})`)
    .option("--eot <k>", `EOT samples per gradient on randomized defenses, adaptive mode (default ${DEFAULTS.eot})`)
    .option(
      "--passes <p>",
      `forward passes scoring a randomized defense, reported as their mean (default ${DEFAULTS.passes})`,
    )
    .option("--seed <n>", `random seed (default ${DEFAULTS.seed})`)
    .option("--out <dir>", "report folder, also holding the resumable results (default runs/evaluate-<dataset>)")
    .option("--batch-size <n>", `images per attack batch (default ${DEFAULTS.batchSize})`)
    .option(
      "--shard-size <n>",
      "images per cell, the unit of work, seeding and resumption (default: the batch size); part of the settings, like --seed",
    );
  addQueueOptions(command)
    .option("--restart", "discard the results files in --out and evaluate from scratch")
    .option("--threads <n>", "libtorch threads (default: all cores)", parseThreadsArg())
    .option("--json", "print rows, sanity findings and file paths as JSON on stdout")
    .option("--quiet", "no progress output")
    .addHelpText("after", HELP_AFTER)
    .action((opts: Opts) => runAction(() => evaluateCommand(opts)));
}

async function evaluateCommand(opts: Opts): Promise<void> {
  const cfg = resolveConfig(flagSettings(opts), { configFile: opts.config });
  const log = (l: string) => process.stderr.write(l + "\n");
  const runner = queueRunners(opts, Boolean(opts.restart), log);
  if (opts.threads) setProcessThreads(opts.threads);
  // Before any work: the inputs open, the report folder takes a write.
  checkReadableFile(cfg.classifier, "the classifier checkpoint");
  if (cfg.vae) checkReadableFile(cfg.vae, "the VAE checkpoint");
  checkWritableDir(cfg.out, "the report");
  const t0 = performance.now();
  const result = await runEvaluate(cfg, {
    restart: Boolean(opts.restart),
    command: ["vaeguard", ...process.argv.slice(2)].join(" "),
    quiet: opts.quiet,
    progress: progressBars(opts.quiet),
    runner,
  });
  const paths = await writeRunReport(cfg.out, result.report);
  log(`evaluate: done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  const seconds = (performance.now() - t0) / 1000;
  if (opts.json) {
    console.log(
      JSON.stringify(
        {
          cleanAccuracy: result.cleanAccuracy,
          rows: result.rows,
          sanity: result.findings,
          report: paths.report,
          resultsFiles: result.resultsFiles,
          seconds,
        },
        null,
        2,
      ),
    );
    return;
  }
  for (const g of groupRows(result.rows)) {
    console.log(`\n${groupLabel(g)} on ${RECIPES[cfg.dataset].title}; top-1 accuracy by defense`);
    console.log(renderTextTable(g.rows));
  }
  const warnings = result.findings.filter((f) => f.level === "warning");
  console.log(`\nClean accuracy of the classifier: ${result.cleanAccuracy.toFixed(4)}`);
  for (const w of warnings) console.log(`Warning: ${w.message}`);
  console.log(`Report: ${paths.report} (${seconds.toFixed(0)} s)`);
}
