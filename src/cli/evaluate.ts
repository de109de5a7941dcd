/**
 * `vaeguard evaluate`: a trained classifier (and VAE) against a list of
 * attacks, an epsilon grid and a list of defenses, in gray-box mode, adaptive
 * mode or both side by side; resumes from its results files; writes a report
 * folder with sanity checks. Settings come from the command line or from a
 * JSON or YAML config file (see src/eval/config.ts).
 */
import { checkReadableFile, checkWritableDir } from "../io/preflight.js";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import type { Command } from "commander";
import { manualSeed, setNumThreads } from "../core/engine.js";
import { CheckpointError, VaeguardError } from "../core/errors.js";
import {
  attackParamDefault,
  describeAttack,
  describeAttackParams,
  describeAttacks,
  type AttackName,
} from "../attacks/index.js";
import { describeDefenseParams, listDefenses, type Defense } from "../defenses/index.js";
import { datasetSize } from "../data/index.js";
import type { ImageClassifier } from "../models/classifiers.js";
import type { Purifier } from "../models/purifier.js";
import type { Module } from "../nn/module.js";
import { accuracy } from "../train/trainer.js";
import { reportSoftwareVersions, writeReportBundle, type BundlePaths } from "../report/bundle.js";
import { sweepGridCells } from "../report/grid.js";
import { renderTextTable } from "../report/table.js";
import { groupLabel, groupRows, type AttackMode, type AttackParams, type ResultRow } from "../report/types.js";
import {
  CONFIG_KEYS,
  DEFAULTS,
  modesOf,
  needsVae,
  resolveConfig,
  type AttackChoice,
  type EvaluateConfig,
  type RawSettings,
} from "../eval/config.js";
import { EvaluationCache, datasetSha256, fileSha256, loadTestData, type EvaluationSetup } from "../eval/evaluation.js";
import { RECIPES } from "../eval/reproduce.js";
import {
  renderFindings,
  renderModeComparison,
  sanityChecks,
  type ModePair,
  type SanityFinding,
} from "../eval/sanity.js";
import { sweep, type CellRunner, type GridSample } from "../eval/sweep.js";
import { QueueRunner } from "../queue/coordinator.js";
import { parseRedisUrl } from "../queue/connection.js";
import { parseIntArg, parseThreadsArg, progressBars, runAction, softwareVersions } from "./common.js";

export interface EvaluateRunOptions {
  /** Delete the results files of the modes being run and start over. */
  restart?: boolean;
  /** The command line, for the report. */
  command: string;
  quiet?: boolean;
  log?: (line: string) => void;
  /** Where the cells run (default: in this process); given each mode's setup. */
  runner?: (setup: EvaluationSetup) => CellRunner;
}

export interface EvaluateOutcome {
  rows: ResultRow[];
  paths: BundlePaths;
  cleanAccuracy: number;
  findings: SanityFinding[];
  /** One results file per mode: what a later run resumes. */
  resultsFiles: string[];
}

/** The results file of one mode, resumed by the next run with the same settings. */
export function resultsFileFor(out: string, mode: AttackMode): string {
  return join(out, `sweep-${mode}.json`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Describe an attack for the report: the attack's own parameters, with the grid instead of one epsilon. */
function attackParams(choice: AttackChoice, eps: number[], eotSamples: number, eotNote?: string): AttackParams {
  const described = describeAttack(choice.kind, { ...choice.params, eps: 0.1 });
  const { attack: _attack, eps: _eps, eotSamples: _eot, stepSize, ...rest } = described;
  const params: AttackParams = { spec: choice.spec, ...rest, eotSamples, epsilons: eps };
  if (choice.kind === "square") params.steps = described.queries as number;
  if (stepSize !== undefined) {
    params.stepSize = (choice.params.stepSize as number | undefined) ?? attackParamDefault(choice.kind, "stepSize");
  }
  if (eotNote) params.eotAppliesTo = eotNote;
  return params;
}

/** Plots of an earlier run in the same folder (another mode or attack list) would pass for this run's. */
function removeStalePlots(out: string, current: string[]): void {
  const keep = new Set(current.map((p) => basename(p).replace(/\.png$/, "")));
  for (const f of readdirSync(out)) {
    const m = /^(plot-.+)\.(png|svg)$/.exec(f);
    if (m && !keep.has(m[1])) rmSync(join(out, f), { force: true });
  }
}

function gradientNote(d: Defense, eot: number): string {
  const how =
    d.gradient === "exact"
      ? "exact gradient"
      : d.gradient === "bpda-identity"
        ? "BPDA, identity gradient"
        : `BPDA with a differentiable stand-in (${d.gradient.slice("bpda-".length)})`;
  return `${d.name}: ${how}${d.randomized ? `, EOT over ${eot} sample(s) of its randomness` : ""}`;
}

/** The part of an evaluation another process needs to run its cells (see src/eval/evaluation.ts). */
function setupFor(
  cfg: EvaluateConfig,
  mode: AttackMode,
  refs: Pick<EvaluationSetup, "classifier" | "vae" | "samples" | "dataSha256">,
  attackName: (c: AttackChoice, mode: AttackMode) => string,
): EvaluationSetup {
  return {
    dataset: cfg.dataset,
    dataDir: cfg.dataDir,
    ...refs,
    defenses: cfg.defenses,
    attacks: cfg.attacks.map((c) => ({ name: attackName(c, mode), kind: c.kind, params: c.params })),
    eot: cfg.eot,
    passes: cfg.passes,
    batchSize: cfg.batchSize,
    seed: cfg.seed,
    shardSize: cfg.shardSize,
  };
}

/** Run an evaluation from resolved settings; write the report folder; return rows and findings. */
export async function runEvaluate(cfg: EvaluateConfig, o: EvaluateRunOptions): Promise<EvaluateOutcome> {
  const print = o.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const recipe = RECIPES[cfg.dataset];
  const t0 = performance.now();
  manualSeed(cfg.seed);

  const usesVae = cfg.defenses.some(needsVae);
  const cache = new EvaluationCache();
  try {
    const classifierRef = { path: cfg.classifier, sha256: hashOf(cfg.classifier) };
    const vaeRef = usesVae && cfg.vae ? { path: cfg.vae, sha256: hashOf(cfg.vae) } : undefined;
    const clf = cache.model(classifierRef, "classifier") as Module & ImageClassifier;
    const vae = vaeRef ? (cache.model(vaeRef, "vae") as Purifier) : undefined;
    const { test, total } = await loadTestData(cfg.dataset, cfg.dataDir, cfg.samples);
    const n = datasetSize(test);
    const refs = { classifier: classifierRef, vae: vaeRef, samples: n, dataSha256: datasetSha256(test) };
    // Build the first mode's context now: it checks the defenses and holds the test data.
    const first = setupFor(cfg, modesOf(cfg.mode)[0], refs, (c) => c.name);
    cache.adoptTestData(first, test);
    const defenses = cache.sweepContext(first).defenses;
    const shape = test.images.dims.slice(1);
    if (!sameShape(clf.inputShape, shape)) {
      throw new CheckpointError(
        cfg.classifier,
        `the classifier takes images of shape [${clf.inputShape.join(", ")}] but ${recipe.title} images are [${shape.join(", ")}]`,
      );
    }
    if (vae && !sameShape(vae.inputShape, shape)) {
      throw new CheckpointError(
        cfg.vae!,
        `the VAE reconstructs images of shape [${vae.inputShape.join(", ")}] but ${recipe.title} images are [${shape.join(", ")}]`,
      );
    }
    const cleanAccuracy = accuracy(clf, test, cfg.batchSize);
    print(`evaluate: classifier clean accuracy on ${n} test images: ${cleanAccuracy.toFixed(4)}`);

    const randomized = defenses.filter((d) => d.randomized);
    const eotUsed = randomized.length > 0 && cfg.eot > 1;
    const nameIn = (c: AttackChoice, mode: AttackMode) =>
      mode === "adaptive" && eotUsed ? `${c.name}, EOT ${cfg.eot}` : c.name;
    const fingerprint = {
      tool: "vaeguard evaluate/1",
      dataset: cfg.dataset,
      test: test.source,
      samples: n,
      seed: cfg.seed,
      batchSize: cfg.batchSize,
      classifierSha256: classifierRef.sha256,
      vaeSha256: vaeRef?.sha256 ?? null,
      defenses: cfg.defenses,
      attacks: cfg.attacks.map((a) => a.spec),
      passes: cfg.passes,
    };

    const rows: ResultRow[] = [];
    const resultsFiles: string[] = [];
    let grid: GridSample | undefined;
    const t1 = performance.now();
    for (const mode of modesOf(cfg.mode)) {
      const file = resultsFileFor(cfg.out, mode);
      resultsFiles.push(file);
      if (o.restart && existsSync(file)) rmSync(file);
      const setup = setupFor(cfg, mode, refs, nameIn);
      const positive = cfg.eps.filter((e) => e > 0);
      const result = await sweep({
        ...cache.sweepContext(setup),
        epsilons: cfg.eps,
        mode,
        seed: cfg.seed,
        shardSize: cfg.shardSize,
        resultsFile: file,
        // EOT samples change only adaptive numbers on randomized defenses.
        fingerprint: { ...fingerprint, eot: mode === "adaptive" && eotUsed ? cfg.eot : null },
        gridImages: mode === "gray-box" ? 6 : undefined,
        gridEpsilon: positive.at(-1),
        runner: o.runner?.(setup),
        quiet: o.quiet,
        progress: progressBars(o.quiet),
        log: (line) => {
          if (!o.quiet || /resuming/.test(line)) print(`evaluate: ${line.replace(/^evaluate: /, "")}`);
        },
      });
      rows.push(...result.rows);
      grid ??= result.grid;
    }
    const evalSeconds = (performance.now() - t1) / 1000;

    const kinds: Record<string, AttackName> = {};
    const params: Record<string, AttackParams> = {};
    const pairs: ModePair[] = [];
    const eotNote =
      randomized.length > 0
        ? `randomized defenses (${randomized.map((d) => d.name).join(", ")}); a deterministic defense needs 1`
        : undefined;
    for (const c of cfg.attacks) {
      for (const mode of modesOf(cfg.mode)) {
        const name = nameIn(c, mode);
        kinds[name] = c.kind;
        params[name] = attackParams(
          c,
          cfg.eps,
          mode === "adaptive" && eotUsed ? cfg.eot : 1,
          mode === "adaptive" && eotUsed ? eotNote : undefined,
        );
      }
      pairs.push({ grayBox: nameIn(c, "gray-box"), adaptive: nameIn(c, "adaptive"), label: c.name });
    }
    const findings = sanityChecks(rows, {
      kinds,
      randomized: randomized.map((d) => d.name),
      passes: cfg.passes,
      eot: eotUsed ? cfg.eot : 1,
    });

    const modes = modesOf(cfg.mode);
    const modeTitle = modes.join(" and ");
    const notes: string[] = [
      `Classifier: ${basename(cfg.classifier)} (sha256 ${fingerprint.classifierSha256.slice(0, 12)}), clean top-1 accuracy ${cleanAccuracy.toFixed(4)} on ${n} test images.`,
      vae
        ? `VAE: ${basename(cfg.vae!)} (sha256 ${fingerprint.vaeSha256!.slice(0, 12)}), latent ${vae.latentDim}.`
        : "VAE: none used.",
      `Test data: ${test.source}. Labels: ${recipe.labelSourceOf?.(test) ?? recipe.labelSource}.`,
      `Modes: ${modes.map((m) => `${m} (results in ${basename(resultsFileFor(cfg.out, m))})`).join(", ")}. ` +
        "In gray-box mode the attack sees only the classifier (the paper's setting); in adaptive mode each defense is attacked through itself.",
      modes.includes("adaptive")
        ? `Gradients through the defenses in adaptive mode: ${defenses.map((d) => gradientNote(d, cfg.eot)).join("; ")}.`
        : "",
      `Attacks: ${cfg.attacks
        .map((c) => {
          const p = params[nameIn(c, modes[0])];
          const count = (k: number, word: string) => `${k} ${word}${k === 1 ? "" : "s"}`;
          const parts = [
            count(Number(p.steps ?? 1), c.kind === "square" ? "query" : "step").replace(/querys$/, "queries"),
          ];
          if (p.restarts !== undefined) parts.push(count(Number(p.restarts), "restart"));
          return `${c.name} = \`${c.spec}\` (${parts.join(", ")})`;
        })
        .join(
          "; ",
        )}. Epsilons: ${cfg.eps.join(", ")}${cfg.attacks.some((c) => c.kind === "pgd-l2") ? " (the L2 radius per image for pgd-l2)" : ""}.`,
      `Randomized defenses are scored as the mean over ${cfg.passes} forward pass(es), never the best one.`,
      `Seed ${cfg.seed}. The evaluation runs in cells of up to ${cfg.shardSize} images (one attack, mode, epsilon and, in adaptive mode, defense); libtorch's generator is seeded from each cell alone, so a resumed or distributed evaluation gives the same numbers as one uninterrupted process.`,
      `Time: evaluation ${evalSeconds.toFixed(0)} s (cells taken from earlier runs' results files cost nothing).`,
      `### Sanity checks\n\n${renderFindings(findings)}`,
    ].filter((s) => s !== "");
    const comparison = cfg.mode === "both" ? renderModeComparison(rows, pairs) : "";
    if (comparison !== "") {
      notes.push(
        "### Gray-box vs adaptive\n\n" +
          "For a defense that claims robustness, the adaptive number is the one to quote: gray-box numbers come from an attacker who does not know the defense.\n\n" +
          comparison,
      );
    }
    const paths = await writeReportBundle(cfg.out, {
      title: `vaeguard evaluate: ${recipe.title}, ${modeTitle}`,
      metadata: {
        dataset: `${recipe.title} test set${n < total ? `, first ${n} of ${total} images` : ""}`,
        labelSource: recipe.labelSourceOf?.(test) ?? recipe.labelSource,
        samples: n,
        seed: cfg.seed,
        command: o.command,
        versions: { ...reportSoftwareVersions(), ...softwareVersions() },
        attackParams: params,
        createdAt: new Date().toISOString(),
      },
      rows,
      defenses: defenses.map((d) => d.name),
      grid: grid
        ? {
            cells: sweepGridCells(
              grid,
              test.classNames,
              defenses.map((d) => d.name),
            ),
            caption: `First test images at ${grid.attack} eps ${grid.epsilon} (gray-box: one adversarial image for every defense)`,
          }
        : undefined,
      notes: notes.join("\n\n"),
    });
    removeStalePlots(cfg.out, paths.plots);
    print(`evaluate: done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    return { rows, paths, cleanAccuracy, findings, resultsFiles };
  } finally {
    cache.dispose();
  }
}

function hashOf(file: string): string {
  if (!existsSync(file)) throw new CheckpointError(file, "no such checkpoint file");
  try {
    return fileSha256(file);
  } catch (e) {
    throw new CheckpointError(file, `cannot read the checkpoint (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

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

interface Opts {
  config?: string;
  queue?: string;
  queueTimeout?: number;
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
  program
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
    )
    .option(
      "--queue <url>",
      "run the cells on workers through the job queue on this Redis server (redis://HOST:PORT); see `vaeguard worker`",
    )
    .option(
      "--queue-timeout <s>",
      "with --queue: stop when Redis has been unreachable for this many seconds (default 60)",
      parseIntArg("queue-timeout", 1),
    )
    .option("--restart", "discard the results files in --out and evaluate from scratch")
    .option("--threads <n>", "libtorch threads (default: all cores)", parseThreadsArg())
    .option("--json", "print rows, sanity findings and file paths as JSON on stdout")
    .option("--quiet", "no progress output")
    .addHelpText("after", HELP_AFTER)
    .action((opts: Opts) =>
      runAction(async () => {
        const cfg = resolveConfig(flagSettings(opts), { configFile: opts.config });
        const target = opts.queue !== undefined ? parseRedisUrl(opts.queue) : undefined;
        if (opts.threads) setNumThreads(opts.threads);
        // Before any work: the inputs open, the report folder takes a write.
        checkReadableFile(cfg.classifier, "the classifier checkpoint");
        if (cfg.vae) checkReadableFile(cfg.vae, "the VAE checkpoint");
        checkWritableDir(cfg.out, "the report");
        const t0 = performance.now();
        const log = (l: string) => process.stderr.write(l + "\n");
        const result = await runEvaluate(cfg, {
          restart: Boolean(opts.restart),
          command: ["vaeguard", ...process.argv.slice(2)].join(" "),
          quiet: opts.quiet,
          runner: target
            ? (setup) =>
                new QueueRunner({
                  target,
                  setup,
                  restart: Boolean(opts.restart),
                  timeoutMs: (opts.queueTimeout ?? 60) * 1000,
                  pollMs: Number(process.env.VAEGUARD_QUEUE_POLL_MS) || undefined,
                  log,
                })
            : undefined,
        });
        const seconds = (performance.now() - t0) / 1000;
        if (opts.json) {
          console.log(
            JSON.stringify(
              {
                cleanAccuracy: result.cleanAccuracy,
                rows: result.rows,
                sanity: result.findings,
                report: result.paths.report,
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
        console.log(`Report: ${result.paths.report} (${seconds.toFixed(0)} s)`);
      }),
    );
}
