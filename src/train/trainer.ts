/**
 * Training loops for classifiers and VAEs with per-epoch atomic checkpoints
 * and exact resume: batch order comes from (seed, epoch), and libtorch's
 * generator is reseeded from (seed, epoch) at each epoch start, so a killed
 * run continues where its last checkpoint left off.
 */
import { existsSync } from "node:fs";
import { manualSeed, noGrad, tidy } from "../core/engine.js";
import { Tensor } from "../core/tensor.js";
import { checkInt, checkNumber } from "../core/validate.js";
import { crossEntropy } from "../nn/functional.js";
import type { Module } from "../nn/module.js";
import { Adam, type Optimizer } from "../optim/optimizer.js";
import { loadCheckpoint, saveCheckpoint } from "../models/checkpoint.js";
import { describeModel } from "../models/registry.js";
import type { ConvVae, VaeLossOptions } from "../models/vae.js";
import type { ImageClassifier } from "../models/classifiers.js";
import { batches, type ImageDataset, deriveSeed, datasetSize } from "../data/index.js";
import { progress } from "../cli/common.js";

export interface EpochStats {
  epoch: number;
  trainLoss: number;
  seconds: number;
  imagesPerSecond: number;
  validation?: Record<string, number>;
  /** Means over the epoch's training batches of what the step reported besides its loss. */
  train?: Record<string, number>;
}

export interface FitOptions<M extends Module> {
  /** Build a fresh, untrained model (also used to rebuild before loading a checkpoint). */
  makeModel: () => M;
  train: ImageDataset;
  validation?: ImageDataset;
  epochs: number;
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
  label?: string;
  quiet?: boolean;
  log?: (line: string) => void;
  /** Saved in every checkpoint's info (what the model was trained for), and checked by `checkResume`. */
  info?: Record<string, unknown>;
  /** Called with a checkpoint's info before resuming or reusing it; throw to refuse it. */
  checkResume?: (info: Record<string, unknown> | undefined) => void;
}

/** What one training step reports: its loss (to minimise), and optionally other numbers for the progress line. */
export type StepResult = Tensor | { loss: Tensor; metrics?: Record<string, number> };

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
}

export async function fit<M extends Module>(opts: FitOptions<M>, hooks: Hooks<M>): Promise<FitResult<M>> {
  const epochs = checkInt(opts.epochs, "epochs", 1);
  const batchSize = checkInt(opts.batchSize, "batchSize", 1);
  checkNumber(opts.lr, "lr", 0);
  const log = opts.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const label = opts.label ?? "train";
  const makeOptimizer = (m: M): Optimizer => new Adam(m.parameters(), { lr: opts.lr });

  let model: M;
  let optimizer: Optimizer;
  let startEpoch = 0;
  let history: EpochStats[] = [];
  if (existsSync(opts.checkpoint) && !opts.restart) {
    const ck = loadCheckpoint<M>(opts.checkpoint, {
      expectArch: describeModel(opts.makeModel()).arch,
      optimizer: makeOptimizer,
    });
    model = ck.model;
    optimizer = ck.optimizer!;
    try {
      opts.checkResume?.(ck.info);
    } catch (e) {
      optimizer.dispose();
      model.dispose();
      throw e;
    }
    const done = ck.training?.epoch ?? epochs;
    history = (ck.training?.history as EpochStats[] | undefined) ?? [];
    if (ck.training?.complete === true || done >= epochs || opts.resume === false) {
      log(`${label}: using the trained model in ${opts.checkpoint}`);
      optimizer.dispose();
      model.eval();
      return { model, history, reused: true };
    }
    startEpoch = done;
    log(`${label}: resuming ${opts.checkpoint} at epoch ${startEpoch + 1} of ${epochs}`);
  } else {
    manualSeed(deriveSeed(opts.seed, 0xbeef));
    model = opts.makeModel();
    optimizer = makeOptimizer(model);
  }

  const n = datasetSize(opts.train);
  try {
    for (let epoch = startEpoch; epoch < epochs; epoch++) {
      manualSeed(deriveSeed(opts.seed, epoch));
      model.train();
      const bar = progress(`${label} epoch ${epoch + 1}/${epochs}`, n, "images", opts.quiet);
      const t0 = performance.now();
      let lossSum = 0;
      let seen = 0;
      let b = 0;
      const metricSums: Record<string, number> = {};
      const batchTotal = Math.ceil(n / batchSize);
      for (const batch of batches(opts.train, {
        batchSize,
        shuffle: true,
        seed: opts.seed,
        epoch,
        augment: opts.augment,
      })) {
        let prepared: Tensor | undefined;
        let metrics: Record<string, number> | undefined;
        let loss: number;
        try {
          if (hooks.prepare)
            prepared = await hooks.prepare(model, batch.x, batch.y, { epoch, fraction: b / batchTotal });
          model.train();
          loss = tidy(() => {
            optimizer.zeroGrad();
            const r = hooks.step(model, batch.x, batch.y, prepared);
            const l = r instanceof Tensor ? r : r.loss;
            if (!(r instanceof Tensor)) metrics = r.metrics;
            l.backward();
            optimizer.step();
            return l.item();
          });
        } finally {
          prepared?.dispose();
          batch.x.dispose();
          batch.y.dispose();
        }
        if (!Number.isFinite(loss))
          throw new Error(`${label}: the loss became ${loss} at epoch ${epoch + 1}, batch ${b + 1}`);
        lossSum += loss * batch.indices.length;
        for (const [k, v] of Object.entries(metrics ?? {}))
          metricSums[k] = (metricSums[k] ?? 0) + v * batch.indices.length;
        seen += batch.indices.length;
        b++;
        bar.update(seen, {
          loss: lossSum / seen,
          ...Object.fromEntries(Object.entries(metricSums).map(([k, v]) => [k, v / seen])),
        });
        // Let Node run the finalizers of disposed tensor handles: in a loop that never
        // yields they pile up, and with them memory (hundreds of MB per epoch).
        if (b % 20 === 0) await new Promise((r) => setImmediate(r));
      }
      bar.stop();
      const seconds = (performance.now() - t0) / 1000;
      const stats: EpochStats = {
        epoch: epoch + 1,
        trainLoss: lossSum / seen,
        seconds,
        imagesPerSecond: seen / seconds,
      };
      if (Object.keys(metricSums).length > 0) {
        stats.train = Object.fromEntries(Object.entries(metricSums).map(([k, v]) => [k, v / seen]));
      }
      if (opts.validation) {
        model.eval();
        stats.validation = await hooks.validate(model, opts.validation, 256);
      }
      history.push(stats);
      const show = (m: Record<string, number>, prefix: string) =>
        Object.entries(m)
          .map(([k, v]) => ` ${prefix}${k} ${v.toFixed(4)}`)
          .join("");
      const val =
        (stats.train ? show(stats.train, "train ") : "") + (stats.validation ? show(stats.validation, "") : "");
      log(
        `${label} epoch ${epoch + 1}/${epochs}: loss ${stats.trainLoss.toFixed(4)}${val} (${seconds.toFixed(0)} s, ${stats.imagesPerSecond.toFixed(0)} images/s)`,
      );
      saveCheckpoint(opts.checkpoint, model, {
        optimizer,
        training: { epoch: epoch + 1, epochs, complete: epoch + 1 === epochs, seed: opts.seed, history },
        ...(opts.info ? { info: opts.info } : {}),
      });
    }
  } finally {
    optimizer.dispose();
  }
  model.eval();
  return { model, history, reused: false };
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

/** Train a VAE with Adam on reconstruction + beta * KL; validation reports the deterministic reconstruction error. */
export function trainVae<M extends ConvVae>(opts: FitOptions<M> & { loss: VaeLossOptions }): Promise<FitResult<M>> {
  return fit(opts, {
    step: (m, x) => m.loss(x, opts.loss).loss,
    validate: (m, ds, bs) => {
      let sum = 0;
      for (const b of batches(ds, { batchSize: bs })) {
        sum += tidy(() => noGrad(() => m.reconstruct(b.x, { deterministic: true }).sub(b.x).square().sum().item()));
        b.x.dispose();
        b.y.dispose();
      }
      return { mse: sum / datasetSize(ds) };
    },
  });
}
