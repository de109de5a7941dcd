/**
 * Adversarial training of a purifier in front of a frozen classifier (issue
 * 12; the paper's future work: "modifying the training to more directly
 * reward the removal of adversarial attacks").
 *
 * Each step: make adversarial images against purifier + classifier together
 * (adaptive: exact gradients through the purifier, EOT over its latent noise),
 * with FGSM from a random start (Wong, Rice & Kolter 2020, "Fast is better
 * than free": uniform start in the eps box, one signed step of alpha * eps,
 * alpha = 1.25) or PGD-k (Madry et al. 2017); epsilon ramps linearly from 0
 * to its final value over the first `rampEpochs` epochs. Then one Adam step on
 * the purifier's parameters only, on
 *
 *   ceWeight * CE(f(P(x_adv)), y) + reconstructionWeight * rec(P(x_adv), x)
 *     + klWeight * KL(q(z | x_adv) || N(0, I)) [+ cleanWeight * CE(f(P(x)), y)]
 *
 * where f is the frozen classifier, P one sampled reconstruction, rec the sum
 * over pixels of BCE or squared error against the *clean* image (a denoising
 * target), all averaged over the batch. With a replay set (replay.ts:
 * adversarial images an attack too slow for every step made beforehand),
 * `replayBatch` of its rows join every batch under the same objective, each
 * row weighing as much as a batch row.
 *
 * The classifier never changes: its parameters stop requiring gradients for
 * the run (so backward does not even compute them), it stays in eval mode, and
 * its weights are compared with a copy taken at the start when training ends.
 * Checkpoints, exact resume, the progress bar and seeding are the shared
 * training loop's (trainer.ts); the checkpoint's info records the classifier
 * (file and sha256) and every setting, and resuming with other ones is refused.
 */
import { noGrad, tidy } from "../core/engine.js";
import { ArgumentError, CheckpointError, VaeguardError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import { checkInt, checkNumber, checkOneOf, fail } from "../core/validate.js";
import * as F from "../nn/functional.js";
import type { Module } from "../nn/module.js";
import type { ImageClassifier } from "../models/classifiers.js";
import type { Purifier } from "../models/purifier.js";
import { PGD } from "../attacks/pgd.js";
import { DefendedModel } from "../defenses/defended-model.js";
import { VaeDefense } from "../defenses/vae.js";
import { batches, datasetSize, takeFirst, type ImageDataset } from "../data/index.js";
import { replayRows, type ReplaySet } from "./replay.js";
import { fit, type FitOptions, type FitResult, type TrainingPosition } from "./trainer.js";

/** The attacks the trainer makes its adversarial examples with. */
export type TrainingAttack = { kind: "fgsm-rs"; alpha: number } | { kind: "pgd"; steps: number; alpha: number };

export const TRAINING_ATTACKS = ["fgsm-rs", "pgd"] as const;

/**
 * Parse a training attack spec: "fgsm-rs[:alpha=A]" (default alpha 1.25, the
 * step in units of eps) or "pgd[:steps=K][:alpha=A]" (default 7 steps of
 * 2.5 / K * eps). Anything else is an ArgumentError naming the spec.
 */
export function parseTrainingAttack(spec: string): TrainingAttack {
  if (typeof spec !== "string" || spec.trim() === "") fail("non-empty attack spec", "attack", spec);
  const [head, ...rest] = spec
    .trim()
    .split(":")
    .map((s) => s.trim());
  const kind = head.toLowerCase();
  if (!(TRAINING_ATTACKS as readonly string[]).includes(kind)) {
    throw new ArgumentError(
      `Unsupported training attack "${head}" in attack spec "${spec}"; the purifier trainer supports ${TRAINING_ATTACKS.join(", ")} (e.g. "fgsm-rs" or "pgd:steps=7")`,
    );
  }
  const allowed = kind === "pgd" ? ["steps", "alpha"] : ["alpha"];
  const values: Record<string, number> = {};
  for (const part of rest) {
    const m = /^([a-z]+)=(.+)$/i.exec(part);
    if (!m || !allowed.includes(m[1])) {
      throw new ArgumentError(
        `Unknown parameter "${part}" in attack spec "${spec}"; ${kind} takes ${allowed.map((a) => `${a}=N`).join(", ")}`,
      );
    }
    const v = Number(m[2]);
    if (!Number.isFinite(v)) fail("number", `${m[1]} in attack spec "${spec}"`, m[2]);
    values[m[1]] = v;
  }
  if (kind === "fgsm-rs") return { kind, alpha: checkNumber(values.alpha ?? 1.25, "alpha", Number.MIN_VALUE) };
  const steps = checkInt(values.steps ?? 7, "steps", 1);
  return { kind: "pgd", steps, alpha: checkNumber(values.alpha ?? 2.5 / steps, "alpha", Number.MIN_VALUE) };
}

/** The canonical text of a training attack, for checkpoints and reports. */
export function formatTrainingAttack(a: TrainingAttack): string {
  return a.kind === "fgsm-rs" ? `fgsm-rs:alpha=${a.alpha}` : `pgd:steps=${a.steps}:alpha=${a.alpha}`;
}

export interface PurifierObjective {
  /** Weight of the classifier's cross-entropy on purified adversarial images (default 1). */
  ceWeight: number;
  /** Weight of the reconstruction of the clean image from the adversarial one (default 0.01). */
  reconstructionWeight: number;
  /** Weight of the KL term (default 1e-4: the paper's beta 0.01 times the reconstruction weight). */
  klWeight: number;
  /** Weight of the cross-entropy on purified clean images (default 0: off). */
  cleanWeight: number;
  reconstruction: "bce" | "mse";
  /** Latent noise clipped to [-clip, clip] (default 5, the authors'). */
  clip: number;
}

export const DEFAULT_OBJECTIVE: PurifierObjective = {
  ceWeight: 1,
  reconstructionWeight: 0.01,
  klWeight: 1e-4,
  cleanWeight: 0,
  reconstruction: "bce",
  clip: 5,
};

export interface TrainPurifierOptions extends Omit<FitOptions<Purifier>, "info" | "checkResume" | "augment"> {
  /** The classifier to defend; frozen. */
  classifier: Module & ImageClassifier;
  attack: TrainingAttack;
  /** Final L-inf budget of the training attack, in [0, 1]. */
  eps: number;
  /** Epochs (may be fractional) over which eps ramps up from 0 (default 1; 0: no ramp). */
  rampEpochs?: number;
  /** EOT samples of the latent noise per attack gradient (default 1). */
  eot?: number;
  objective?: Partial<PurifierObjective>;
  /** Validation images attacked each epoch by adaptive PGD at the final eps (default 500; 0: none). */
  validationAttackSamples?: number;
  /** Steps of that PGD (default 10). */
  validationAttackSteps?: number;
  /** Validation images scored clean each epoch (default all). */
  validationSamples?: number;
  /** What identifies the classifier and data in the checkpoint (file, sha256, data set). */
  about?: Record<string, unknown>;
  /** Adversarial images made beforehand, mixed into every batch (see replay.ts). */
  replay?: ReplaySet;
  /** Replay rows per batch (default 32). */
  replayBatch?: number;
}

export interface TrainPurifierResult extends FitResult<Purifier> {
  /** Checked at the end: every classifier tensor equal to its value at the start. */
  classifierUnchanged: true;
}

/** eps at a point of training: linear from 0 over the first `rampEpochs` epochs, then constant. */
export function rampedEpsilon(eps: number, rampEpochs: number, at: TrainingPosition): number {
  if (rampEpochs <= 0) return eps;
  return eps * Math.min(1, (at.epoch + at.fraction) / rampEpochs);
}

/** The purifier + classifier as the attack sees them: exact gradients, latent noise (EOT). */
function attackable(purifier: Purifier, classifier: Module & ImageClassifier, clip: number): DefendedModel {
  return new DefendedModel(new VaeDefense(purifier, { clip }), classifier, { view: "adaptive" });
}

/** Sum over pixels of the reconstruction error, averaged over the batch. */
function reconstructionError(r: Tensor, x: Tensor, kind: "bce" | "mse"): Tensor {
  return tidy(() => (kind === "mse" ? F.mseLoss(r, x, "sum") : F.bceLoss(r, x, "sum")).div(x.dims[0]));
}

/** KL(N(mu, sigma^2) || N(0, I)) summed over the latent, averaged over the batch. */
function klDivergence(mu: Tensor, logvar: Tensor): Tensor {
  return tidy(() =>
    logvar
      .add(1)
      .sub(mu.square())
      .sub(logvar.exp())
      .sum()
      .mul(-0.5 / mu.dims[0]),
  );
}

/**
 * Adversarial images for one training batch: the training attack against
 * purifier + classifier (adaptive, EOT over the latent noise) at `eps`. A new
 * tensor; x itself when eps is 0 is cloned.
 */
export async function adversarialBatch(
  purifier: Purifier,
  classifier: Module & ImageClassifier,
  x: Tensor,
  y: Tensor,
  o: { attack: TrainingAttack; eps: number; eot: number; clip: number },
): Promise<Tensor> {
  if (o.eps === 0) return noGrad(() => x.clone());
  const pgd = new PGD(attackable(purifier, classifier, o.clip), {
    eps: o.eps,
    steps: o.attack.kind === "pgd" ? o.attack.steps : 1,
    stepSize: o.attack.alpha * o.eps,
    randomStart: true,
    eotSamples: o.eot,
  });
  return pgd.generate(x, y);
}

/**
 * The training objective on one batch (see the header), differentiable with
 * respect to the purifier's parameters; also the accuracy of the classifier
 * on the purified adversarial images.
 */
export function purifierLoss(
  purifier: Purifier,
  classifier: Module & ImageClassifier,
  x: Tensor,
  y: Tensor,
  xAdv: Tensor,
  objective: PurifierObjective,
): { loss: Tensor; advAccuracy: number } {
  return tidy(() => {
    const { mu, logvar } = purifier.encode(xAdv);
    const r = purifier.decode(purifier.sample(mu, logvar, { clip: objective.clip }));
    const logits = classifier.forward(r);
    let loss = F.crossEntropy(logits, y)
      .mul(objective.ceWeight)
      .add(reconstructionError(r, x, objective.reconstruction).mul(objective.reconstructionWeight))
      .add(klDivergence(mu, logvar).mul(objective.klWeight));
    if (objective.cleanWeight > 0) {
      const clean = classifier.forward(purifier.reconstruct(x, { clip: objective.clip }));
      loss = loss.add(F.crossEntropy(clean, y).mul(objective.cleanWeight));
    }
    const advAccuracy = noGrad(() => logits.argmax(1).eq(y).float().mean().item());
    return { loss, advAccuracy };
  });
}

function snapshot(m: Module): Map<string, Tensor> {
  return noGrad(() => new Map([...m.stateDict()].map(([k, t]) => [k, t.detach().clone()])));
}

function changedTensor(m: Module, before: Map<string, Tensor>): string | undefined {
  for (const [k, t] of m.stateDict()) {
    const same = noGrad(() => tidy(() => t.eq(before.get(k)!).all().item()));
    if (same !== 1) return k;
  }
  return undefined;
}

/** Accuracy of purifier + classifier on a data set, one sampled reconstruction per image, as deployed. */
async function purifiedAccuracy(
  model: DefendedModel,
  ds: ImageDataset,
  batchSize: number,
  attack?: (x: Tensor, y: Tensor) => Promise<Tensor>,
): Promise<number> {
  let correct = 0;
  for (const b of batches(ds, { batchSize })) {
    let x = b.x;
    try {
      if (attack) x = await attack(b.x, b.y);
      const pred = await model.predict(x);
      correct += noGrad(() => tidy(() => pred.eq(b.y).sum().item()));
      pred.dispose();
    } finally {
      if (x !== b.x) x.dispose();
      b.x.dispose();
      b.y.dispose();
    }
  }
  return correct / datasetSize(ds);
}

/** Replay rows per batch when a replay set is given without replayBatch. */
const DEFAULT_REPLAY_BATCH = 32;

/** What must match for a checkpoint to be resumed: the classifier, the data and every training setting. */
function settingsOf(o: TrainPurifierOptions, objective: PurifierObjective): Record<string, unknown> {
  return {
    kind: "purifier",
    ...o.about,
    attack: formatTrainingAttack(o.attack),
    eps: o.eps,
    rampEpochs: o.rampEpochs ?? 1,
    eot: o.eot ?? 1,
    objective,
    batchSize: o.batchSize,
    lr: o.lr,
    seed: o.seed,
    // Only with a replay set, so that checkpoints from before replay sets resume as they did.
    ...(o.replay ? { replay: { ...o.replay.about, rowsPerBatch: o.replayBatch ?? DEFAULT_REPLAY_BATCH } } : {}),
  };
}

/** The checked settings of a purifier run, in the order the checks run (so the first bad option is the one reported). */
interface PurifierRun {
  eps: number;
  rampEpochs: number;
  eot: number;
  objective: PurifierObjective;
  valAttackSamples: number;
  valAttackSteps: number;
  clf: Module & ImageClassifier;
  replayBatch: number;
}

function checkPurifierOptions(o: TrainPurifierOptions): PurifierRun {
  const eps = checkNumber(o.eps, "eps", 0, 1);
  const rampEpochs = checkNumber(o.rampEpochs ?? 1, "rampEpochs", 0);
  const eot = checkInt(o.eot ?? 1, "eot", 1);
  const objective: PurifierObjective = { ...DEFAULT_OBJECTIVE, ...(o.objective ?? {}) };
  for (const k of ["ceWeight", "reconstructionWeight", "klWeight", "cleanWeight", "clip"] as const) {
    checkNumber(objective[k], k, 0);
  }
  checkOneOf(objective.reconstruction, "reconstruction", ["bce", "mse"] as const);
  const valAttackSamples = checkInt(o.validationAttackSamples ?? 500, "validationAttackSamples", 0);
  const valAttackSteps = checkInt(o.validationAttackSteps ?? 10, "validationAttackSteps", 1);
  const clf = o.classifier;
  if (typeof clf?.forward !== "function" || typeof clf.parameters !== "function") {
    fail("a classifier module", "classifier", clf);
  }
  const replayBatch = checkInt(o.replayBatch ?? DEFAULT_REPLAY_BATCH, "replayBatch", 1);
  if (o.replay !== undefined && !(o.replay?.labels?.dims?.[0] > 0)) fail("a replay set", "replay", o.replay);
  return { eps, rampEpochs, eot, objective, valAttackSamples, valAttackSteps, clf, replayBatch };
}

/** Refuse to resume a checkpoint trained with any different setting, naming the first that differs. */
function resumeChecker(checkpoint: string, settings: Record<string, unknown>) {
  return (info: Record<string, unknown> | undefined): void => {
    // "replay" too: a checkpoint trained with a replay set must not resume without one.
    const keys = [...new Set([...Object.keys(settings), "replay"])];
    const mismatch = keys.find((k) => JSON.stringify(info?.[k]) !== JSON.stringify(settings[k]));
    if (mismatch !== undefined) {
      throw new CheckpointError(
        checkpoint,
        `was trained with ${mismatch} = ${JSON.stringify(info?.[mismatch] ?? null)}, not ${JSON.stringify(settings[mismatch])}; pass --no-resume to start over`,
      );
    }
  };
}

/**
 * Per-epoch validation: clean accuracy of purifier + classifier, and accuracy
 * under a short PGD on a (smaller) subset, since attacking the whole
 * validation set every epoch would cost more than the epoch itself.
 */
async function validatePurifier(
  o: TrainPurifierOptions,
  run: PurifierRun,
  purifier: Purifier,
  ds: ImageDataset,
  batchSize: number,
): Promise<Record<string, number>> {
  const { eps, eot, valAttackSamples, valAttackSteps } = run;
  const model = attackable(purifier, run.clf, run.objective.clip);
  const cleanSet =
    o.validationSamples !== undefined && o.validationSamples < datasetSize(ds)
      ? takeFirst(ds, o.validationSamples)
      : ds;
  const attackSet = valAttackSamples > 0 ? takeFirst(ds, Math.min(valAttackSamples, datasetSize(ds))) : undefined;
  try {
    const out: Record<string, number> = { cleanAcc: await purifiedAccuracy(model, cleanSet, batchSize) };
    if (attackSet && eps > 0) {
      const pgd = new PGD(model, { eps, steps: valAttackSteps, eotSamples: eot });
      out[`pgd${valAttackSteps}Acc`] = await purifiedAccuracy(model, attackSet, batchSize, (x, y) =>
        pgd.generate(x, y),
      );
    }
    return out;
  } finally {
    // Only the subsets taken here are ours to free; ds belongs to the trainer.
    for (const d of [cleanSet, attackSet]) {
      if (d !== undefined && d !== ds) {
        d.images.dispose();
        d.labels.dispose();
      }
    }
  }
}

export async function trainPurifier(o: TrainPurifierOptions): Promise<TrainPurifierResult> {
  const run = checkPurifierOptions(o);
  const { eps, rampEpochs, eot, objective, clf, replayBatch } = run;

  const settings = settingsOf(o, objective);
  const frozen = clf.parameters().map((p) => [p, p.requiresGrad] as const);
  const wasTraining = clf.training;
  const before = snapshot(clf);
  let currentEps = 0;
  // The replay rows of a batch come from its position alone, so a resumed run draws the same ones.
  let replaySeed: number[] = [];
  try {
    for (const [p] of frozen) p.requiresGrad_(false);
    clf.eval();

    const result = await fit<Purifier>(
      { ...o, info: settings, checkResume: resumeChecker(o.checkpoint, settings) },
      {
        prepare: async (purifier, x, y, at) => {
          currentEps = rampedEpsilon(eps, rampEpochs, at);
          replaySeed = [o.seed ?? 0, 0x4e91a7, at.epoch, Math.round(at.fraction * 1e9)];
          return adversarialBatch(purifier, clf, x, y, {
            attack: o.attack,
            eps: currentEps,
            eot,
            clip: objective.clip,
          });
        },
        step: (purifier, x, y, xAdv): { loss: Tensor; metrics: Record<string, number> } => {
          const { loss, advAccuracy } = purifierLoss(purifier, clf, x, y, xAdv!, objective);
          if (!o.replay) return { loss, metrics: { eps: currentEps, advAcc: advAccuracy } };
          const r = replayRows(o.replay, replayBatch, replaySeed);
          const replayed = purifierLoss(purifier, clf, r.clean, r.labels, r.adversarial, objective);
          const b = x.dims[0];
          return {
            loss: loss
              .mul(b)
              .add(replayed.loss.mul(replayBatch))
              .div(b + replayBatch),
            metrics: { eps: currentEps, advAcc: advAccuracy, replayAcc: replayed.advAccuracy },
          };
        },
        validate: (purifier, ds, batchSize) => validatePurifier(o, run, purifier, ds, batchSize),
      },
    );
    // The classifier was frozen; if any of its tensors moved, the purifier's results cannot be trusted.
    const changed = changedTensor(clf, before);
    if (changed !== undefined) {
      result.model.dispose();
      throw new VaeguardError(`The frozen classifier's tensor '${changed}' changed during purifier training`);
    }
    return { ...result, classifierUnchanged: true };
  } finally {
    for (const [p, on] of frozen) p.requiresGrad_(on);
    clf.train(wasTraining);
    for (const t of before.values()) t.dispose();
  }
}
