/**
 * Step 2 of the NIPS 2017 experiment: train the patch VAEs of Table 3 (16x16,
 * 32x32, 64x64) on random patches of the training half only, until the
 * reconstruction term changes by less than 1% from one epoch to the next (the
 * paper: "enough epochs until the first term in the loss function changes very
 * little"), or until a cap on epochs or training time.
 *
 * Every epoch draws fresh patches (seeded by epoch, so a resumed run sees the
 * same ones); convergence is measured on a fixed set of monitor patches of the
 * training half with fixed latent noise, so epoch-to-epoch changes are the
 * model's, not the sample's. Loss BCE + beta * KL (the authors' KL weight
 * 0.01), latent noise clipped to [-5, 5], Adam. Checkpoints after every epoch;
 * a killed or capped run resumes from them.
 */
import type { ProgressFactory } from "../../core/progress.js";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { dispose } from "../../core/engine.js";
import { checkInt, checkNumber } from "../../core/validate.js";
import type { ImageFolderEntry } from "../../data/image-folder.js";
import { PatchSource } from "../../data/patches.js";
import { deriveSeed } from "../../data/random.js";
import { ConvVae, VAE_PRESETS } from "../../models/vae.js";
import { trainVae, type EpochStats, type StopReason } from "../../train/trainer.js";
import {
  CONVERGENCE,
  DEFAULT_BATCH,
  DEFAULT_MAX_EPOCHS,
  EPOCH_PATCHES,
  MONITOR_PATCHES,
  QUICK_EPOCH_PATCHES,
  QUICK_MONITOR_PATCHES,
  type PatchSize,
} from "./settings.js";

export interface PatchVaeTrainingOptions {
  /** Training images [N, 3, H, W] float32 in [0, 1] (the training half). */
  images: PatchSource;
  /** Their ImageIds: part of the checkpoint's name, so another split never reuses it. */
  imageIds: readonly string[];
  patchSizes: readonly PatchSize[];
  /** Patches per epoch (default EPOCH_PATCHES, quick QUICK_EPOCH_PATCHES). */
  epochPatches?: Partial<Record<PatchSize, number>>;
  monitorPatches?: number;
  /** Stop when the monitored reconstruction term changes by less than this fraction (default 0.01). */
  convergence?: number;
  maxEpochs?: number;
  /** Training-time cap per VAE in minutes of wall time (all sessions together); none by default. */
  maxMinutes?: Partial<Record<PatchSize, number>>;
  /** The same in minutes of process CPU time. */
  maxCpuMinutes?: Partial<Record<PatchSize, number>>;
  beta: number;
  lr: number;
  /** Batch per patch size (default DEFAULT_BATCH). */
  batchSize?: Partial<Record<PatchSize, number>>;
  flip: boolean;
  seed: number;
  quick: boolean;
  checkpointDir: string;
  restart: boolean;
  quiet?: boolean;
  /** Progress of training and evaluation (default: nothing). */
  progress?: ProgressFactory;
  log: (line: string) => void;
}

/** The validation figure whose relative change stops training. */
export const MONITOR = "reconstructionExcess";

export interface PatchVaeSummary {
  patchSize: PatchSize;
  batchSize: number;
  checkpoint: string;
  parameters: number;
  epochPatches: number;
  monitorPatches: number;
  history: EpochStats[];
  stopReason: StopReason;
  /** Training time of all sessions together (the sum of the epochs' times). */
  trainSeconds: number;
  trainCpuSeconds: number;
  reused: boolean;
}

/** A short, stable tag of a list of ImageIds (which images trained a checkpoint). */
export function idsTag(ids: readonly string[]): string {
  return createHash("sha256").update(ids.join("\n")).digest("hex").slice(0, 8);
}

function batchOf(o: PatchVaeTrainingOptions, p: PatchSize): number {
  return checkInt(o.batchSize?.[p] ?? DEFAULT_BATCH[p], `batchSize[${p}]`, 1);
}

export function patchVaeCheckpoint(o: PatchVaeTrainingOptions, p: PatchSize): string {
  const per = epochPatchesOf(o, p);
  return join(
    o.checkpointDir,
    `nips2017-patch${p}-train${o.imageIds.length}-${idsTag(o.imageIds)}-e${per}-bs${batchOf(o, p)}-beta${o.beta}-lr${o.lr}` +
      `${o.flip ? "" : "-noflip"}-s${o.seed}${o.quick ? "-quick" : ""}.safetensors`,
  );
}

function epochPatchesOf(o: PatchVaeTrainingOptions, p: PatchSize): number {
  return checkInt(o.epochPatches?.[p] ?? (o.quick ? QUICK_EPOCH_PATCHES : EPOCH_PATCHES)[p], `epochPatches[${p}]`, 1);
}

/** Train (or reuse, or resume) one patch VAE; the caller disposes the model. */
export async function trainPatchVae(
  o: PatchVaeTrainingOptions,
  p: PatchSize,
): Promise<{ model: ConvVae; summary: PatchVaeSummary }> {
  const perEpoch = epochPatchesOf(o, p);
  const monitorCount = checkInt(
    o.monitorPatches ?? (o.quick ? QUICK_MONITOR_PATCHES : MONITOR_PATCHES),
    "monitorPatches",
    1,
  );
  const convergence = checkNumber(o.convergence ?? CONVERGENCE, "convergence", 0, 1);
  const maxEpochs = checkInt(o.maxEpochs ?? DEFAULT_MAX_EPOCHS, "maxEpochs", 1);
  const minutes = o.maxMinutes?.[p];
  const cpuMinutes = o.maxCpuMinutes?.[p];
  const checkpoint = patchVaeCheckpoint(o, p);
  const source = `${o.imageIds.length} training images`;
  // A stream of its own, so monitor patches never coincide with an epoch's patches.
  const monitor = o.images.dataset({
    patchSize: p,
    count: monitorCount,
    seed: deriveSeed(o.seed, 0x6d6f6e, p),
    source,
  });
  try {
    const fit = await trainVae({
      makeModel: () => new ConvVae(VAE_PRESETS[`patch${p}`]),
      train: (epoch) =>
        o.images.dataset({ patchSize: p, count: perEpoch, seed: deriveSeed(o.seed, epoch, p), flip: o.flip, source }),
      validation: monitor,
      epochs: maxEpochs,
      stop: {
        relativeChange: convergence,
        // The BCE above its floor (the patches' own entropy): see trainVae.
        monitor: MONITOR,
        ...(minutes !== undefined ? { maxSeconds: checkNumber(minutes, `maxMinutes[${p}]`, 0) * 60 } : {}),
        ...(cpuMinutes !== undefined ? { maxCpuSeconds: checkNumber(cpuMinutes, `maxCpuMinutes[${p}]`, 0) * 60 } : {}),
      },
      batchSize: batchOf(o, p),
      lr: o.lr,
      seed: o.seed,
      checkpoint,
      restart: o.restart,
      loss: { beta: o.beta, reconstruction: "bce", clip: 5 },
      label: `vae ${p}x${p}`,
      quiet: o.quiet,
      progress: o.progress,
      log: o.log,
    });
    const summary: PatchVaeSummary = {
      patchSize: p,
      batchSize: batchOf(o, p),
      checkpoint,
      parameters: fit.model.parameters().reduce((a, t) => a + t.size, 0),
      epochPatches: perEpoch,
      monitorPatches: monitorCount,
      history: fit.history,
      stopReason: fit.stopReason,
      trainSeconds: fit.history.reduce((a, h) => a + h.seconds, 0),
      trainCpuSeconds: fit.history.reduce((a, h) => a + (h.cpuSeconds ?? 0), 0),
      reused: fit.reused,
    };
    return { model: fit.model, summary };
  } finally {
    dispose([monitor.images, monitor.labels]);
  }
}

/** Train every requested patch VAE in turn; the caller disposes the models. */
export async function trainPatchVaes(
  o: PatchVaeTrainingOptions,
): Promise<{ models: Map<PatchSize, ConvVae>; summaries: PatchVaeSummary[] }> {
  const models = new Map<PatchSize, ConvVae>();
  const summaries: PatchVaeSummary[] = [];
  try {
    for (const p of o.patchSizes) {
      const { model, summary } = await trainPatchVae(o, p);
      models.set(p, model);
      summaries.push(summary);
      const last = summary.history.at(-1);
      o.log(
        `vae ${p}x${p}: ${summary.history.length} epoch(s), stopped: ${summary.stopReason}` +
          (last?.validation?.[MONITOR] !== undefined
            ? `, reconstruction term above its floor ${last.validation[MONITOR].toFixed(2)}`
            : "") +
          `, ${(summary.trainSeconds / 60).toFixed(1)} min of training`,
      );
    }
  } catch (e) {
    for (const m of models.values()) m.dispose();
    throw e;
  }
  return { models, summaries };
}

/** The training images' ids as a list, for the checkpoint tag. */
export function entryIds(entries: readonly ImageFolderEntry[]): string[] {
  return entries.map((e) => e.id);
}
