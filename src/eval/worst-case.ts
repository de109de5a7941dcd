/**
 * Worst-case robust accuracy of a defended classifier (issue 12): for each
 * image, the minimum over a set of strong attacks, each run against the
 * defense as it is (adaptive):
 *
 * - PGD L-inf with the cross-entropy loss, `steps` steps of 2.5 * eps / steps,
 *   `restarts` random restarts, EOT over `eot` samples of a randomized
 *   defense's noise per gradient (1 for a deterministic one);
 * - the same with Carlini & Wagner's margin loss (it does not saturate where
 *   the softmax does, so it catches masking by over-confident logits);
 * - Square Attack (gradient-free random search; EOT `squareEot` passes per query
 *   on a randomized defense), which needs no gradient at all;
 * - gray-box transfer: PGD-CE on the undefended classifier, then the defense;
 * - on the first `subsetSamples` images (default 500), PGD-CE again with
 *   `subsetRestarts` restarts (default 5), the issue's "5 on a 500-image
 *   subset": more restarts where they can be afforded.
 *
 * The clean image is a candidate too, so a clean mistake counts as a loss.
 * Scoring: a deterministic defense gives each image 0 or 1; a randomized one
 * gives it the fraction of `passes` independent forward passes that classify
 * it correctly (its expected accuracy), never the best pass. The worst case of
 * an image is its minimum over the candidates, and the defense's worst-case
 * accuracy the mean over images, with a 95% Wilson interval over the n images.
 *
 * libtorch's generator is reseeded from (seed, defense, attack, eps, batch)
 * before every attack, so a cell's numbers do not depend on what ran before.
 * That also makes every batch of every attack a unit of work on its own: given
 * a BatchStore, a cell (and its masking checks) keeps each finished batch
 * there and takes it back instead of attacking it again, so a run stopped in
 * the middle of a cell that takes hours resumes at the batch it was in, with
 * the same numbers as a run that was never stopped.
 *
 * Also the gradient-masking checks (maskingChecks), as SanityFindings.
 */
import { manualSeed, noGrad, tidy } from "../core/engine.js";
import type { Tensor } from "../core/tensor.js";
import { checkInt, checkNumber, fail } from "../core/validate.js";
import { PGD } from "../attacks/pgd.js";
import { SquareAttack } from "../attacks/square.js";
import type { Attack, AttackableModel } from "../attacks/types.js";
import { DefendedModel, type Classifier } from "../defenses/defended-model.js";
import type { Defense } from "../defenses/types.js";
import { deriveSeed } from "../data/random.js";
import { formatEpsilon, type ResultRow } from "./results.js";
import { accuracyStandardError, wilsonInterval } from "./interval.js";
import { checkBlackBox, checkConvergence, checkDecay, checkMonotoneLoss, type SanityFinding } from "./sanity.js";

export const WORST_CASE_ATTACKS = ["pgd-ce", "pgd-margin", "square", "transfer"] as const;
export type WorstCaseAttack = (typeof WORST_CASE_ATTACKS)[number];

export interface WorstCaseSettings {
  /** L-inf budget in [0, 1]. */
  eps: number;
  /** PGD steps (default 100). */
  steps: number;
  /** PGD random restarts (default 2). */
  restarts: number;
  /** EOT samples per PGD gradient on a randomized defense (default 10). */
  eot: number;
  /** Square Attack queries per image (default 5000). */
  squareQueries: number;
  /** Forward passes averaged per Square query on a randomized defense (default: eot). */
  squareEot: number;
  /** Which attacks (default all four). */
  attacks: WorstCaseAttack[];
  /** Forward passes scoring a randomized defense (default 5). */
  passes: number;
  batchSize: number;
  seed: number;
  /** Images (the first ones) also attacked by PGD-CE with subsetRestarts restarts (default 500; 0: none). */
  subsetSamples: number;
  /** Restarts of that PGD (default 5); it runs only when more than `restarts`, and with PGD-CE among the attacks. */
  subsetRestarts: number;
}

export const WORST_CASE_DEFAULTS: Omit<WorstCaseSettings, "eps" | "squareEot"> = {
  steps: 100,
  restarts: 2,
  eot: 10,
  squareQueries: 5000,
  attacks: [...WORST_CASE_ATTACKS],
  passes: 5,
  batchSize: 100,
  seed: 0,
  subsetSamples: 500,
  subsetRestarts: 5,
};

/** Defaults filled in and every value checked. */
export function resolveWorstCaseSettings(s: Partial<WorstCaseSettings> & { eps: number }): WorstCaseSettings {
  const eot = checkInt(s.eot ?? WORST_CASE_DEFAULTS.eot, "eot", 1);
  const attacks = s.attacks ?? WORST_CASE_DEFAULTS.attacks;
  if (!Array.isArray(attacks) || attacks.length === 0) fail("a non-empty list of attacks", "attacks", attacks);
  for (const a of attacks) {
    if (!(WORST_CASE_ATTACKS as readonly string[]).includes(a)) {
      fail(`one of ${WORST_CASE_ATTACKS.map((x) => JSON.stringify(x)).join(", ")}`, "attack", a);
    }
  }
  return {
    eps: checkNumber(s.eps, "eps", 0, 1),
    steps: checkInt(s.steps ?? WORST_CASE_DEFAULTS.steps, "steps", 1),
    restarts: checkInt(s.restarts ?? WORST_CASE_DEFAULTS.restarts, "restarts", 1),
    eot,
    squareQueries: checkInt(s.squareQueries ?? WORST_CASE_DEFAULTS.squareQueries, "squareQueries", 1),
    squareEot: checkInt(s.squareEot ?? eot, "squareEot", 1),
    attacks: [...new Set(attacks)],
    passes: checkInt(s.passes ?? WORST_CASE_DEFAULTS.passes, "passes", 1),
    batchSize: checkInt(s.batchSize ?? WORST_CASE_DEFAULTS.batchSize, "batchSize", 1),
    seed: checkInt(s.seed ?? WORST_CASE_DEFAULTS.seed, "seed", 0),
    subsetSamples: checkInt(s.subsetSamples ?? WORST_CASE_DEFAULTS.subsetSamples, "subsetSamples", 0),
    subsetRestarts: checkInt(s.subsetRestarts ?? WORST_CASE_DEFAULTS.subsetRestarts, "subsetRestarts", 1),
  };
}

export interface AttackScore {
  attack: WorstCaseAttack | "clean";
  /** Name with its parameters, for tables: "PGD(100)x2, EOT 10". */
  name: string;
  accuracy: number;
  /** Per image: 1/0, or the fraction of passes correct for a randomized defense. */
  perImage: number[];
  seconds: number;
}

export interface WorstCaseCell {
  defense: string;
  epsilon: number;
  n: number;
  randomized: boolean;
  clean: AttackScore;
  attacks: AttackScore[];
  /** PGD-CE with more restarts on the first `subset.perImage.length` images, when it ran (see the header). */
  subset?: AttackScore;
  /** Mean over images of the per-image minimum over clean and every attack. */
  worstCase: number;
  /** 95% Wilson interval of worstCase over the n images. */
  interval: [number, number];
  perImage: number[];
  /** Batch-mean PGD-CE objective before each step, first batch, first restart (empty when PGD-CE did not run). */
  pgdTrace: number[];
  settings: WorstCaseSettings;
  seconds: number;
}

/** One finished batch of one attack: its per-image scores, its seconds, and the PGD trace of a cell's first batch. */
export interface FinishedBatch {
  perImage: number[];
  seconds: number;
  trace?: number[];
}

/**
 * Where a cell keeps its finished batches (see the header). Keys name the
 * attack, its steps, restarts and eps, and the batch's images; the store is
 * the caller's to scope to one cell of one set of settings and models.
 */
export interface BatchStore {
  get(key: string): FinishedBatch | undefined;
  put(key: string, batch: FinishedBatch): void;
}

/** A 32-bit hash of a string (FNV-1a), for seeds derived from names. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function seedFor(seed: number, defense: string, attack: string, eps: number, batch: number): number {
  return deriveSeed(seed, hashString(defense), hashString(attack), Math.round(eps * 1e6), batch);
}

/** Per-image fraction of `passes` forward passes (1 for a deterministic defense) that classify x correctly. */
export async function scorePerImage(
  model: DefendedModel,
  x: Tensor,
  labels: Tensor,
  passes: number,
): Promise<number[]> {
  const runs = model.defense.randomized ? passes : 1;
  let sum: number[] | undefined;
  for (let p = 0; p < runs; p++) {
    const pred = await model.predict(x);
    const ok = noGrad(() => tidy(() => pred.eq(labels.to(pred.dtype)).to("float32").toArray()));
    pred.dispose();
    sum = sum === undefined ? ok : sum.map((v, i) => v + ok[i]);
  }
  return sum!.map((v) => v / runs);
}

const mean = (a: readonly number[]) => a.reduce((s, v) => s + v, 0) / Math.max(a.length, 1);

function attackName(
  kind: WorstCaseAttack,
  s: WorstCaseSettings,
  randomized: boolean,
  steps = s.steps,
  restarts = s.restarts,
): string {
  const eot = randomized ? `, EOT ${kind === "square" ? s.squareEot : s.eot}` : "";
  const pgd = `(${steps})${restarts > 1 ? `x${restarts}` : ""}`;
  switch (kind) {
    case "pgd-ce":
      return `PGD${pgd}${eot}`;
    case "pgd-margin":
      return `PGD-margin${pgd}${eot}`;
    case "square":
      return `Square(${s.squareQueries})${eot}`;
    case "transfer":
      return `transfer PGD${pgd} from the undefended classifier`;
  }
}

/** Build one attack of the worst case: against the defended model (adaptive), or the bare classifier (transfer). */
function buildAttack(
  kind: WorstCaseAttack,
  adaptive: DefendedModel,
  classifier: Classifier,
  s: WorstCaseSettings,
  eps: number,
  extra: {
    steps?: number;
    restarts?: number;
    onStep?: (i: { restart: number; step: number; loss: number }) => void;
  } = {},
): Attack {
  const randomized = adaptive.randomized;
  const steps = extra.steps ?? s.steps;
  const restarts = extra.restarts ?? s.restarts;
  switch (kind) {
    case "pgd-ce":
    case "pgd-margin":
      return new PGD(adaptive, {
        eps,
        steps,
        restarts,
        eotSamples: randomized ? s.eot : 1,
        loss: kind === "pgd-ce" ? "ce" : "margin",
        ...(extra.onStep ? { onStep: extra.onStep } : {}),
      });
    case "square":
      return new SquareAttack(adaptive, { eps, queries: s.squareQueries, eotSamples: randomized ? s.squareEot : 1 });
    case "transfer":
      return new PGD(classifier as AttackableModel, { eps, steps, restarts, eotSamples: 1 });
  }
}

/** What a batch of an attack needs besides the attack itself: steps and restarts when not the settings', a trace to fill, the store. */
interface BatchExtra {
  steps?: number;
  restarts?: number;
  trace?: number[];
  batches?: BatchStore;
}

/** An attack with its steps and restarts, "pgd-ce/100/2": what its seeds and stored batches are named by. */
function attackTag(kind: WorstCaseAttack, s: WorstCaseSettings, extra: BatchExtra): string {
  return `${kind}/${extra.steps ?? s.steps}/${extra.restarts ?? s.restarts}`;
}

/** The BatchStore key of one batch of one attack: "pgd-ce/100/2 eps 0.3 images 100+100". */
function batchKey(
  kind: WorstCaseAttack,
  s: WorstCaseSettings,
  extra: BatchExtra,
  eps: number,
  batch: { start: number; m: number },
): string {
  return `${attackTag(kind, s, extra)} eps ${eps} images ${batch.start}+${batch.m}`;
}

/**
 * One batch of one attack, images [start, start + m): taken from the store
 * when it holds it, else attacked (seeded from the batch index `b`) and put
 * there. The first batch of a traced attack fills `extra.trace`.
 */
async function finishedBatch(
  kind: WorstCaseAttack,
  defended: DefendedModel,
  classifier: Classifier,
  data: { images: Tensor; labels: Tensor },
  s: WorstCaseSettings,
  eps: number,
  batch: { b: number; start: number; m: number },
  extra: BatchExtra,
): Promise<FinishedBatch> {
  const key = batchKey(kind, s, extra, eps, batch);
  const stored = extra.batches?.get(key);
  const done = stored ?? (await attackBatch(kind, defended, classifier, data, s, eps, batch, extra));
  if (!stored) extra.batches?.put(key, done);
  if (batch.b === 0 && extra.trace) extra.trace.push(...(done.trace ?? []));
  return done;
}

/** How many of `n` images the extra-restarts PGD-CE attacks under `s` (0 when it does not run). */
export function subsetSize(s: WorstCaseSettings, n: number): number {
  if (!s.attacks.includes("pgd-ce") || s.subsetRestarts <= s.restarts) return 0;
  return Math.min(s.subsetSamples, n);
}

/** The batches of `n` images: index, first image and size. */
function batchesOf(n: number, batchSize: number): { b: number; start: number; m: number }[] {
  const out: { b: number; start: number; m: number }[] = [];
  for (let start = 0, b = 0; start < n; start += batchSize, b++)
    out.push({ b, start, m: Math.min(batchSize, n - start) });
  return out;
}

/**
 * The finished batches a stored cell is made of, keyed as worstCaseCell keys
 * them: what lets a cell of the first n images grow to more images (a larger
 * --samples) without attacking the first n again. Batches are seeded by their
 * index and keyed by their image range, so every whole batch is exactly what
 * the larger run would compute; a last, shorter batch has another key and is
 * attacked again. Seconds are the attack's, shared out by images. The masking
 * checks' own attacks are not in a cell, so they run again on a grown cell.
 */
export function batchesOfCell(cell: WorstCaseCell): Record<string, FinishedBatch> {
  const s = cell.settings;
  const out: Record<string, FinishedBatch> = {};
  const add = (score: AttackScore, extra: BatchExtra, count: number) => {
    const perSecond = score.seconds / Math.max(score.perImage.length, 1);
    for (const { b, start, m } of batchesOf(count, s.batchSize)) {
      const perImage = score.perImage.slice(start, start + m);
      const key = batchKey(score.attack as WorstCaseAttack, s, extra, cell.epsilon, { start, m });
      const trace = b === 0 && score.attack === "pgd-ce" && extra.restarts === undefined ? cell.pgdTrace : undefined;
      out[key] = { perImage, seconds: perSecond * m, ...(trace && trace.length > 0 ? { trace: [...trace] } : {}) };
    }
  };
  for (const score of cell.attacks) add(score, {}, cell.n);
  if (cell.subset) add(cell.subset, { restarts: s.subsetRestarts }, cell.subset.perImage.length);
  return out;
}

/** An attack's score from its batches, in order. */
function scoreOf(
  kind: WorstCaseAttack,
  done: readonly FinishedBatch[],
  s: WorstCaseSettings,
  randomized: boolean,
  extra: BatchExtra,
): AttackScore {
  const perImage = done.flatMap((d) => d.perImage);
  const seconds = done.reduce((sum, d) => sum + d.seconds, 0);
  const name = attackName(kind, s, randomized, extra.steps, extra.restarts);
  return { attack: kind, name, accuracy: mean(perImage), perImage, seconds };
}

/** Run one attack over the images in batches and score its adversarial images through the defense. */
async function runAttack(
  kind: WorstCaseAttack,
  defended: DefendedModel,
  classifier: Classifier,
  images: Tensor,
  labels: Tensor,
  s: WorstCaseSettings,
  eps: number,
  extra: BatchExtra = {},
): Promise<AttackScore> {
  const done: FinishedBatch[] = [];
  for (const batch of batchesOf(images.dims[0], s.batchSize)) {
    done.push(await finishedBatch(kind, defended, classifier, { images, labels }, s, eps, batch, extra));
  }
  return scoreOf(kind, done, s, defended.randomized, extra);
}

/** Attack one batch, images [start, start + m), seeded from its index `b`, and score it through the defense. */
async function attackBatch(
  kind: WorstCaseAttack,
  defended: DefendedModel,
  classifier: Classifier,
  { images, labels }: { images: Tensor; labels: Tensor },
  s: WorstCaseSettings,
  eps: number,
  { b, start, m }: { b: number; start: number; m: number },
  extra: BatchExtra,
): Promise<FinishedBatch> {
  const t0 = performance.now();
  const [x, y] = tidy(() => [images.narrow(0, start, m), labels.narrow(0, start, m)]);
  try {
    manualSeed(seedFor(s.seed, defended.defense.name, attackTag(kind, s, extra), eps, b));
    const trace: number[] | undefined = b === 0 && extra.trace ? [] : undefined;
    const attack = buildAttack(kind, defended, classifier, s, eps, {
      ...extra,
      ...(trace ? { onStep: (i) => (i.restart === 0 ? trace.push(i.loss) : undefined) } : {}),
    });
    const adv = eps === 0 ? noGrad(() => x.clone()) : await attack.generate(x, y);
    try {
      const perImage = await scorePerImage(defended, adv, y, s.passes);
      return { perImage, seconds: (performance.now() - t0) / 1000, ...(trace ? { trace } : {}) };
    } finally {
      adv.dispose();
    }
  } finally {
    x.dispose();
    y.dispose();
  }
}

function checkData(images: unknown, labels: unknown): void {
  const x = images as Tensor;
  const y = labels as Tensor;
  if (typeof x?.dims !== "object" || x.rank !== 4) fail("a batch of images [N, C, H, W]", "images", images);
  if (typeof y?.dims !== "object" || y.rank !== 1 || y.dims[0] !== x.dims[0]) {
    fail(`${x.dims[0]} labels`, "labels", labels);
  }
}

/**
 * The worst case of one defense at one eps over the images (see the header).
 * `log` gets a line after each batch (the worst case of the images so far)
 * and one per attack at the end.
 */
export async function worstCaseCell(
  classifier: Classifier,
  defense: Defense,
  images: Tensor,
  labels: Tensor,
  settings: Partial<WorstCaseSettings> & { eps: number },
  options: { log?: (line: string) => void; batches?: BatchStore } = {},
): Promise<WorstCaseCell> {
  const s = resolveWorstCaseSettings(settings);
  checkData(images, labels);
  const t0 = performance.now();
  const defended = new DefendedModel(defense, classifier, { view: "adaptive" });
  const n = images.dims[0];
  const cleanStart = performance.now();
  const cleanScores: number[] = [];
  for (const { b, start, m } of batchesOf(n, s.batchSize)) {
    const [x, y] = tidy(() => [images.narrow(0, start, m), labels.narrow(0, start, m)]);
    manualSeed(seedFor(s.seed, defense.name, "clean", s.eps, b));
    cleanScores.push(...(await scorePerImage(defended, x, y, s.passes)));
    x.dispose();
    y.dispose();
  }
  const clean: AttackScore = {
    attack: "clean",
    name: "clean",
    accuracy: mean(cleanScores),
    perImage: cleanScores,
    seconds: (performance.now() - cleanStart) / 1000,
  };
  // Batch by batch, every attack on a batch before the next batch, so that a run stopped part way has the
  // complete worst case of the images it finished (the log says it as it goes).
  const trace: number[] = [];
  const done = new Map<WorstCaseAttack, FinishedBatch[]>(s.attacks.map((k) => [k, []]));
  const extraFor = (kind: WorstCaseAttack): BatchExtra => ({
    ...(kind === "pgd-ce" ? { trace } : {}),
    batches: options.batches,
  });
  const subsetCount = subsetSize(s, n);
  const subsetExtra: BatchExtra = { restarts: s.subsetRestarts, batches: options.batches };
  const subsetDone: FinishedBatch[] = [];
  const worstSoFar: number[] = [];
  for (const batch of batchesOf(n, s.batchSize)) {
    for (const kind of s.attacks) {
      const d = await finishedBatch(kind, defended, classifier, { images, labels }, s, s.eps, batch, extraFor(kind));
      done.get(kind)!.push(d);
    }
    const subsetScores: number[] = [];
    if (batch.start < subsetCount) {
      const part = { ...batch, m: Math.min(batch.m, subsetCount - batch.start) };
      const d = await finishedBatch("pgd-ce", defended, classifier, { images, labels }, s, s.eps, part, subsetExtra);
      subsetDone.push(d);
      subsetScores.push(...d.perImage);
    }
    for (let j = 0; j < batch.m; j++) {
      const scores = [...s.attacks.map((k) => done.get(k)!.at(-1)!.perImage[j]), ...subsetScores.slice(j, j + 1)];
      worstSoFar.push(Math.min(cleanScores[batch.start + j], ...scores));
    }
    if (batch.start + batch.m < n) {
      options.log?.(
        `${defense.name}, eps ${s.eps}: ${batch.start + batch.m} of ${n} images: worst case so far ${mean(worstSoFar).toFixed(4)}`,
      );
    }
  }
  const attacks = s.attacks.map((kind) => scoreOf(kind, done.get(kind)!, s, defended.randomized, extraFor(kind)));
  const subset = subsetCount > 0 ? scoreOf("pgd-ce", subsetDone, s, defended.randomized, subsetExtra) : undefined;
  if (subset) subset.name += ` on the first ${subsetCount}`;
  for (const score of [...attacks, ...(subset ? [subset] : [])]) {
    options.log?.(
      `${defense.name}, eps ${s.eps}: ${score.name}: ${score.accuracy.toFixed(4)} (${score.seconds.toFixed(0)} s)`,
    );
  }
  const perImage = worstSoFar; // every image's minimum, now that every batch is done
  const worst = mean(perImage);
  return {
    defense: defense.name,
    epsilon: s.eps,
    n,
    randomized: defense.randomized,
    clean,
    attacks,
    ...(subset ? { subset } : {}),
    worstCase: worst,
    interval: wilsonInterval(worst * n, n),
    perImage,
    pgdTrace: trace,
    settings: s,
    seconds: (performance.now() - t0) / 1000,
  };
}

export interface MaskingOptions {
  /** The large budget at which accuracy must be near 0 (default 0.5). */
  largeEps?: number;
  /** Accuracy allowed at largeEps, as a fraction of the clean accuracy (default 0.1, chance on 10 classes). */
  largeEpsRatio?: number;
  /** Largest accuracy change allowed when PGD's steps and restarts double (default 0.01). */
  convergenceTolerance?: number;
  /** Run the large-eps and doubled-PGD checks on the first N images only (default: all of the cell's). */
  samples?: number;
  log?: (line: string) => void;
  /** Where the extra attacks keep their finished batches (see BatchStore). */
  batches?: BatchStore;
}

export interface MaskingResult {
  findings: SanityFinding[];
  /** Images the extra attacks ran on. */
  samples: number;
  largeEps: { epsilon: number; accuracy: number; clean: number };
  doubled?: DoubledPgd;
}

/** The doubled-PGD check's numbers on its images: the attack against the cell's, and what it does to the worst case. */
export interface DoubledPgd {
  name: string;
  /** The cell's PGD-CE accuracy on the check's images. */
  base: number;
  /** The doubled PGD-CE's accuracy on the same images. */
  doubled: number;
  /** Absent in results files written before it was reported. */
  worstCase?: WorstCaseWithDoubled;
}

/** The cell's worst case on the check's images, and the same with the doubled PGD added to each image's minimum. */
export interface WorstCaseWithDoubled {
  cell: number;
  withDoubled: number;
}

/** What the extra masking attacks share: the defended model and the image subset they run on. */
interface MaskingRun {
  classifier: Classifier;
  defense: Defense;
  defended: DefendedModel;
  x: Tensor;
  y: Tensor;
  count: number;
  settings: WorstCaseSettings;
  log?: (line: string) => void;
  batches?: BatchStore;
}

/**
 * PGD at a large eps should drive accuracy close to 0; compare it with clean
 * accuracy on the same subset so the decay check sees both ends.
 */
async function largeEpsCheck(
  run: MaskingRun,
  largeEps: number,
  ratio: number,
  clean: number,
): Promise<{ large: AttackScore; findings: SanityFinding[] }> {
  const { defense } = run;
  const large = await runAttack("pgd-ce", run.defended, run.classifier, run.x, run.y, run.settings, largeEps, {
    restarts: 1,
    batches: run.batches,
  });
  run.log?.(`${defense.name}: masking check, ${large.name} at eps ${largeEps}: ${large.accuracy.toFixed(4)}`);
  const decayRows: ResultRow[] = [
    { attack: "PGD", mode: "adaptive", epsilon: 0, relL2: 0, accuracy: { [defense.name]: clean } },
    { attack: "PGD", mode: "adaptive", epsilon: largeEps, relL2: 0, accuracy: { [defense.name]: large.accuracy } },
  ];
  return { large, findings: checkDecay(decayRows, { ratio }) };
}

/**
 * PGD with doubled steps and restarts should not do much better than the
 * cell's PGD (else PGD had not converged), and the PGD loss trace should rise.
 * Only possible when the cell ran PGD-CE.
 */
async function doubledPgdCheck(
  run: MaskingRun,
  cell: WorstCaseCell,
  tolerance: number,
): Promise<{ doubled: DoubledPgd | undefined; findings: SanityFinding[] }> {
  const { defense, settings: s, count } = run;
  const findings: SanityFinding[] = [];
  const base = cell.attacks.find((a) => a.attack === "pgd-ce");
  if (!base) return { doubled: undefined, findings };
  const twice = await runAttack("pgd-ce", run.defended, run.classifier, run.x, run.y, s, s.eps, {
    steps: 2 * s.steps,
    restarts: 2 * s.restarts,
    batches: run.batches,
  });
  run.log?.(`${defense.name}: masking check, ${twice.name}: ${twice.accuracy.toFixed(4)}`);
  const cellWorst = cell.perImage.slice(0, count);
  const worstCase: WorstCaseWithDoubled = {
    cell: mean(cellWorst),
    withDoubled: mean(cellWorst.map((v, i) => Math.min(v, twice.perImage[i]))),
  };
  const doubled = { name: twice.name, base: mean(base.perImage.slice(0, count)), doubled: twice.accuracy, worstCase };
  findings.push(
    ...checkConvergence({
      defense: defense.name,
      epsilon: s.eps,
      base: { attack: base.name, accuracy: doubled.base },
      stronger: { attack: twice.name, accuracy: twice.accuracy },
      samples: count,
      tolerance,
    }),
  );
  findings.push(worstCaseWithDoubledFinding(defense.name, s.eps, twice.name, count, worstCase));
  if (cell.pgdTrace.length > 1) {
    findings.push(...checkMonotoneLoss(cell.pgdTrace, { defense: defense.name, attack: base.name, epsilon: s.eps }));
  }
  return { doubled, findings };
}

/**
 * Whether the doubled PGD, taken as one more attack, lowers the worst case on
 * its images: the convergence check compares PGD with PGD, but what a reader
 * relies on is the worst case. A warning when it does (the cell's worst case
 * overstates robustness by at least that much), else a fact.
 */
function worstCaseWithDoubledFinding(
  defenseName: string,
  eps: number,
  attackName: string,
  count: number,
  worstCase: WorstCaseWithDoubled,
): SanityFinding {
  const drop = worstCase.cell - worstCase.withDoubled;
  const lowered = drop > 1e-9;
  return {
    check: "convergence",
    level: lowered ? "warning" : "info",
    attack: attackName,
    mode: "adaptive",
    defense: defenseName,
    epsilon: eps,
    message:
      `${defenseName} at epsilon ${formatEpsilon(eps)}: the worst case on the first ${count} images is ` +
      `${worstCase.cell.toFixed(3)} over the cell's attacks and ${worstCase.withDoubled.toFixed(3)} with ${attackName} added` +
      (lowered
        ? `: the stronger PGD breaks images every other attack missed, so the cell's worst case is high by about ${drop.toFixed(3)} there.`
        : ": the stronger PGD breaks no image that the cell's attacks had not."),
  };
}

/**
 * Square (gradient-free) beating the best gradient attack beyond noise is a
 * masking sign; when it does not, say so as an info finding so the report
 * shows the check ran. Uses the cell's own scores, no extra attack.
 */
function blackBoxCheck(defenseName: string, cell: WorstCaseCell): SanityFinding[] {
  const s = cell.settings;
  const square = cell.attacks.find((a) => a.attack === "square");
  const gradient = cell.attacks.filter((a) => a.attack === "pgd-ce" || a.attack === "pgd-margin");
  if (!square || gradient.length === 0) return [];
  const best = gradient.reduce((m, a) => (a.accuracy < m.accuracy ? a : m));
  const noise = 2 * accuracyStandardError(best.accuracy, cell.n);
  const rows: ResultRow[] = [best, square].map((a) => ({
    attack: a.name,
    mode: "adaptive",
    epsilon: s.eps,
    relL2: 0,
    accuracy: { [defenseName]: a.accuracy },
  }));
  const warned = checkBlackBox(rows, { margin: noise, kinds: { [best.name]: "pgd", [square.name]: "square" } });
  if (warned.length > 0) return warned;
  return [
    {
      check: "black-box" as const,
      level: "info" as const,
      attack: square.name,
      mode: "adaptive" as const,
      defense: defenseName,
      epsilon: s.eps,
      message:
        `${defenseName} at epsilon ${s.eps}: ${square.name} leaves ${square.accuracy.toFixed(3)}, ` +
        `not below the best gradient attack ${best.name} (${best.accuracy.toFixed(3)}) by more than the noise (${noise.toFixed(3)}).`,
    },
  ];
}

/**
 * The gradient-masking checks of one worst-case cell (issue 12): accuracy
 * near 0 at a large eps; PGD with doubled steps and restarts within
 * `convergenceTolerance` of PGD; Square no better than PGD beyond noise; the
 * PGD loss rising along its steps. Runs two extra attacks (PGD at largeEps, and
 * PGD with 2x steps and 2x restarts) on the first `samples` images.
 */
export async function maskingChecks(
  classifier: Classifier,
  defense: Defense,
  images: Tensor,
  labels: Tensor,
  cell: WorstCaseCell,
  options: MaskingOptions = {},
): Promise<MaskingResult> {
  const largeEps = checkNumber(options.largeEps ?? 0.5, "largeEps", 0, 1);
  const ratio = checkNumber(options.largeEpsRatio ?? 0.1, "largeEpsRatio", 0, 1);
  const tolerance = checkNumber(options.convergenceTolerance ?? 0.01, "convergenceTolerance", 0);
  const count = Math.min(checkInt(options.samples ?? cell.n, "samples", 1), cell.n);
  const defended = new DefendedModel(defense, classifier, { view: "adaptive" });
  const [x, y] = tidy(() => [images.narrow(0, 0, count), labels.narrow(0, 0, count)]);
  const run: MaskingRun = {
    classifier,
    defense,
    defended,
    x,
    y,
    count,
    settings: cell.settings,
    log: options.log,
    batches: options.batches,
  };
  try {
    const clean = mean(cell.clean.perImage.slice(0, count));
    const largeCheck = await largeEpsCheck(run, largeEps, ratio, clean);
    const doubledCheck = await doubledPgdCheck(run, cell, tolerance);
    const findings = [...largeCheck.findings, ...doubledCheck.findings, ...blackBoxCheck(defense.name, cell)];
    // Warnings first so a reader sees problems before the confirmations.
    return {
      findings: [...findings.filter((f) => f.level === "warning"), ...findings.filter((f) => f.level === "info")],
      samples: count,
      largeEps: { epsilon: largeEps, accuracy: largeCheck.large.accuracy, clean },
      doubled: doubledCheck.doubled,
    };
  } finally {
    x.dispose();
    y.dispose();
  }
}
