/**
 * Training loops for classifiers and VAEs with per-epoch atomic checkpoints
 * and exact resume: batch order comes from (seed, epoch), and libtorch's
 * generator is reseeded from (seed, epoch) at each epoch start, so a killed
 * run continues where its last checkpoint left off.
 *
 * Besides a fixed number of epochs, training can stop on a criterion
 * (`stop`): when a validation figure changes by less than a fraction from one
 * epoch to the next (the paper trains "until the first term in the loss
 * function changes very little"), or when the training time of all sessions
 * together reaches a cap. The criterion is checked from the saved history, so
 * a resumed run stops exactly where an uninterrupted one would.
 */
import { existsSync } from "node:fs";
import { dispose, manualSeed, noGrad, tidy } from "../core/engine.js";
import { Tensor } from "../core/tensor.js";
import { checkInt, checkNumber } from "../core/validate.js";
import { LIMITS } from "../core/limits.js";
import { ArgumentError, TrainingError } from "../core/errors.js";
import { bceLoss, crossEntropy } from "../nn/functional.js";
import type { Module } from "../nn/module.js";
import { Adam, type Optimizer } from "../optim/optimizer.js";
import { loadCheckpoint, saveCheckpoint } from "../models/checkpoint.js";
import { describeModel } from "../models/registry.js";
import type { ConvVae, VaeLossOptions } from "../models/vae.js";
import type { ImageClassifier } from "../models/classifiers.js";
import { batches, type Batch, type ImageDataset, deriveSeed, datasetSize } from "../data/index.js";
import { silentProgress, type Progress, type ProgressFactory } from "../core/progress.js";

export interface EpochStats {
  epoch: number;
  trainLoss: number;
  /** Means over the epoch of the loss's named terms (for a VAE: reconstruction, kl). */
  terms?: Record<string, number>;
  seconds: number;
  /** CPU time of the process during the epoch (user + system, all threads). */
  cpuSeconds?: number;
  imagesPerSecond: number;
  /** The learning rate of this epoch. */
  lr?: number;
  validation?: Record<string, number>;
  /** Means over the epoch's training batches of what the step reported besides its loss. */
  train?: Record<string, number>;
}

export interface StopCriterion {
  /**
   * Stop once validation[`monitor`] changes by less than this fraction of its
   * previous value from one epoch to the next (for example 0.01). Needs a
   * validation set.
   */
  relativeChange?: number;
  /** The figure watched by relativeChange. */
  monitor?: string;
  /** Where `monitor` is read: the validation figures (default) or the epoch's mean training loss terms. */
  source?: "validation" | "train";
  /** Stop after the epoch during which the training time (all sessions) reached this many seconds. */
  maxSeconds?: number;
  /**
   * The same for the process CPU time of training (all threads, all sessions): on a
   * shared machine it measures the work done, where wall time measures the neighbours too.
   */
  maxCpuSeconds?: number;
}

export type StopReason = "epochs" | "converged" | "time cap" | "CPU time cap";

/** Why training should stop after the epochs in `history`, or null to go on. */
export function stopReason(history: readonly EpochStats[], maxEpochs: number, stop?: StopCriterion): StopReason | null {
  if (stop?.relativeChange !== undefined && stop.monitor && history.length >= 2) {
    const figures = (h: EpochStats) => (stop.source === "train" ? h.terms : h.validation);
    const [a, b] = history.slice(-2).map((h) => figures(h)?.[stop.monitor!]);
    if (a !== undefined && b !== undefined && Math.abs(b - a) < stop.relativeChange * Math.abs(a)) return "converged";
  }
  if (history.length >= maxEpochs) return "epochs";
  if (stop?.maxSeconds !== undefined && history.reduce((t, h) => t + h.seconds, 0) >= stop.maxSeconds) {
    return "time cap";
  }
  if (stop?.maxCpuSeconds !== undefined && history.reduce((t, h) => t + (h.cpuSeconds ?? 0), 0) >= stop.maxCpuSeconds) {
    return "CPU time cap";
  }
  return null;
}

export interface FitOptions<M extends Module> {
  /** Build a fresh, untrained model (also used to rebuild before loading a checkpoint). */
  makeModel: () => M;
  /**
   * The training set, or a function giving epoch e its own training set (for
   * example fresh random patches; it must depend only on e, so a resumed run
   * sees the same data). Sets made by the function are disposed after their epoch.
   */
  train: ImageDataset | ((epoch: number) => ImageDataset);
  validation?: ImageDataset;
  /** Epochs to train; with `stop`, the most epochs. */
  epochs: number;
  stop?: StopCriterion;
  batchSize: number;
  lr: number;
  seed: number;
  /** Checkpoint written after every epoch; reused or resumed when it exists. */
  checkpoint: string;
  /** Continue an unfinished checkpoint (default true); a finished one is reused as it is. */
  resume?: boolean;
  /** Train from scratch even when a checkpoint exists. */
  restart?: boolean;
  augment?: "cifar" | null;
  /**
   * Epochs (1-based, as logged) after which the learning rate is multiplied by
   * lrGamma, as PyTorch's MultiStepLR: with [20, 25], epochs 21-25 run at
   * lr * gamma and 26 on at lr * gamma^2. The rate of an epoch depends only on
   * its number, so a resumed run follows the same schedule.
   */
  lrMilestones?: number[];
  /** Default 0.1. */
  lrGamma?: number;
  label?: string;
  quiet?: boolean;
  /** Reports each epoch's progress (default: nothing). */
  progress?: ProgressFactory;
  log?: (line: string) => void;
  /** Saved in every checkpoint's info (what the model was trained for), and checked by `checkResume`. */
  info?: Record<string, unknown>;
  /** Called with a checkpoint's info before resuming or reusing it; throw to refuse it. */
  checkResume?: (info: Record<string, unknown> | undefined) => void;
}

/** The learning rate of a 0-based epoch under a multi-step schedule. */
export function scheduledLr(baseLr: number, epoch: number, milestones: readonly number[] = [], gamma = 0.1): number {
  return baseLr * gamma ** milestones.filter((m) => epoch >= m).length;
}

/**
 * What one training step reports: its loss (to minimise), optionally named terms of
 * it (scalar tensors, kept per epoch: the VAE's reconstruction term decides when to
 * stop) and other numbers for the progress line (the purifier's adversarial accuracy).
 */
export type StepResult = Tensor | { loss: Tensor; terms?: Record<string, Tensor>; metrics?: Record<string, number> };

/** Where training is, for schedules: the epoch (0-based) and the fraction of it done. */
export interface TrainingPosition {
  epoch: number;
  fraction: number;
}

export interface Hooks<M> {
  /**
   * Optional, before each step, outside autograd's recording of the step: an
   * input made from the batch (adversarial examples), passed to `step` and then freed.
   */
  prepare?(model: M, x: Tensor, y: Tensor, at: TrainingPosition): Promise<Tensor>;
  step(model: M, x: Tensor, y: Tensor, prepared?: Tensor): StepResult;
  validate(model: M, ds: ImageDataset, batchSize: number): Record<string, number> | Promise<Record<string, number>>;
}

export interface FitResult<M> {
  model: M;
  history: EpochStats[];
  /** True when the model came from a finished checkpoint without training. */
  reused: boolean;
  /** Why training stopped (with `stop`; "epochs" otherwise). */
  stopReason: StopReason;
}

/** fit's checked settings, shared by its steps. */
interface FitRun<M extends Module> {
  opts: FitOptions<M>;
  hooks: Hooks<M>;
  epochs: number;
  batchSize: number;
  milestones: number[];
  gamma: number;
  label: string;
  log: (line: string) => void;
  makeOptimizer: (m: M) => Optimizer;
}

/** The model in training, its optimizer, the epoch to start at and the epochs done. */
interface TrainingState<M extends Module> {
  model: M;
  optimizer: Optimizer;
  startEpoch: number;
  history: EpochStats[];
}

/** Per-image sums over an epoch's batches, weighted by batch size. */
interface EpochSums {
  loss: number;
  terms: Record<string, number>;
  metrics: Record<string, number>;
  seen: number;
}

export async function fit<M extends Module>(opts: FitOptions<M>, hooks: Hooks<M>): Promise<FitResult<M>> {
  const run = fitRun(opts, hooks);
  const state = resumeOrStart(run);
  if ("reused" in state) return state;
  const { model, optimizer, history } = state;
  const { epochs, label, log } = run;
  let reason: StopReason = "epochs";
  try {
    for (let epoch = state.startEpoch; epoch < epochs; epoch++) {
      if (opts.stop) {
        const r = stopReason(history, epochs, opts.stop);
        if (r) {
          reason = r;
          break;
        }
      }
      const stats = await trainEpoch(run, state, epoch);
      if (opts.validation) {
        model.eval();
        stats.validation = await hooks.validate(model, opts.validation, 256);
      }
      history.push(stats);
      logEpoch(run, stats, optimizer.lr);
      const after = opts.stop ? stopReason(history, epochs, opts.stop) : epoch + 1 === epochs ? "epochs" : null;
      if (after) reason = after;
      writeCheckpoint(run, state, epoch, after);
      if (after) {
        if (opts.stop) log(`${label}: stopped after epoch ${epoch + 1} (${after})`);
        break;
      }
    }
  } finally {
    optimizer.dispose();
  }
  model.eval();
  return { model, history, reused: false, stopReason: reason };
}

/** Checks fit's options and settles its defaults. */
function fitRun<M extends Module>(opts: FitOptions<M>, hooks: Hooks<M>): FitRun<M> {
  const epochs = checkInt(opts.epochs, "epochs", 1, LIMITS.epochs);
  const batchSize = checkInt(opts.batchSize, "batchSize", 1, LIMITS.batchSize);
  checkNumber(opts.lr, "lr", 0);
  // --quiet means no output at all, epoch summaries included; a given log still receives them.
  const log = opts.log ?? (opts.quiet ? () => undefined : (l: string) => process.stderr.write(l + "\n"));
  const label = opts.label ?? "train";
  const milestones = (opts.lrMilestones ?? []).map((m, i) => checkInt(m, `lrMilestones[${i}]`, 1));
  const gamma = checkNumber(opts.lrGamma ?? 0.1, "lrGamma", 0);
  const makeOptimizer = (m: M): Optimizer => new Adam(m.parameters(), { lr: opts.lr });
  return { opts, hooks, epochs, batchSize, milestones, gamma, label, log, makeOptimizer };
}

/**
 * A fresh model, or the checkpoint's model to resume; a finished checkpoint (or
 * one not to be resumed) comes back as fit's result, reused without training.
 */
function resumeOrStart<M extends Module>(run: FitRun<M>): TrainingState<M> | FitResult<M> {
  const { opts } = run;
  if (existsSync(opts.checkpoint) && !opts.restart) return resumeCheckpoint(run);
  manualSeed(deriveSeed(opts.seed, 0xbeef));
  const model = opts.makeModel();
  return { model, optimizer: run.makeOptimizer(model), startEpoch: 0, history: [] };
}

function resumeCheckpoint<M extends Module>(run: FitRun<M>): TrainingState<M> | FitResult<M> {
  const { opts, epochs, label, log } = run;
  // A throwaway model names the architecture to expect; its tensors are freed at once.
  const probe = opts.makeModel();
  const arch = describeModel(probe).arch;
  probe.dispose();
  const ck = loadCheckpoint<M>(opts.checkpoint, {
    expectArch: arch,
    optimizer: run.makeOptimizer,
  });
  const model = ck.model;
  const optimizer = ck.optimizer!;
  try {
    opts.checkResume?.(ck.info);
  } catch (e) {
    optimizer.dispose();
    model.dispose();
    throw e;
  }
  const done = ck.training?.epoch ?? epochs;
  const history = (ck.training?.history as EpochStats[] | undefined) ?? [];
  const reason = opts.stop ? stopReason(history, epochs, opts.stop) : done >= epochs ? "epochs" : null;
  // A run that ended at its epoch count is extended when more epochs are asked for; one that a stop rule
  // ended early stays finished unless the rule is given again (and then decides).
  const stoppedEarly = ck.training?.complete === true && (ck.training.stopReason ?? "epochs") !== "epochs";
  const finished = opts.stop ? reason !== null : stoppedEarly || reason !== null;
  if (finished || opts.resume === false) {
    log(`${label}: using the trained model in ${opts.checkpoint}${reason ? ` (stopped: ${reason})` : ""}`);
    optimizer.dispose();
    model.eval();
    return { model, history, reused: true, stopReason: reason ?? "epochs" };
  }
  log(`${label}: resuming ${opts.checkpoint} at epoch ${done + 1} of ${opts.stop ? "at most " : ""}${epochs}`);
  return { model, optimizer, startEpoch: done, history };
}

/** One epoch's training batches (its own data set, seed and learning rate): the epoch's statistics before validation. */
async function trainEpoch<M extends Module>(
  run: FitRun<M>,
  state: TrainingState<M>,
  epoch: number,
): Promise<EpochStats> {
  const { opts } = run;
  const train = typeof opts.train === "function" ? opts.train(epoch) : opts.train;
  const n = datasetSize(train);
  manualSeed(deriveSeed(opts.seed, epoch));
  state.model.train();
  state.optimizer.lr = scheduledLr(opts.lr, epoch, run.milestones, run.gamma);
  const bar = (opts.quiet ? silentProgress : (opts.progress ?? silentProgress))(
    `${run.label} epoch ${epoch + 1}/${opts.stop ? "max " : ""}${run.epochs}`,
    n,
    "images",
  );
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let sums: EpochSums;
  try {
    sums = await trainBatches(run, state, train, epoch, bar);
  } finally {
    if (train !== opts.train) dispose([train.images, train.labels]);
  }
  bar.stop();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const stats: EpochStats = {
    epoch: epoch + 1,
    trainLoss: sums.loss / sums.seen,
    ...(Object.keys(sums.terms).length > 0 ? { terms: perImage(sums.terms, sums.seen) } : {}),
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    imagesPerSecond: sums.seen / seconds,
    lr: state.optimizer.lr,
  };
  if (Object.keys(sums.metrics).length > 0) stats.train = perImage(sums.metrics, sums.seen);
  return stats;
}

/** Means per image of sums over `seen` images. */
function perImage(sums: Record<string, number>, seen: number): Record<string, number> {
  return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / seen]));
}

/** Runs a training step on every batch of the epoch, summing what the steps report. */
async function trainBatches<M extends Module>(
  run: FitRun<M>,
  state: TrainingState<M>,
  train: ImageDataset,
  epoch: number,
  bar: Progress,
): Promise<EpochSums> {
  const sums: EpochSums = { loss: 0, terms: {}, metrics: {}, seen: 0 };
  let b = 0;
  const batchTotal = Math.ceil(datasetSize(train) / run.batchSize);
  for (const batch of batches(train, {
    batchSize: run.batchSize,
    shuffle: true,
    seed: run.opts.seed,
    epoch,
    augment: run.opts.augment,
  })) {
    const { loss, terms, metrics } = await trainStep(run, state, batch, { epoch, fraction: b / batchTotal });
    if (!Number.isFinite(loss))
      throw new TrainingError(
        `${run.label}: the loss became ${loss} at epoch ${epoch + 1}, batch ${b + 1} (try a smaller --lr)`,
      );
    const k = batch.indices.length;
    sums.loss += loss * k;
    for (const [name, v] of Object.entries(terms)) sums.terms[name] = (sums.terms[name] ?? 0) + v * k;
    for (const [name, v] of Object.entries(metrics ?? {})) sums.metrics[name] = (sums.metrics[name] ?? 0) + v * k;
    sums.seen += k;
    b++;
    bar.update(sums.seen, { loss: sums.loss / sums.seen, ...perImage(sums.metrics, sums.seen) });
  }
  return sums;
}

/** One optimizer step on a batch (prepared first when the hooks say so); frees the batch. */
async function trainStep<M extends Module>(
  run: FitRun<M>,
  state: TrainingState<M>,
  batch: Batch,
  at: TrainingPosition,
): Promise<{ loss: number; terms: Record<string, number>; metrics?: Record<string, number> }> {
  const { hooks } = run;
  const { model, optimizer } = state;
  let prepared: Tensor | undefined;
  let metrics: Record<string, number> | undefined;
  try {
    if (hooks.prepare) prepared = await hooks.prepare(model, batch.x, batch.y, at);
    model.train();
    const { loss, terms } = tidy(() => {
      optimizer.zeroGrad();
      const out = hooks.step(model, batch.x, batch.y, prepared);
      const l = out instanceof Tensor ? out : out.loss;
      if (!(out instanceof Tensor)) metrics = out.metrics;
      l.backward();
      optimizer.step();
      const t =
        out instanceof Tensor || out.terms === undefined
          ? {}
          : Object.fromEntries(Object.entries(out.terms).map(([k, v]) => [k, v.item()]));
      return { loss: l.item(), terms: t };
    });
    return { loss, terms, metrics };
  } finally {
    prepared?.dispose();
    batch.x.dispose();
    batch.y.dispose();
  }
}

/** The epoch's summary line. */
function logEpoch<M extends Module>(run: FitRun<M>, stats: EpochStats, lr: number): void {
  const show = (m: Record<string, number>, prefix: string) =>
    Object.entries(m)
      .map(([k, v]) => ` ${prefix}${k} ${v.toFixed(4)}`)
      .join("");
  const val = (stats.train ? show(stats.train, "train ") : "") + (stats.validation ? show(stats.validation, "") : "");
  run.log(
    `${run.label} epoch ${stats.epoch}/${run.epochs}: loss ${stats.trainLoss.toFixed(4)}${val} lr ${lr.toExponential(1)} (${stats.seconds.toFixed(0)} s, ${stats.imagesPerSecond.toFixed(0)} images/s)`,
  );
}

/** Saves the model, optimizer and history after an epoch; `after` says why training stops there, if it does. */
function writeCheckpoint<M extends Module>(
  run: FitRun<M>,
  state: TrainingState<M>,
  epoch: number,
  after: StopReason | null,
): void {
  const { opts } = run;
  saveCheckpoint(opts.checkpoint, state.model, {
    optimizer: state.optimizer,
    training: {
      epoch: epoch + 1,
      epochs: run.epochs,
      complete: after !== null,
      ...(after ? { stopReason: after } : {}),
      seed: opts.seed,
      history: state.history,
    },
    ...(opts.info ? { info: opts.info } : {}),
  });
}

/** Top-1 accuracy of a classifier on a data set (eval mode, no gradients). */
export function accuracy(model: ImageClassifier, ds: ImageDataset, batchSize = 256): number {
  let correct = 0;
  const wasTraining = model.training;
  model.eval();
  try {
    for (const b of batches(ds, { batchSize })) {
      correct += tidy(() => noGrad(() => model.forward(b.x).argmax(1).eq(b.y).sum().item()));
      b.x.dispose();
      b.y.dispose();
    }
  } finally {
    model.train(wasTraining);
  }
  return correct / datasetSize(ds);
}

/** Train a classifier with Adam on cross-entropy; validation reports accuracy. */
export function trainClassifier<M extends Module & ImageClassifier>(opts: FitOptions<M>): Promise<FitResult<M>> {
  return fit(opts, {
    step: (m, x, y) => crossEntropy(m.forward(x), y),
    validate: (m, ds, bs) => ({ accuracy: accuracy(m, ds, bs) }),
  });
}

/** A fixed seed for the validation pass, so its sampled reconstruction term depends only on the weights. */
const VALIDATION_SEED = 0x5eed;

/**
 * Train a VAE with Adam on reconstruction + beta * KL. Each epoch reports the
 * means of both terms; validation reports the loss's reconstruction term (per
 * image, latent noise drawn from a fixed seed), the deterministic
 * reconstruction's squared error (mse, per image) and, for BCE, the
 * reconstruction term above its floor (reconstructionExcess): a BCE against
 * targets in [0, 1] cannot go below the targets' own entropy, the BCE of a
 * perfect reconstruction, so only the excess measures how well the VAE reconstructs.
 */
export function trainVae<M extends ConvVae>(
  options: FitOptions<M> & {
    loss: VaeLossOptions;
    /**
     * Stop once the reconstruction changes by less than this fraction from one epoch
     * to the next (0.01 = 1%, the paper's "changes very little"); `epochs` is the cap.
     * What is watched: reconstructionStop.
     */
    stopReconstructionChange?: number;
  },
): Promise<FitResult<M>> {
  const { stopReconstructionChange, ...opts } = options;
  const bce = (opts.loss.reconstruction ?? "bce") === "bce";
  if (stopReconstructionChange !== undefined) {
    opts.stop = { ...opts.stop, ...reconstructionStop(stopReconstructionChange, bce, opts.validation !== undefined) };
  }
  // The BCE floor depends on the validation images only: summed once, at the first validation.
  const floors = new Map<ImageDataset, number>();
  return fit(opts, {
    step: (m, x) => {
      const { loss, reconstruction, kl } = m.loss(x, opts.loss);
      return { loss, terms: { reconstruction, kl } };
    },
    validate: (m, ds, bs) => {
      const floor = bce ? floors.get(ds) : 0;
      const v = validateVae(m, ds, bs, opts.loss, floor === undefined);
      if (floor === undefined) floors.set(ds, v.floor);
      const n = datasetSize(ds);
      const f = floors.get(ds) ?? 0;
      return { reconstruction: v.rec / n, mse: v.sq / n, ...(bce ? { reconstructionExcess: (v.rec - f) / n } : {}) };
    },
  });
}

/**
 * The stop rule of `stopReconstructionChange`. With BCE it watches the validation
 * reconstruction term above its floor (reconstructionExcess): the term itself is
 * dominated by the images' own entropy, which training cannot lower, so it changes
 * by less than 1% an epoch long before the VAE stops improving (CIFAR-10: 1733.7,
 * 1718.6, 1712.5 per image over epochs 2-4 while the excess fell 59.2, 44.1, 37.9
 * and the squared error 20.0, 14.3, 12.1). With MSE, whose floor is 0, the epoch's
 * mean training reconstruction term.
 */
export function reconstructionStop(change: number, bce: boolean, hasValidation: boolean): StopCriterion {
  checkNumber(change, "stopReconstructionChange", 0, 1);
  if (!bce) return { relativeChange: change, monitor: "reconstruction", source: "train" };
  if (!hasValidation) {
    throw new ArgumentError(
      "stopReconstructionChange with a BCE reconstruction needs a validation set: it watches the validation reconstruction term above its floor",
    );
  }
  return { relativeChange: change, monitor: "reconstructionExcess", source: "validation" };
}

/**
 * Sums over a VAE's validation batches (per-image figures times the batch
 * size): the loss's sampled reconstruction term (noise from VALIDATION_SEED),
 * the squared error of the deterministic reconstruction and, with `floor`, the
 * BCE of the images against themselves. Each batch is encoded once: the
 * sampled term and the deterministic reconstruction share its encoding.
 */
export function validateVae(
  m: ConvVae,
  ds: ImageDataset,
  batchSize: number,
  loss: VaeLossOptions,
  floor: boolean,
): { rec: number; sq: number; floor: number } {
  let rec = 0;
  let sq = 0;
  let fl = 0;
  manualSeed(VALIDATION_SEED);
  for (const b of batches(ds, { batchSize })) {
    const k = b.indices.length;
    [rec, sq, fl] = tidy(() =>
      noGrad(() => {
        const { mu, logvar } = m.encode(b.x);
        return [
          rec + m.lossOfEncoding(b.x, mu, logvar, loss).reconstruction.item() * k,
          sq + m.decode(mu).sub(b.x).square().sum().item(),
          fl + (floor ? bceLoss(b.x, b.x, "sum").item() : 0),
        ];
      }),
    );
    b.x.dispose();
    b.y.dispose();
  }
  return { rec, sq, floor: fl };
}
