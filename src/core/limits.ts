/**
 * Documented maxima (README, "Limits and guarantees"). They are safety bounds
 * against runs that never end or allocate without limit (`pgd:steps=1e15` ran
 * forever), far above anything the paper or a sane evaluation uses.
 */
export const LIMITS = {
  /** Iterations of an iterative attack (I-FGSM, PGD). */
  attackSteps: 100_000,
  /** Random restarts of PGD. */
  restarts: 1_000,
  /** EOT samples per gradient or per query. */
  eotSamples: 10_000,
  /** Queries of the Square attack. */
  queries: 1_000_000,
  /** Forward passes that score a randomized defense. */
  passes: 10_000,
  /** Training epochs. */
  epochs: 100_000,
  /** Side of a square input image in pixels. */
  imageSide: 8192,
  /** Images per batch (training, evaluation, attacks). */
  batchSize: 65_536,
  /** Bytes of one tensor an imported model declares (weights or input). */
  tensorBytes: 2 ** 31,
  /** Bytes of one input image an imported model declares (a 4096 x 4096 RGB float32 image is 192 MiB). */
  inputBytes: 256 * 2 ** 20,
} as const;
