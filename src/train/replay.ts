/**
 * Replay sets for purifier training (issue 12): adversarial images made
 * beforehand by an attack the training attack cannot afford, mixed into every
 * training batch.
 *
 * Why: against a purifier trained on PGD, Square Attack (a gradient-free
 * random search, thousands of queries per image) finds adversarial images that
 * PGD never reaches, and at eps 0.3 it sets the worst case. Thousands of
 * queries per image are too many for every training step, but a few thousand
 * training images attacked once, ahead of the run, show the purifier the kind
 * of perturbation it misses.
 *
 * A replay set is a safetensors file with three tensors over the same N
 * images: `clean` and `adversarial` [N, C, H, W] float32 in [0, 1], and
 * `labels` [N] int64; its metadata says how it was made. `makeReplaySet`
 * attacks images with any Attack; `loadReplaySet` checks a file against the
 * data set it will be mixed into; `replayRows` draws the rows of one batch.
 */
import { noGrad, tidy } from "../core/engine.js";
import { CheckpointError } from "../core/errors.js";
import { cat, tensor, type Tensor } from "../core/tensor.js";
import { checkInt } from "../core/validate.js";
import { batches, type ImageDataset } from "../data/index.js";
import { deriveSeed, mulberry32 } from "../data/random.js";
import { loadSafetensors, saveSafetensors } from "../io/safetensors.js";
import type { Attack } from "../attacks/types.js";

export interface ReplaySet {
  clean: Tensor;
  adversarial: Tensor;
  labels: Tensor;
  /** The file's metadata: how the set was made. */
  about: Record<string, string>;
}

const TENSORS = ["clean", "adversarial", "labels"] as const;

/** Frees the three tensors of a replay set. */
export function disposeReplaySet(set: ReplaySet): void {
  for (const k of TENSORS) set[k].dispose();
}

/**
 * Attack every image of `ds` (in batches) and collect clean, adversarial and
 * labels; `attack` may be a function of the batch's first row (for an attack
 * seeded per batch, so that any range of a data set can be made apart and
 * come out the same). `onBatch` is told the images done so far and how many
 * of them fool `isFooled` (when given). The caller owns the result.
 */
export async function makeReplaySet(
  ds: ImageDataset,
  attack: Attack | ((first: number) => Attack),
  o: {
    batchSize?: number;
    about?: Record<string, string>;
    isFooled?: (x: Tensor, y: Tensor) => Promise<Tensor>;
    onBatch?: (done: number, fooled: number) => void;
  } = {},
): Promise<ReplaySet> {
  const batchSize = checkInt(o.batchSize ?? 100, "batchSize", 1);
  const parts: Record<(typeof TENSORS)[number], Tensor[]> = { clean: [], adversarial: [], labels: [] };
  let done = 0;
  let fooled = 0;
  try {
    for (const b of batches(ds, { batchSize })) {
      parts.clean.push(b.x);
      parts.labels.push(b.y);
      const attackOfBatch = typeof attack === "function" ? attack(done) : attack;
      const adv = await attackOfBatch.generate(b.x, b.y);
      parts.adversarial.push(adv);
      if (o.isFooled) {
        const f = await o.isFooled(adv, b.y);
        fooled += noGrad(() => tidy(() => f.sum().item()));
        f.dispose();
      }
      done += b.x.dims[0];
      o.onBatch?.(done, fooled);
    }
    return {
      clean: cat(parts.clean, 0),
      adversarial: cat(parts.adversarial, 0),
      labels: cat(parts.labels, 0),
      about: { ...o.about, images: String(done), ...(o.isFooled ? { fooled: String(fooled) } : {}) },
    };
  } finally {
    for (const k of TENSORS) for (const t of parts[k]) t.dispose();
  }
}

/**
 * Several replay sets as one (rows in order; the inputs are freed). Metadata
 * the sets share is kept once; a key whose values differ keeps them all,
 * joined by "; ", so that the result still says how each part was made.
 */
export function joinReplaySets(sets: ReplaySet[]): ReplaySet {
  if (sets.length === 1) return sets[0];
  try {
    const keys = [...new Set(sets.flatMap((s) => Object.keys(s.about)))];
    const about = Object.fromEntries(keys.map((k) => [k, [...new Set(sets.map((s) => s.about[k] ?? "-"))].join("; ")]));
    return noGrad(() => ({
      clean: cat(
        sets.map((s) => s.clean),
        0,
      ),
      adversarial: cat(
        sets.map((s) => s.adversarial),
        0,
      ),
      labels: cat(
        sets.map((s) => s.labels),
        0,
      ),
      about,
    }));
  } finally {
    for (const s of sets) disposeReplaySet(s);
  }
}

/** Write a replay set atomically, with its `about` as the file's metadata. */
export function saveReplaySet(file: string, set: ReplaySet): void {
  saveSafetensors(file, { clean: set.clean, adversarial: set.adversarial, labels: set.labels }, set.about);
}

/**
 * Load a replay set for images of `inputShape` ([C, H, W]) and `numClasses`
 * classes. A file that is not a replay set, or one of other images or
 * classes, or with values outside [0, 1], is a CheckpointError naming the file
 * and the problem; nothing is kept.
 */
export function loadReplaySet(file: string, inputShape: readonly number[], numClasses: number): ReplaySet {
  const { tensors, metadata } = loadSafetensors(file);
  const problem = noGrad(() => tidy(() => replayProblem(tensors, inputShape, numClasses)));
  if (problem !== undefined) {
    for (const t of tensors.values()) t.dispose();
    throw new CheckpointError(file, problem);
  }
  for (const [name, t] of tensors) if (!(TENSORS as readonly string[]).includes(name)) t.dispose();
  return {
    clean: tensors.get("clean")!,
    adversarial: tensors.get("adversarial")!,
    labels: tensors.get("labels")!,
    about: metadata,
  };
}

function replayProblem(
  tensors: Map<string, Tensor>,
  inputShape: readonly number[],
  numClasses: number,
): string | undefined {
  const missing = TENSORS.filter((k) => !tensors.has(k));
  if (missing.length > 0) {
    return `is not a replay set: it has no ${missing.map((k) => `'${k}'`).join(", ")} tensor (a replay set holds clean, adversarial and labels)`;
  }
  const clean = tensors.get("clean")!;
  const adversarial = tensors.get("adversarial")!;
  const labels = tensors.get("labels")!;
  const want = `[N, ${inputShape.join(", ")}]`;
  for (const [name, t] of [
    ["clean", clean],
    ["adversarial", adversarial],
  ] as const) {
    const d = t.dims;
    if (t.dtype !== "float32" || d.length !== 4 || d.slice(1).some((v, i) => v !== inputShape[i])) {
      return `holds '${name}' images ${t.dtype} [${d.join(", ")}] but the data set's are float32 ${want}`;
    }
    if (t.min().item() < 0 || t.max().item() > 1) return `holds '${name}' values outside [0, 1]`;
  }
  const n = clean.dims[0];
  if (n === 0) return "holds no images";
  if (adversarial.dims[0] !== n || labels.dims.length !== 1 || labels.dims[0] !== n) {
    return `holds ${n} clean images but adversarial [${adversarial.dims.join(", ")}] and labels [${labels.dims.join(", ")}]`;
  }
  if (labels.dtype !== "int64") return `holds labels of dtype ${labels.dtype}, not int64`;
  if (labels.min().item() < 0 || labels.max().item() >= numClasses) {
    return `holds labels outside 0..${numClasses - 1}`;
  }
  return undefined;
}

/**
 * The rows of one training batch: `count` images drawn without replacement
 * (with replacement when the set is smaller), from a generator seeded by
 * `seedParts` alone, so that a resumed run draws the same rows.
 */
export function replayRows(
  set: ReplaySet,
  count: number,
  seedParts: number[],
): { clean: Tensor; adversarial: Tensor; labels: Tensor } {
  checkInt(count, "count", 1);
  const n = set.labels.dims[0];
  const random = mulberry32(deriveSeed(...seedParts));
  const picked = new Set<number>();
  const rows: number[] = [];
  while (rows.length < count) {
    const i = Math.floor(random() * n);
    if (count <= n && picked.has(i)) continue;
    picked.add(i);
    rows.push(i);
  }
  return noGrad(() =>
    tidy(() => {
      const index = tensor(
        BigInt64Array.from(rows, (i) => BigInt(i)),
        [count],
      );
      return {
        clean: set.clean.indexSelect(0, index),
        adversarial: set.adversarial.indexSelect(0, index),
        labels: set.labels.indexSelect(0, index),
      };
    }),
  );
}
