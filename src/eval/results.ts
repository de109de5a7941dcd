/**
 * The results data model of an evaluation: one row per (attack, mode,
 * epsilon) with every defense's accuracy, and the picture-grid sample. Plain
 * JS data, so reports never need the tensor engine: an evaluation writes
 * these, a report reads them.
 */

/** Gray-box: the attacker sees the classifier but not the defense. Adaptive: it attacks the defended model. */
export type AttackMode = "gray-box" | "adaptive";
export const ATTACK_MODES: readonly AttackMode[] = ["gray-box", "adaptive"];

/** One point of a sweep: one attack at one epsilon, evaluated under every defense. */
export interface ResultRow {
  attack: string;
  mode: AttackMode;
  epsilon: number;
  /** Average relative L2 difference (1/N) sum ||x - x_adv|| / ||x|| between clean and attacked images. */
  relL2: number;
  /** Top-1 accuracy in [0, 1] per defense name ("No Def", "JPEG 23", "VAE", ...). */
  accuracy: Record<string, number>;
  /** Standard deviation of the accuracy over repeated runs, for randomized defenses. */
  std?: Record<string, number>;
  /** Adaptive mode: each defense is attacked separately, so each has its own relative L2 (relL2 is their mean). */
  relL2ByDefense?: Record<string, number>;
}

/** Defense names in first-seen order, so tables and legends follow the order the evaluation used. */
export function defensesOf(rows: readonly ResultRow[]): string[] {
  const seen = new Set<string>();
  for (const row of rows) for (const d of Object.keys(row.accuracy)) seen.add(d);
  return [...seen];
}

/** Epsilons are chosen by people (0.1, 8/255): show up to 4 significant digits without trailing zeros. */
export function formatEpsilon(epsilon: number): string {
  return String(Number(epsilon.toPrecision(4)));
}

/** The first images of one sweep row, for a picture grid: original, adversarial, and what each defense made of them. */
export interface GridSample {
  epsilon: number;
  attack: string;
  /** [k, C, H, W] images as flat CHW arrays per image, with predicted labels. */
  original: { data: Float32Array; label: number; prediction: number }[];
  adversarial: { data: Float32Array; prediction: number }[];
  defended: Record<string, { data: Float32Array; prediction: number }[]>;
  shape: [number, number, number];
}

/** Parameters of one attack; steps and eotSamples are named because every report must state them. */
export interface AttackParams {
  steps?: number;
  eotSamples?: number;
  [name: string]: string | number | boolean | readonly number[] | undefined;
}

/** What a run was: enough to say where the numbers come from and to run it again. */
export interface RunMetadata {
  dataset: string;
  /** What "correct" means, e.g. "true labels of the MNIST test set" or "agreement with the clean prediction". */
  labelSource: string;
  /** Number of images evaluated. */
  samples: number;
  seed: number;
  /** The exact command line that produced the results. */
  command: string;
  versions: Record<string, string>;
  /** Keyed by attack name as it appears in ResultRow.attack. */
  attackParams: Record<string, AttackParams>;
  /** ISO 8601 time stamp. */
  createdAt: string;
  /** E.g. "Luo & Pfister 2018, Table 4". */
  paperReference?: string;
}

/** An image as the tensor engine holds it: CHW, values in [0, 1]. */
export interface GridImage {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Float32Array;
}

export interface GridCell {
  /** null leaves the slot empty (a ragged row). */
  image: GridImage | null;
  /** Lines separated by "\n", e.g. "pred 7\neps 0.1". */
  caption?: string;
}
