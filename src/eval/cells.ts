/**
 * A sweep cut into cells: one cell is (attack, mode, epsilon, defense, shard
 * of images), the unit of work, of random seeding, of storage and of
 * distribution. Its seed depends on the cell alone, so its result is the same
 * whichever process runs it and whichever cells ran before; a row of the
 * results table is merged from its cells in one fixed order, so a sweep run in
 * one process and the same sweep spread over many workers give the same table.
 *
 * Plain data only (no tensors): the job queue and the results file use it.
 */
import { createHash } from "node:crypto";
import { VaeguardError } from "../core/errors.js";
import { deriveSeed } from "../data/random.js";
import type { AttackMode, ResultRow } from "./results.js";
import { meanStd } from "./metrics.js";

/** The attack name of epsilon-0 cells: nothing is attacked, so every attack's epsilon-0 row shares them. */
export const CLEAN_ATTACK = "(clean)";

export interface Cell {
  /** The attack's table name, or CLEAN_ATTACK at epsilon 0. */
  attack: string;
  mode: AttackMode;
  epsilon: number;
  /**
   * Adaptive mode attacks each defense through itself: the defense's name.
   * Gray-box cells attack the classifier once for every defense: undefined.
   */
  defense?: string;
  /** Index of the shard: images [shard * shardSize, (shard + 1) * shardSize). */
  shard: number;
}

/** A cell with everything needed to run it. */
export interface CellTask {
  /** Unique within a sweep; the key of the results file. */
  id: string;
  cell: Cell;
  /** libtorch's generator is seeded with this before the cell runs. */
  seed: number;
  /** The shard's first image and its number of images. */
  start: number;
  count: number;
  /** Keep this many images of the cell's first batch for a picture grid (changes no number). */
  gridImages?: number;
}

/** Images as flat CHW arrays rounded to 1e-4 (JSON), with predicted labels. */
export interface SerializedGrid {
  shape: [number, number, number];
  original: { data: number[]; label: number; prediction: number }[];
  adversarial: { data: number[]; prediction: number }[];
  defended: Record<string, { data: number[]; prediction: number }[]>;
}

/** What a cell measured: sums, so cells of one row add up exactly. */
export interface CellResult {
  images: number;
  /** Correct top-1 predictions per defense and scoring pass (randomized defenses have several passes). */
  correct: Record<string, number[]>;
  /** Sum over the shard's images of the relative L2 difference of the attacked images. */
  relL2Sum: number;
  grid?: SerializedGrid;
  /** With keepPredictions: each image's first-pass top-1 prediction per defense, in image order. */
  predictions?: Record<string, number[]>;
}

/** One row of the results table and the cells it is merged from, in merge order. */
export interface PlannedRow {
  attack: string;
  mode: AttackMode;
  epsilon: number;
  tasks: CellTask[];
}

export function cellId(c: Cell): string {
  return JSON.stringify([c.attack, c.mode, c.epsilon, c.defense ?? null, c.shard]);
}

/** The cell's seed: from the sweep's seed and the cell alone. */
export function cellSeed(seed: number, c: Cell): number {
  const h = createHash("sha256").update(cellId(c)).digest();
  return deriveSeed(seed, h.readUInt32LE(0), h.readUInt32LE(4));
}

/** A cell for messages: "PGD(3) adaptive eps 0.2, VAE, images 8-11". */
export function describeTask(t: CellTask): string {
  const c = t.cell;
  return `${c.attack} ${c.mode} eps ${c.epsilon}${c.defense !== undefined ? `, ${c.defense}` : ""}, images ${t.start}-${t.start + t.count - 1}`;
}

export interface PlanOptions {
  attacks: { name: string; epsilons?: number[] }[];
  /** The grid of attacks that have none of their own. */
  epsilons: number[];
  mode: AttackMode;
  /** Defense names, in table order. */
  defenses: string[];
  images: number;
  shardSize: number;
  seed: number;
  gridImages?: number;
  gridEpsilon?: number;
}

/**
 * The rows of a sweep in table order, each with its cells. Epsilon-0 rows of
 * different attacks share the same (clean) cells; the picture grid comes from
 * the first shard of the first gray-box row at the grid's epsilon.
 */
export function planSweep(o: PlanOptions): PlannedRow[] {
  const tasks = new Map<string, CellTask>();
  let gridTaken = !(o.gridImages && o.gridImages > 0) || o.mode !== "gray-box";
  const rows: PlannedRow[] = [];
  for (const a of o.attacks) {
    for (const epsilon of a.epsilons ?? o.epsilons) {
      const attack = epsilon === 0 ? CLEAN_ATTACK : a.name;
      const split = o.mode === "adaptive" ? o.defenses : [undefined];
      const row: PlannedRow = { attack: a.name, mode: o.mode, epsilon, tasks: [] };
      for (const defense of split) {
        for (let start = 0, shard = 0; start < o.images; start += o.shardSize, shard++) {
          const cell: Cell = { attack, mode: o.mode, epsilon, shard };
          if (defense !== undefined) cell.defense = defense;
          const id = cellId(cell);
          let task = tasks.get(id);
          if (!task) {
            task = { id, cell, seed: cellSeed(o.seed, cell), start, count: Math.min(o.shardSize, o.images - start) };
            tasks.set(id, task);
          }
          if (!gridTaken && epsilon === o.gridEpsilon && shard === 0) {
            task.gridImages = o.gridImages;
            gridTaken = true;
          }
          row.tasks.push(task);
        }
      }
      rows.push(row);
    }
  }
  return rows;
}

/** Every distinct cell of the plan, in plan order. */
export function uniqueTasks(rows: PlannedRow[]): CellTask[] {
  const seen = new Map<string, CellTask>();
  for (const r of rows) for (const t of r.tasks) if (!seen.has(t.id)) seen.set(t.id, t);
  return [...seen.values()];
}

/**
 * A row from its cells' results, summed in the plan's order: accuracies are
 * the mean over scoring passes (with their standard deviation for randomized
 * defenses), rel-L2 the mean over images (per defense in adaptive mode).
 */
export function mergeRow(row: PlannedRow, results: ReadonlyMap<string, CellResult>, defenses: string[]): ResultRow {
  const correct = new Map<string, number[]>();
  const l2 = new Map<string, number>();
  let images = 0;
  const counted = new Set<string>();
  for (const t of row.tasks) {
    const r = results.get(t.id);
    if (!r) throw new VaeguardError(`mergeRow: no result for cell ${t.id}`);
    const key = t.cell.defense ?? "*";
    l2.set(key, (l2.get(key) ?? 0) + r.relL2Sum);
    // Adaptive rows have one cell per defense and shard: count each shard's images once.
    if (!counted.has(`${t.cell.shard}`)) images += r.images;
    counted.add(`${t.cell.shard}`);
    for (const [d, counts] of Object.entries(r.correct)) {
      const sum = correct.get(d) ?? new Array<number>(counts.length).fill(0);
      counts.forEach((c, p) => (sum[p] += c));
      correct.set(d, sum);
    }
  }
  const accuracy: Record<string, number> = {};
  const std: Record<string, number> = {};
  for (const d of defenses) {
    const counts = correct.get(d);
    if (!counts) throw new VaeguardError(`mergeRow: no counts for defense ${d}`);
    const { mean, std: s } = meanStd(counts.map((c) => c / images));
    accuracy[d] = mean;
    if (counts.length > 1) std[d] = s;
  }
  const out: ResultRow = { attack: row.attack, mode: row.mode, epsilon: row.epsilon, relL2: 0, accuracy };
  if (Object.keys(std).length > 0) out.std = std;
  if (row.mode === "gray-box") {
    out.relL2 = l2.get("*")! / images;
  } else {
    out.relL2ByDefense = Object.fromEntries(defenses.map((d) => [d, l2.get(d)! / images]));
    out.relL2 = defenses.reduce((a, d) => a + l2.get(d)! / images, 0) / defenses.length;
  }
  return out;
}

/**
 * A row's per-image predictions per defense (first pass), concatenated over
 * its shards in plan order, so index i is image i of the row; undefined when a
 * cell kept none. Adaptive rows take each defense's from its own cells.
 */
export function rowPredictions(
  row: PlannedRow,
  results: ReadonlyMap<string, CellResult>,
  defenses: string[],
): Record<string, number[]> | undefined {
  const out: Record<string, number[]> = {};
  for (const d of defenses) {
    out[d] = [];
    for (const t of row.tasks) {
      if (t.cell.defense !== undefined && t.cell.defense !== d) continue;
      const kept = results.get(t.id)?.predictions?.[d];
      if (!kept) return undefined;
      out[d].push(...kept);
    }
  }
  return out;
}
