/**
 * The paper's evaluation: for each attack and each epsilon, attack the test
 * images, then measure the average relative L2 difference and the top-1
 * accuracy of the classifier behind every defense.
 *
 * Modes: "gray-box" (the paper's; the attack sees only the classifier, one set
 * of adversarial images serves every defense) and "adaptive" (each defense is
 * attacked through its own attack view: exact, BPDA or EOT gradients).
 * Randomized defenses are scored as the mean over several passes, never the best.
 *
 * Results are appended to a JSON file after every (attack, epsilon), written
 * atomically, so an interrupted sweep resumes where it stopped.
 */
import { existsSync, readFileSync } from "node:fs";
import { keep, manualSeed, noGrad, tidy } from "../core/engine.js";
import type { Tensor } from "../core/tensor.js";
import { VaeguardError } from "../core/errors.js";
import type { Attack, AttackableModel } from "../attacks/types.js";
import type { Defense } from "../defenses/types.js";
import { DefendedModel } from "../defenses/defended-model.js";
import { correctPerPass } from "../defenses/scoring.js";
import type { ImageClassifier } from "../models/classifiers.js";
import type { AttackMode, GridSample, ResultRow } from "./results.js";
import { batches, deriveSeed, datasetSize, type ImageDataset } from "../data/index.js";
import { writeJsonAtomic } from "../io/atomic.js";
import { silentProgress, type ProgressFactory } from "../core/progress.js";
import { meanStd, relativeL2 } from "./metrics.js";

export interface AttackSpec {
  /** Name in tables, e.g. "FGSM" or "I-FGSM". */
  name: string;
  make: (model: AttackableModel, eps: number) => Attack;
  /** This attack's own epsilon grid (default: the sweep's). */
  epsilons?: number[];
}

export type { GridSample } from "./results.js";

export interface SweepOptions {
  classifier: ImageClassifier;
  data: ImageDataset;
  attacks: AttackSpec[];
  epsilons: number[];
  defenses: Defense[];
  mode: AttackMode;
  batchSize: number;
  /** Forward passes per randomized defense (scored as their mean and std). */
  passes: number;
  /** JSON results file: resumed when it exists and was made with the same settings. */
  resultsFile?: string;
  /** Settings that must match for a resume (data, models, attack parameters). */
  fingerprint?: Record<string, unknown>;
  /**
   * Reseed libtorch's generator before every (attack, epsilon) row from this
   * seed, so a resumed sweep gives the same numbers as an uninterrupted one.
   */
  seed?: number;
  /** Keep this many images of the first batch at `gridEpsilon` for a picture grid. */
  gridImages?: number;
  gridEpsilon?: number;
  quiet?: boolean;
  /** Reports each row's progress (default: nothing). */
  progress?: ProgressFactory;
  log?: (line: string) => void;
}

interface ResultsFile {
  format: "vaeguard-sweep/1";
  fingerprint: Record<string, unknown>;
  rows: ResultRow[];
  grid?: SerializedGrid;
}

interface SerializedGrid extends Omit<GridSample, "original" | "adversarial" | "defended"> {
  original: { data: number[]; label: number; prediction: number }[];
  adversarial: { data: number[]; prediction: number }[];
  defended: Record<string, { data: number[]; prediction: number }[]>;
}

function serializeGrid(g: GridSample): SerializedGrid {
  const conv = <T extends { data: Float32Array }>(xs: T[]) =>
    xs.map((x) => ({ ...x, data: Array.from(x.data, (v) => Math.round(v * 1e4) / 1e4) }));
  return {
    ...g,
    original: conv(g.original),
    adversarial: conv(g.adversarial),
    defended: Object.fromEntries(Object.entries(g.defended).map(([k, v]) => [k, conv(v)])),
  };
}

function deserializeGrid(g: SerializedGrid): GridSample {
  const conv = <T extends { data: number[] }>(xs: T[]) => xs.map((x) => ({ ...x, data: Float32Array.from(x.data) }));
  return {
    ...g,
    original: conv(g.original),
    adversarial: conv(g.adversarial),
    defended: Object.fromEntries(Object.entries(g.defended).map(([k, v]) => [k, conv(v)])),
  };
}

function stringHash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

function rowKey(attack: string, mode: string, eps: number): string {
  return `${attack}|${mode}|${eps}`;
}

function loadResults(path: string, fingerprint: Record<string, unknown>): ResultsFile | undefined {
  if (!existsSync(path)) return undefined;
  let parsed: ResultsFile;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8")) as ResultsFile;
  } catch {
    throw new VaeguardError(`${path}: the results file is not valid JSON; delete it or pass --restart`);
  }
  if (parsed.format !== "vaeguard-sweep/1" || !Array.isArray(parsed.rows)) {
    throw new VaeguardError(`${path}: not a vaeguard results file; delete it or pass --restart`);
  }
  if (JSON.stringify(parsed.fingerprint) !== JSON.stringify(fingerprint)) {
    throw new VaeguardError(
      `${path}: was made with other settings (data, models or attacks); delete it or pass --restart`,
    );
  }
  return parsed;
}

function imagesOf(t: Tensor, k: number): Float32Array[] {
  const n = Math.min(k, t.dims[0]);
  const per = t.dims.slice(1).reduce((a, b) => a * b, 1);
  const data = tidy(() => t.narrow(0, 0, n).contiguous().dataSync() as Float32Array);
  return Array.from({ length: n }, (_, i) => data.slice(i * per, (i + 1) * per));
}

/**
 * Run the sweep; returns every row (including rows loaded from a resumed
 * results file) and the picture-grid sample when asked for.
 */
export async function sweep(opts: SweepOptions): Promise<{ rows: ResultRow[]; grid?: GridSample }> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const fingerprint = {
    ...(opts.fingerprint ?? {}),
    mode: opts.mode,
    epsilons: opts.epsilons,
    attacks: opts.attacks.map((a) => (a.epsilons ? { name: a.name, epsilons: a.epsilons } : a.name)),
    defenses: opts.defenses.map((d) => d.name),
    samples: datasetSize(opts.data),
    passes: opts.passes,
  };
  const previous = opts.resultsFile ? loadResults(opts.resultsFile, fingerprint) : undefined;
  const done = new Map<string, ResultRow>((previous?.rows ?? []).map((r) => [rowKey(r.attack, r.mode, r.epsilon), r]));
  let grid: GridSample | undefined = previous?.grid ? deserializeGrid(previous.grid) : undefined;
  if (previous && done.size > 0) log(`evaluate: resuming ${opts.resultsFile} (${done.size} rows already done)`);
  const rows: ResultRow[] = [];
  const save = () => {
    if (opts.resultsFile) {
      writeJsonAtomic(opts.resultsFile, {
        format: "vaeguard-sweep/1",
        fingerprint,
        rows,
        grid: grid ? serializeGrid(grid) : undefined,
      } satisfies ResultsFile);
    }
  };
  const wasTraining = opts.classifier.training;
  opts.classifier.eval();
  try {
    // Epsilon 0 leaves the images unchanged, so its row is the same for every attack: computed once.
    let cleanRow: ResultRow | undefined;
    for (const spec of opts.attacks) {
      for (const eps of spec.epsilons ?? opts.epsilons) {
        const key = rowKey(spec.name, opts.mode, eps);
        const prior = done.get(key);
        if (prior) {
          rows.push(prior);
          if (eps === 0) cleanRow ??= prior;
          continue;
        }
        if (eps === 0 && cleanRow) {
          rows.push({ ...cleanRow, attack: spec.name });
          save();
          continue;
        }
        if (opts.seed !== undefined)
          manualSeed(deriveSeed(opts.seed, stringHash(spec.name), stringHash(opts.mode), Math.round(eps * 1e6)));
        const wantGrid = opts.gridImages && !grid && eps === opts.gridEpsilon;
        const row = await evaluatePoint(opts, spec, eps, wantGrid ? (g) => (grid = g) : undefined);
        rows.push(row);
        if (eps === 0) cleanRow = row;
        save();
        const accs = Object.entries(row.accuracy)
          .map(([d, a]) => `${d} ${a.toFixed(3)}`)
          .join(", ");
        log(`${spec.name} (${opts.mode}) eps ${eps}: rel-L2 ${row.relL2.toFixed(3)}; ${accs}`);
      }
    }
  } finally {
    opts.classifier.train(wasTraining);
  }
  return { rows, grid };
}

async function evaluatePoint(
  opts: SweepOptions,
  spec: AttackSpec,
  eps: number,
  onGrid?: (g: GridSample) => void,
): Promise<ResultRow> {
  const { classifier, defenses, mode } = opts;
  const n = datasetSize(opts.data);
  const correct = new Map<string, number[]>(
    defenses.map((d) => [d.name, new Array(d.randomized ? opts.passes : 1).fill(0)]),
  );
  const l2 = new Map<string, number>(defenses.map((d) => [d.name, 0]));
  let l2Shared = 0;
  const grayAttack = mode === "gray-box" && eps > 0 ? spec.make(classifier, eps) : undefined;
  const adaptiveAttacks = new Map<string, Attack>();
  if (mode === "adaptive" && eps > 0) {
    for (const d of defenses)
      adaptiveAttacks.set(d.name, spec.make(new DefendedModel(d, classifier, { view: "adaptive" }), eps));
  }
  const bar = (opts.quiet ? silentProgress : (opts.progress ?? silentProgress))(`${spec.name} eps ${eps}`, n, "images");
  let b = 0;
  for (const batch of batches(opts.data, { batchSize: opts.batchSize })) {
    const { x, y } = batch;
    try {
      let shared: Tensor | undefined;
      if (mode === "gray-box") {
        shared = grayAttack ? keep(await grayAttack.generate(x, y)) : keep(x.clone());
        l2Shared += relativeL2(x, shared).reduce((a, v) => a + v, 0);
      }
      const gridDefended: GridSample["defended"] = {};
      for (const d of defenses) {
        const adv =
          shared ??
          (adaptiveAttacks.get(d.name) ? keep(await adaptiveAttacks.get(d.name)!.generate(x, y)) : keep(x.clone()));
        try {
          if (!shared) l2.set(d.name, l2.get(d.name)! + relativeL2(x, adv).reduce((a, v) => a + v, 0));
          const counts = correct.get(d.name)!;
          const keepGrid = (purified: Tensor, predictions: Int32Array) => {
            const k = opts.gridImages!;
            gridDefended[d.name] = imagesOf(purified, k).map((data, i) => ({ data, prediction: predictions[i] }));
          };
          const passCounts = await correctPerPass(
            d,
            classifier,
            adv,
            y,
            counts.length,
            onGrid && b === 0 ? keepGrid : undefined,
          );
          passCounts.forEach((c, p) => (counts[p] += c));
        } finally {
          if (adv !== shared) adv.dispose();
        }
      }
      if (onGrid && b === 0) {
        const k = opts.gridImages!;
        const adv = shared ?? x;
        const [cleanPred, advPred, labels] = tidy(() =>
          noGrad(() => [
            classifier.forward(x).argmax(1).toArray(),
            classifier.forward(adv).argmax(1).toArray(),
            y.toArray(),
          ]),
        );
        const shape = x.shape.slice(1) as [number, number, number];
        onGrid({
          epsilon: eps,
          attack: spec.name,
          shape,
          original: imagesOf(x, k).map((data, i) => ({ data, label: labels[i], prediction: cleanPred[i] })),
          adversarial: imagesOf(adv, k).map((data, i) => ({ data, prediction: advPred[i] })),
          defended: gridDefended,
        });
      }
      shared?.dispose();
    } finally {
      x.dispose();
      y.dispose();
    }
    b++;
    bar.update(Math.min(b * opts.batchSize, n));
  }
  bar.stop();
  const accuracy: Record<string, number> = {};
  const std: Record<string, number> = {};
  for (const d of defenses) {
    const { mean, std: s } = meanStd(correct.get(d.name)!.map((c) => c / n));
    accuracy[d.name] = mean;
    if (d.randomized && opts.passes > 1) std[d.name] = s;
  }
  const row: ResultRow = { attack: spec.name, mode, epsilon: eps, relL2: 0, accuracy };
  if (Object.keys(std).length > 0) row.std = std;
  if (mode === "gray-box") {
    row.relL2 = l2Shared / n;
  } else {
    row.relL2ByDefense = Object.fromEntries(defenses.map((d) => [d.name, l2.get(d.name)! / n]));
    row.relL2 = defenses.reduce((a, d) => a + l2.get(d.name)! / n, 0) / defenses.length;
  }
  return row;
}
