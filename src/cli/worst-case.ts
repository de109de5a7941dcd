/**
 * `vaeguard worst-case`: the worst-case robust accuracy of a classifier behind
 * a list of defenses (the paper's VAE, a trained purifier, JPEG, none ...) at
 * a list of epsilons, with the gradient-masking checks (src/eval/worst-case.ts).
 * Resumable: every finished (defense, epsilon) cell is kept in OUT/results.json
 * and reused by a rerun with the same settings and the same checkpoints behind
 * that defense, so defenses can be added to a folder run by run, and a larger
 * --samples grows the cells without attacking their first images again.
 * Writes OUT/report.md.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import type { Command } from "commander";
import { LIMITS } from "../core/limits.js";
import { setProcessThreads } from "../core/concurrency.js";
import { ArgumentError, VaeguardError } from "../core/errors.js";
import { datasetSize, firstSource, takeFirst, type ImageDataset } from "../data/index.js";
import { createDefense, type Defense } from "../defenses/index.js";
import { loadClassifierFor, loadPurifierFor } from "../models/loaders.js";
import type { Purifier } from "../models/purifier.js";
import { describeModel } from "../models/registry.js";
import { splitDefenseList } from "../eval/config.js";
import { RECIPES, type SmallDataset } from "../eval/reproduce.js";
import type { Recipe } from "../eval/recipes.js";
import {
  WORST_CASE_ATTACKS,
  WORST_CASE_DEFAULTS,
  batchesOfCell,
  maskingChecks,
  resolveWorstCaseSettings,
  worstCaseCell,
  subsetSize,
  type BatchStore,
  type FinishedBatch,
  type MaskingResult,
  type WorstCaseAttack,
  type WorstCaseCell,
  type WorstCaseSettings,
} from "../eval/worst-case.js";
import { writeFileAtomic, writeJsonAtomic } from "../io/atomic.js";
import { maskingKey, renderWorstCaseReport, renderWorstCaseText } from "../report/worst-case.js";
import { runAction, softwareVersions } from "./common.js";
import { parseIntArg, parseListArg, parseNumberArg, parseThreadsArg } from "./args.js";

interface Opts {
  dataset: string;
  dataDir?: string;
  classifier?: string;
  vae?: string;
  purifier?: string;
  defenses?: string;
  eps: number[];
  samples: number;
  steps: number;
  restarts: number;
  eot: number;
  squareQueries: number;
  squareEot?: number;
  attacks: string[];
  passes: number;
  subsetSamples: number;
  subsetRestarts: number;
  checks: boolean;
  checkSamples?: number;
  largeEps: number;
  batchSize: number;
  seed: number;
  out?: string;
  restart?: boolean;
  recheck?: boolean;
  threads?: number;
  json?: boolean;
  quiet?: boolean;
}

const RESULTS_FORMAT = "vaeguard worst-case/1";

function sha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

function checkAttacks(list: string[]): WorstCaseAttack[] {
  if (list.length === 0) throw new ArgumentError("Expected at least one attack for --attacks but received none");
  for (const a of list) {
    if (!(WORST_CASE_ATTACKS as readonly string[]).includes(a)) {
      throw new ArgumentError(
        `Unsupported attack "${a}" for --attacks; the worst case takes ${WORST_CASE_ATTACKS.join(", ")}`,
      );
    }
  }
  return list as WorstCaseAttack[];
}

interface SavedResults {
  format: string;
  fingerprint: Record<string, unknown>;
  cells: WorstCaseCell[];
  masking: Record<string, MaskingResult>;
  /** The checkpoints (sha256) behind each cell's defense, by maskingKey. */
  models: Record<string, string>;
  /** Finished batches of the cells not yet complete, by maskingKey (absent in files of earlier versions). */
  partial?: Record<string, PartialCell>;
}

/** The finished batches of one unfinished cell, and the checkpoints they were computed with. */
interface PartialCell {
  models: string;
  batches: Record<string, FinishedBatch>;
}

/** Whether a defense spec uses the model of `head` ("vae", "purifier"), itself or as an ensemble member. */
function specUses(spec: string, head: string): boolean {
  const colon = spec.indexOf(":");
  const name = (colon < 0 ? spec : spec.slice(0, colon)).trim().toLowerCase();
  if (name === head) return true;
  return (
    name === "ensemble" &&
    spec
      .slice(colon + 1)
      .split("+")
      .some((m) => specUses(m, head))
  );
}

/**
 * The results file's contents when they were made with the same settings as
 * this run (`fingerprintFor(n)`, n this run's image count), or with the same
 * settings on fewer of the same first images (`fingerprintFor(m)`, m < n):
 * then `grownFrom` is m and its cells can grow to n images.
 */
function loadSaved(
  file: string,
  n: number,
  fingerprintFor: (samples: number) => Record<string, unknown>,
): (SavedResults & { grownFrom?: number }) | undefined {
  if (!existsSync(file)) return undefined;
  let saved: SavedResults;
  try {
    saved = JSON.parse(readFileSync(file, "utf8")) as SavedResults;
  } catch {
    throw new VaeguardError(`${file}: not a readable results file; pass --restart to start over`);
  }
  const same = (f: Record<string, unknown>) => JSON.stringify(saved.fingerprint) === JSON.stringify(f);
  if (saved.format === RESULTS_FORMAT && same(fingerprintFor(n))) return saved;
  const m = saved.fingerprint?.samples;
  if (
    saved.format === RESULTS_FORMAT &&
    Number.isInteger(m) &&
    (m as number) < n &&
    same(fingerprintFor(m as number))
  ) {
    return { ...saved, grownFrom: m as number };
  }
  throw new VaeguardError(
    `${file} holds results of other settings (data, checkpoints, defenses or attack parameters, or more images than --samples); pass --restart or another --out`,
  );
}

export function register(program: Command): void {
  program
    .command("worst-case")
    .description(
      "worst-case robust accuracy: per image the minimum over PGD (CE and margin losses, restarts, EOT), Square and transfer attacks, with a 95% interval and gradient-masking checks; resumable",
    )
    .option("--dataset <name>", `test data: ${Object.keys(RECIPES).join(", ")}`, "mnist")
    .option("--data-dir <dir>", "data files to use instead of the default source")
    .option("--classifier <file>", "classifier checkpoint (required)")
    .option("--vae <file>", "VAE checkpoint for the vae defense (the paper's)")
    .option("--purifier <file>", "trained purifier checkpoint for the purifier defense (vaeguard train purifier)")
    .option(
      "--defenses <list>",
      'defense specs, comma-separated (default "none", plus "vae" with --vae and "purifier" with --purifier)',
    )
    .option(
      "--eps <list>",
      "comma-separated L-inf budgets in [0, 1]",
      parseListArg(parseNumberArg("eps", 0, 1)),
      [0.1, 0.2, 0.3],
    )
    .option(
      "--samples <n>",
      "first N test images (a larger N than a results folder holds grows its cells)",
      parseIntArg("samples", 1),
      1000,
    )
    .option("--steps <n>", "PGD steps", parseIntArg("steps", 1, LIMITS.attackSteps), WORST_CASE_DEFAULTS.steps)
    .option(
      "--restarts <n>",
      "PGD random restarts",
      parseIntArg("restarts", 1, LIMITS.restarts),
      WORST_CASE_DEFAULTS.restarts,
    )
    .option(
      "--eot <k>",
      "EOT samples per PGD gradient on randomized defenses",
      parseIntArg("eot", 1, LIMITS.eotSamples),
      10,
    )
    .option("--square-queries <n>", "Square Attack queries", parseIntArg("square-queries", 1, LIMITS.queries), 5000)
    .option(
      "--square-eot <k>",
      "passes averaged per Square query on randomized defenses (default --eot)",
      parseIntArg("square-eot", 1, LIMITS.eotSamples),
    )
    .option(
      "--attacks <list>",
      `which attacks, comma-separated: ${WORST_CASE_ATTACKS.join(",")}`,
      parseListArg(String),
      [...WORST_CASE_ATTACKS],
    )
    .option(
      "--subset-samples <n>",
      "PGD-CE with --subset-restarts restarts on the first N images too (0: none)",
      parseIntArg("subset-samples", 0),
      WORST_CASE_DEFAULTS.subsetSamples,
    )
    .option(
      "--subset-restarts <k>",
      "restarts of that PGD-CE (it runs when more than --restarts)",
      parseIntArg("subset-restarts", 1, LIMITS.restarts),
      WORST_CASE_DEFAULTS.subsetRestarts,
    )
    .option("--passes <p>", "forward passes scoring a randomized defense", parseIntArg("passes", 1, LIMITS.passes), 5)
    .option("--no-checks", "skip the gradient-masking checks")
    .option(
      "--check-samples <n>",
      "images for the checks' extra attacks (default all)",
      parseIntArg("check-samples", 1),
    )
    .option("--large-eps <x>", "budget at which accuracy must be near 0", parseNumberArg("large-eps", 0, 1), 0.5)
    .option("--batch-size <n>", "images per attack batch", parseIntArg("batch-size", 1, LIMITS.batchSize), 100)
    .option("--seed <n>", "random seed", parseIntArg("seed", 0), 0)
    .option("--out <dir>", "report folder with resumable results (default runs/worst-case-<dataset>)")
    .option("--restart", "discard saved results in --out")
    .option("--recheck", "run the gradient-masking checks of saved cells again (their attacks are kept)")
    .option("--threads <n>", "libtorch threads", parseThreadsArg())
    .option("--json", "print the cells and checks as JSON on stdout")
    .option("--quiet", "no progress lines")
    .action((o: Opts) => runAction(() => runWorstCase(o)));
}

/** The checked options of one run and what follows from them before anything is loaded. */
interface WorstCaseRun {
  o: Opts;
  dataset: SmallDataset;
  recipe: Recipe;
  attacks: WorstCaseAttack[];
  /** The classifier's input shape. */
  shape: number[];
  /** Defense specs, in table order. */
  specs: string[];
  settingsFor(eps: number): WorstCaseSettings;
  log(line: string): void;
}

/** The models, defenses and test images of a run. */
interface Loaded {
  classifierFile: string;
  classifier: ReturnType<typeof loadClassifierFor>;
  vae?: Purifier;
  purifier?: Purifier;
  defenses: Defense[];
  test: ImageDataset;
  n: number;
  /** How the test set's first `count` images are described (the results file's fingerprint names them). */
  sourceOfFirst: (count: number) => string;
}

/** The results folder and what it holds: finished cells, masking checks and the checkpoints behind them. */
interface Store {
  out: string;
  resultsFile: string;
  fingerprint: Record<string, unknown> & { classifierSha256: string };
  cells: WorstCaseCell[];
  masking: Record<string, MaskingResult>;
  models: Record<string, string>;
  partial: Record<string, PartialCell>;
  vaeSha256: string | null;
  purifierSha256: string | null;
  /** The checkpoints behind a defense spec, as stored in `models`. */
  modelsOf(spec: string): string;
}

async function runWorstCase(o: Opts): Promise<void> {
  const run = checkRun(o);
  const owned: { dispose(): void }[] = [];
  try {
    const models = loadModels(run, owned);
    const loaded: Loaded = { ...models, ...(await loadTestSet(run, owned)) };
    const store = openStore(run, loaded);
    const about = aboutLines(run, loaded, store);
    const t0 = performance.now();
    await evaluateCells(run, loaded, store);
    // This run's cells in its order, then those other runs left in the same folder.
    const current = o.eps.flatMap((e) =>
      loaded.defenses.map((d) => store.cells.find((c) => c.defense === d.name && c.epsilon === e)!),
    );
    const ordered = [...current, ...store.cells.filter((c) => !current.includes(c))];
    const seconds = (performance.now() - t0) / 1000;
    writeResults(run, store, about, ordered, seconds);
  } finally {
    for (const d of owned.reverse()) d.dispose();
  }
}

/** Checks every option (each setting for every epsilon) before anything is loaded or attacked. */
function checkRun(o: Opts): WorstCaseRun {
  if (!(o.dataset in RECIPES)) {
    throw new ArgumentError(
      `Expected one of ${Object.keys(RECIPES).join(", ")} for --dataset but received ${JSON.stringify(o.dataset)}`,
    );
  }
  if (!o.classifier) throw new ArgumentError("--classifier is required: a vaeguard classifier checkpoint");
  const attacks = checkAttacks(o.attacks);
  if (o.eps.length === 0) throw new ArgumentError("Expected at least one epsilon for --eps but received none");
  if (o.threads) setProcessThreads(o.threads);
  const log = (line: string) => {
    if (!o.quiet) process.stderr.write(`worst-case: ${line}\n`);
  };
  const dataset = o.dataset as SmallDataset;
  const recipe = RECIPES[dataset];
  const probe = recipe.makeClassifier();
  const shape = [...probe.inputShape];
  probe.dispose();
  const specs = o.defenses
    ? splitDefenseList(o.defenses)
    : ["none", ...(o.vae ? ["vae"] : []), ...(o.purifier ? ["purifier"] : [])];
  const settingsFor = (eps: number): WorstCaseSettings =>
    resolveWorstCaseSettings({
      eps,
      steps: o.steps,
      restarts: o.restarts,
      eot: o.eot,
      squareQueries: o.squareQueries,
      squareEot: o.squareEot,
      attacks,
      passes: o.passes,
      batchSize: o.batchSize,
      seed: o.seed,
      subsetSamples: o.subsetSamples,
      subsetRestarts: o.subsetRestarts,
    });
  o.eps.forEach(settingsFor);
  return { o, dataset, recipe, attacks, shape, specs, settingsFor, log };
}

/** Loads the classifier and the VAE and purifier when given, and builds the defenses; what it loads goes into `owned`. */
function loadModels(run: WorstCaseRun, owned: { dispose(): void }[]): Omit<Loaded, "test" | "n" | "sourceOfFirst"> {
  const { o, recipe, shape } = run;
  const classifierFile = resolve(o.classifier!);
  const classifier = loadClassifierFor(classifierFile, {
    inputShape: shape,
    numClasses: 10,
    dataset: recipe.title,
  });
  owned.push(classifier);
  const vae: Purifier | undefined = o.vae ? loadPurifierFor(resolve(o.vae), shape, recipe.title) : undefined;
  if (vae) owned.push(vae);
  const purifier: Purifier | undefined = o.purifier
    ? loadPurifierFor(resolve(o.purifier), shape, recipe.title)
    : undefined;
  if (purifier) owned.push(purifier);
  const defenses: Defense[] = run.specs.map((s) => createDefense(s, { vae, purifier }));
  const names = new Set<string>();
  for (const d of defenses) {
    if (names.has(d.name)) throw new ArgumentError(`Two defenses are both named "${d.name}"; list each once`);
    names.add(d.name);
  }
  return { classifierFile, classifier, vae, purifier, defenses };
}

/** The first --samples test images; what it loads goes into `owned`. */
async function loadTestSet(
  run: WorstCaseRun,
  owned: { dispose(): void }[],
): Promise<{ test: ImageDataset; n: number; sourceOfFirst: (count: number) => string }> {
  const full = await run.recipe.load("test", run.o.dataDir);
  owned.push({ dispose: () => (full.images.dispose(), full.labels.dispose()) });
  const size = datasetSize(full);
  const n = Math.min(run.o.samples, size);
  const test = n < size ? takeFirst(full, n) : full;
  if (test !== full) owned.push({ dispose: () => (test.images.dispose(), test.labels.dispose()) });
  return { test, n, sourceOfFirst: (count) => firstSource(full.source, count, size) };
}

/**
 * Opens the results folder: the saved cells of the same settings, less those
 * whose defense no longer rests on the same checkpoints.
 */
function openStore(run: WorstCaseRun, loaded: Loaded): Store {
  const { o, dataset, log } = run;
  const { n, defenses } = loaded;
  const out = resolve(o.out ?? join("runs", `worst-case-${dataset}`));
  const resultsFile = join(out, "results.json");
  if (o.restart) rmSync(resultsFile, { force: true });
  const classifierSha256 = sha256(loaded.classifierFile);
  const fingerprintFor = (samples: number) => ({
    dataset,
    test: loaded.sourceOfFirst(samples),
    samples,
    classifierSha256,
    settings: fingerprintSettings(run.settingsFor(0)),
    checks: o.checks ? { samples: o.checkSamples ?? null, largeEps: o.largeEps } : null,
  });
  const fingerprint = fingerprintFor(n);
  const vaeSha256 = o.vae ? sha256(resolve(o.vae)) : null;
  const purifierSha256 = o.purifier ? sha256(resolve(o.purifier)) : null;
  const modelsOf = (spec: string): string =>
    [
      specUses(spec, "vae") ? `vae ${vaeSha256}` : "",
      specUses(spec, "purifier") ? `purifier ${purifierSha256}` : "",
    ].join(";");
  const saved = loadSaved(resultsFile, n, fingerprintFor);
  const models: Record<string, string> = saved?.models ?? {};
  // --recheck: saved cells stay, their checks run again (after a change to the checks, say).
  const masking: Record<string, MaskingResult> = o.recheck ? {} : (saved?.masking ?? {});
  const partial: Record<string, PartialCell> = saved?.partial ?? {};
  // A saved cell is reused only when its defense still rests on the same checkpoints.
  const cells: WorstCaseCell[] = (saved?.cells ?? []).filter((c) => {
    const i = defenses.findIndex((d) => d.name === c.defense);
    const key = maskingKey(c.defense, c.epsilon);
    if (i >= 0 && models[key] !== modelsOf(run.specs[i])) {
      log(`${c.defense}, eps ${c.epsilon}: its checkpoint differs from the one in ${resultsFile}; evaluating again`);
      delete masking[key];
      delete models[key];
      return false;
    }
    if (saved?.grownFrom === undefined) return true;
    // More images than before: the cell goes back to its batches, which the larger run takes up again.
    partial[key] = { models: models[key], batches: batchesOfCell(c) };
    log(`${c.defense}, eps ${c.epsilon}: growing from ${c.n} to ${n} images, keeping the attacks' finished batches`);
    delete masking[key];
    delete models[key];
    return false;
  });
  return { out, resultsFile, fingerprint, cells, masking, models, partial, vaeSha256, purifierSha256, modelsOf };
}

/**
 * The settings a results file is bound to. Without the extra-restarts PGD-CE
 * (--subset-samples 0) its two fields are left out, so results files written
 * before it existed still open.
 */
function fingerprintSettings(s: WorstCaseSettings): Partial<WorstCaseSettings> {
  if (s.subsetSamples > 0) return s;
  const { subsetSamples: _n, subsetRestarts: _k, ...rest } = s;
  return rest;
}

/** What the report says of the extra-restarts PGD-CE. */
function subsetLine(s: WorstCaseSettings, n: number): string {
  const count = subsetSize(s, n);
  return count > 0
    ? `PGD-CE with ${s.subsetRestarts} restarts on the first ${count} images too`
    : "no PGD with more restarts on a subset";
}

/** The report's lines on data, models, attacks, command and software. */
function aboutLines(run: WorstCaseRun, loaded: Loaded, store: Store): string[] {
  const { o, recipe } = run;
  const { vae, purifier } = loaded;
  return [
    `Data: ${recipe.title} test set, first ${loaded.n} images (${loaded.test.source}); labels: ${recipe.labelSource}.`,
    `Classifier: ${basename(loaded.classifierFile)} ('${describeModel(loaded.classifier).arch}', sha256 ${store.fingerprint.classifierSha256.slice(0, 12)}).`,
    ...(vae
      ? [`VAE: ${basename(o.vae!)} ('${describeModel(vae).arch}', sha256 ${store.vaeSha256!.slice(0, 12)}).`]
      : []),
    ...(purifier
      ? [
          `Purifier: ${basename(o.purifier!)} ('${describeModel(purifier).arch}', sha256 ${store.purifierSha256!.slice(0, 12)}).`,
        ]
      : []),
    `Attacks: ${run.attacks.join(", ")}; PGD ${o.steps} steps of 2.5 * eps / steps, ${o.restarts} restart(s), EOT ${o.eot} on randomized defenses; Square ${o.squareQueries} queries; ${subsetLine(run.settingsFor(0), loaded.n)}; scoring over ${o.passes} pass(es) for randomized defenses. Seed ${o.seed}.`,
    `Command: \`${["vaeguard", ...process.argv.slice(2)].join(" ")}\`.`,
    `Software: ${Object.entries(softwareVersions())
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}.`,
  ];
}

/**
 * The batch store of one cell, kept in `store.partial` and saved with the
 * results after every batch, so a stopped run resumes at the batch it was in.
 * Batches computed with other checkpoints than the defense's current ones are
 * dropped.
 */
function cellBatches(store: Store, key: string, models: string, save: () => void): BatchStore {
  const kept = store.partial[key];
  const cell = kept?.models === models ? kept : { models, batches: {} };
  store.partial[key] = cell;
  return {
    get: (k) => cell.batches[k],
    put: (k, batch) => {
      cell.batches[k] = batch;
      save();
    },
  };
}

/** Evaluates every (epsilon, defense) cell not yet stored, and its masking checks, saving after each batch. */
async function evaluateCells(run: WorstCaseRun, loaded: Loaded, store: Store): Promise<void> {
  const { o, log } = run;
  const { classifier, defenses, test } = loaded;
  const { cells, masking, models, partial, resultsFile } = store;
  const save = () =>
    writeJsonAtomic(resultsFile, {
      format: RESULTS_FORMAT,
      fingerprint: store.fingerprint,
      cells,
      masking,
      models,
      partial,
    });
  for (const eps of o.eps) {
    for (const defense of defenses) {
      const key = maskingKey(defense.name, eps);
      const modelsOf = store.modelsOf(run.specs[defenses.indexOf(defense)]);
      const batches = cellBatches(store, key, modelsOf, save);
      const resumed = Object.keys(partial[key].batches).length;
      let cell = cells.find((c) => c.defense === defense.name && c.epsilon === eps);
      let changed = resumed > 0;
      if (cell) {
        log(`${defense.name}, eps ${eps}: taken from ${resultsFile}`);
      } else {
        if (resumed > 0)
          log(`${defense.name}, eps ${eps}: resuming with ${resumed} finished batches from ${resultsFile}`);
        cell = await worstCaseCell(classifier, defense, test.images, test.labels, run.settingsFor(eps), {
          log,
          batches,
        });
        cells.push(cell);
        models[key] = modelsOf;
        save();
        changed = true;
      }
      log(
        `${defense.name}, eps ${eps}: worst case ${cell.worstCase.toFixed(4)} [${cell.interval.map((v) => v.toFixed(3)).join(", ")}] on ${cell.n} images`,
      );
      if (o.checks && eps > 0 && masking[key] === undefined) {
        masking[key] = await maskingChecks(classifier, defense, test.images, test.labels, cell, {
          largeEps: o.largeEps,
          samples: o.checkSamples,
          log,
          batches,
        });
        changed = true;
      }
      // The cell and its checks are stored whole: its batches are no longer needed.
      delete partial[key];
      if (changed) save();
    }
  }
}

/** Writes OUT/report.md and prints the table and findings (or, with --json, the cells and checks). */
function writeResults(
  run: WorstCaseRun,
  store: Store,
  about: string[],
  ordered: WorstCaseCell[],
  seconds: number,
): void {
  const { o, recipe } = run;
  const { out, masking, resultsFile } = store;
  const report = renderWorstCaseReport({
    title: `vaeguard worst-case: ${recipe.title}`,
    about: [...about, `Time: ${seconds.toFixed(0)} s in this run (cells taken from earlier runs cost nothing).`],
    cells: ordered,
    masking,
  });
  writeFileAtomic(join(out, "report.md"), report);
  if (o.json) {
    console.log(
      JSON.stringify(
        {
          cells: ordered.map(({ perImage: _p, clean, attacks: a, ...rest }) => ({
            ...rest,
            clean: clean.accuracy,
            attacks: a.map(({ perImage: _q, ...r }) => r),
          })),
          masking,
          report: join(out, "report.md"),
          results: resultsFile,
          seconds,
        },
        null,
        2,
      ),
    );
    return;
  }
  console.log(renderWorstCaseText(ordered));
  for (const m of Object.values(masking)) {
    for (const f of m.findings) console.log(`${f.level === "warning" ? "Warning" : "Check"}: ${f.message}`);
  }
  console.log(`Report: ${join(out, "report.md")} (${seconds.toFixed(0)} s)`);
}
