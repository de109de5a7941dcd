/**
 * The settings of the paper's NIPS 2017 experiment (Luo & Pfister 2018,
 * sections 5 and 6; Tables 3, 6 and 7) as vaeguard runs it: patch sizes,
 * the columns of Tables 6 and 7, the epsilon grids and the training defaults.
 */

export const PATCH_SIZES = [16, 32, 64] as const;
export type PatchSize = (typeof PATCH_SIZES)[number];

/** The VAE columns of Tables 6 and 7: (patch size, stride). */
export const VAE_COLUMNS: readonly { patchSize: PatchSize; stride: number }[] = [
  { patchSize: 16, stride: 16 },
  { patchSize: 32, stride: 32 },
  { patchSize: 64, stride: 32 },
  { patchSize: 64, stride: 64 },
];

/** The paper's FGSM range on NIPS 2017: epsilon in [0.005, 0.09] (and 0 for the clean row). */
export const DEFAULT_FGSM_EPS = [0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.09];
export const DEFAULT_IFGSM_EPS = [0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.09];
export const QUICK_FGSM_EPS = [0, 0.03];
export const QUICK_IFGSM_EPS = [0.03];
export const IFGSM_STEPS = 10;

/**
 * Patches per training epoch: the same image area (2^21 pixels, about 23 of
 * the 299x299 images) for every patch size, so "the reconstruction term
 * changes by less than 1% per epoch" means the same amount of training data
 * for each VAE. Every epoch draws fresh patches. (The authors' Keras code
 * counts 50 batches as an epoch.)
 */
export const EPOCH_PATCHES: Record<PatchSize, number> = { 16: 8192, 32: 2048, 64: 512 };
export const QUICK_EPOCH_PATCHES: Record<PatchSize, number> = { 16: 64, 32: 64, 64: 32 };

/** Fixed patches of the training half on which convergence is measured after every epoch. */
export const MONITOR_PATCHES = 512;
export const QUICK_MONITOR_PATCHES = 32;

/** The paper's stopping rule: the reconstruction term changes by less than 1% from one epoch to the next. */
export const CONVERGENCE = 0.01;

/**
 * Default caps on the CPU time of training per VAE in minutes (about an hour of
 * CPU for all three); a later run with a larger cap resumes the checkpoints.
 * CPU time, not wall time: on a shared machine it measures the work done.
 */
export const DEFAULT_TRAIN_CPU_MINUTES: Record<PatchSize, number> = { 16: 12, 32: 15, 64: 33 };

/**
 * Training batch per patch size: small batches for the small VAEs (more Adam
 * steps for the same computation); 32 for the 64x64 VAE, whose Adam update of
 * 100M parameters would otherwise cost as much as the batch itself.
 */
export const DEFAULT_BATCH: Record<PatchSize, number> = { 16: 16, 32: 16, 64: 32 };
export const DEFAULT_MAX_EPOCHS = 500;
