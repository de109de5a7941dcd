/**
 * Run one cell of a sweep (see cells.ts): attack a shard of the test images
 * at one epsilon, then count, per defense and scoring pass, the images the
 * classifier behind the defense still gets right.
 *
 * Gray-box cells make one set of adversarial images (the attack sees only the
 * classifier) and score every defense on it; adaptive cells attack one defense
 * through its own attack view (exact, BPDA or EOT gradients). Every tensor is
 * freed on every path, errors included.
 *
 * What is not redone between cells, and what is: the clean (epsilon-0) cells
 * are shared by every attack (cells.ts); the gradient at x that FGSM and
 * I-FGSM's first step take is shared through the runner's GridMemo. A
 * deterministic defense already runs once per batch and cell (randomized ones
 * `passes` times) and each cell's inputs are its own, so nothing more repeats
 * within a mode.
 */
import { dispose, manualSeed, noGrad, tidy, tidyAsync } from "../core/engine.js";
import type { Tensor } from "../core/tensor.js";
import { VaeguardError } from "../core/errors.js";
import { isDirectionAttack, type Attack, type AttackableModel } from "../attacks/types.js";
import type { Defense } from "../defenses/types.js";
import { DefendedModel } from "../defenses/defended-model.js";
import { scoreBatch } from "./score-batch.js";
import type { ImageClassifier } from "../models/classifiers.js";
import { batches, type ImageDataset } from "../data/index.js";
import { CLEAN_ATTACK, type CellResult, type CellTask, type SerializedGrid } from "./cells.js";
import { relativeL2 } from "./metrics.js";
import { directionKey, type GridMemo } from "./grid-memo.js";

export interface AttackSpec {
  /** Name in tables, e.g. "FGSM" or "I-FGSM". */
  name: string;
  make: (model: AttackableModel, eps: number) => Attack;
  /** This attack's own epsilon grid (default: the sweep's). */
  epsilons?: number[];
}

/** Everything a cell needs, in this process. */
export interface SweepContext {
  classifier: ImageClassifier;
  /** The whole test set of the sweep; a cell takes its shard of it. */
  data: ImageDataset;
  attacks: AttackSpec[];
  defenses: Defense[];
  batchSize: number;
  /** Forward passes per randomized defense (scored as their mean and std). */
  passes: number;
  /** Keep every image's first-pass prediction per defense in the cell's result (for paired tests). */
  keepPredictions?: boolean;
}

function predictions(classifier: ImageClassifier, x: Tensor): number[] {
  return tidy(() => noGrad(() => classifier.forward(x).argmax(1).toArray() as number[]));
}

function imagesOf(t: Tensor, k: number): number[][] {
  const n = Math.min(k, t.dims[0]);
  const per = t.dims.slice(1).reduce((a, b) => a * b, 1);
  const data = tidy(() => t.narrow(0, 0, n).contiguous().dataSync() as Float32Array);
  return Array.from({ length: n }, (_, i) =>
    Array.from(data.subarray(i * per, (i + 1) * per), (v) => Math.round(v * 1e4) / 1e4),
  );
}

function cellDefenses(ctx: SweepContext, task: CellTask): Defense[] {
  if (task.cell.defense === undefined) return ctx.defenses;
  const d = ctx.defenses.find((x) => x.name === task.cell.defense);
  if (!d) throw new VaeguardError(`Cell names defense "${task.cell.defense}", which this sweep does not have`);
  return [d];
}

function cellAttack(ctx: SweepContext, task: CellTask, defense: Defense | undefined): Attack | undefined {
  const { cell } = task;
  if (cell.attack === CLEAN_ATTACK || cell.epsilon === 0) return undefined;
  const spec = ctx.attacks.find((a) => a.name === cell.attack);
  if (!spec) throw new VaeguardError(`Cell names attack "${cell.attack}", which this sweep does not have`);
  const target = defense ? new DefendedModel(defense, ctx.classifier, { view: "adaptive" }) : ctx.classifier;
  return spec.make(target, cell.epsilon);
}

/**
 * The attacked images of one batch (its first image is `first` of the test
 * set). An attack with a shareable eps-free direction (FGSM's step, I-FGSM's
 * first step, on a deterministic model) takes it from the runner's memo, when
 * there is one, so the cells of an epsilon grid and of both attacks compute
 * that gradient once per batch between them; the images are those of
 * attack.generate(x, y), bit for bit (the same steps from the same direction).
 */
async function attackBatch(
  memo: GridMemo | undefined,
  task: CellTask,
  attack: Attack,
  x: Tensor,
  y: Tensor,
  first: number,
): Promise<Tensor> {
  if (!memo || !isDirectionAttack(attack) || !attack.directionIsShareable) return attack.generate(x, y);
  const key = directionKey(task.cell, attack.directionKind, first, x.dims[0]);
  return tidyAsync(async () =>
    attack.fromDirection(x, y, await memo.direction(key, () => attack.direction(x, y), x.dtype)),
  );
}

/**
 * Run one cell; `onImages` hears how many of its images are done after each
 * batch. With `memo` the cell shares eps-free attack directions with the
 * other cells run on it (the same numbers as without, in less time).
 */
export async function runCell(
  ctx: SweepContext,
  task: CellTask,
  onImages?: (done: number) => void,
  memo?: GridMemo,
): Promise<CellResult> {
  const defenses = cellDefenses(ctx, task);
  // Seeded before anything random (attack construction included): the cell's numbers depend on the cell only.
  manualSeed(task.seed);
  const attack = cellAttack(ctx, task, task.cell.mode === "adaptive" ? defenses[0] : undefined);
  const correct: Record<string, number[]> = Object.fromEntries(
    defenses.map((d) => [d.name, new Array<number>(d.randomized ? ctx.passes : 1).fill(0)]),
  );
  let relL2Sum = 0;
  let grid: SerializedGrid | undefined;
  const predictions: Record<string, number[]> | undefined = ctx.keepPredictions ? {} : undefined;
  let done = 0;
  // A view of the shard's rows, no copy (the test set of large images can be gigabytes).
  const shard: ImageDataset = {
    ...ctx.data,
    images: ctx.data.images.narrow(0, task.start, task.count),
    labels: ctx.data.labels.narrow(0, task.start, task.count),
  };
  const wasTraining = ctx.classifier.training;
  ctx.classifier.eval();
  try {
    for (const { x, y } of batches(shard, { batchSize: ctx.batchSize })) {
      try {
        const adv = attack ? await attackBatch(memo, task, attack, x, y, task.start + done) : x.clone();
        try {
          relL2Sum += relativeL2(x, adv).reduce((a, v) => a + v, 0);
          const wantGrid = task.gridImages !== undefined && done === 0;
          const defended: SerializedGrid["defended"] = {};
          const firstPass = (d: Defense) => (purified: Tensor, pred: Int32Array) => {
            if (wantGrid) {
              defended[d.name] = imagesOf(purified, task.gridImages!).map((data, i) => ({ data, prediction: pred[i] }));
            }
            if (predictions) (predictions[d.name] ??= []).push(...pred);
          };
          const hooks = wantGrid || predictions ? firstPass : () => undefined;
          const batch = { classifier: ctx.classifier, adv, y, passes: ctx.passes, firstPass: hooks };
          const counts = await scoreBatch(batch, defenses);
          for (const d of defenses) counts[d.name].forEach((c, p) => (correct[d.name][p] += c));
          if (wantGrid) grid = gridOf(ctx.classifier, x, y, adv, defended, task.gridImages!);
        } finally {
          adv.dispose();
        }
      } finally {
        x.dispose();
        y.dispose();
      }
      done += Math.min(ctx.batchSize, task.count - done);
      onImages?.(done);
    }
  } finally {
    ctx.classifier.train(wasTraining);
    dispose([shard.images, shard.labels]);
  }
  const result: CellResult = { images: task.count, correct, relL2Sum };
  if (grid) result.grid = grid;
  if (predictions) result.predictions = predictions;
  return result;
}

function gridOf(
  classifier: ImageClassifier,
  x: Tensor,
  y: Tensor,
  adv: Tensor,
  defended: SerializedGrid["defended"],
  k: number,
): SerializedGrid {
  const clean = predictions(classifier, x);
  const attacked = predictions(classifier, adv);
  const labels = y.toArray() as number[];
  return {
    shape: x.shape.slice(1) as [number, number, number],
    original: imagesOf(x, k).map((data, i) => ({ data, label: labels[i], prediction: clean[i] })),
    adversarial: imagesOf(adv, k).map((data, i) => ({ data, prediction: attacked[i] })),
    defended,
  };
}
