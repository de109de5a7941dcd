/**
 * Work the cells of one sweep share instead of redoing: the eps-free step
 * direction of FGSM and of I-FGSM's first step (see DirectionAttack), per
 * batch of a shard, so an epsilon grid takes that gradient once per image
 * instead of once per epsilon and attack. Cells stay the unit of seeding, storage and distribution: a cell
 * computes the direction when no earlier cell of the same context did, and
 * gets exactly the numbers it would get alone (the direction depends neither
 * on the seed nor on eps; attacks on a randomized model do not share).
 *
 * Whoever runs cells owns the memo and passes it to runCell: the local runner
 * one per run, freed when the run ends; a queue worker one per context, kept
 * across the cells it receives (the queue hands out single cells, so reuse
 * applies within what a worker gets). Without a memo a cell computes its own
 * direction: the plain path. Directions are kept as int8 (sign values) under
 * a byte cap; past the cap a cell computes its own.
 */
import { keep } from "../core/engine.js";
import type { Tensor } from "../core/tensor.js";
import type { Cell } from "./cells.js";

/** Most bytes of kept directions: 256 MiB, 268 million values (CIFAR-10's 10,000 test images are 31 million). */
export const GRID_MEMO_BYTES = 256 * 2 ** 20;

/**
 * Where a cell's batch finds its direction: the same attack target (mode and,
 * adaptive, defense), the same kind of direction, the same images. Neither
 * eps, nor the seed, nor the attack's name: FGSM and I-FGSM share.
 */
export function directionKey(cell: Cell, kind: string, first: number, count: number): string {
  return JSON.stringify([cell.mode, cell.defense ?? null, kind, first, count]);
}

export class GridMemo {
  private readonly directions = new Map<string, Tensor>();
  private bytes = 0;
  /** Directions computed and directions reused, for tests and logs. */
  computed = 0;
  reused = 0;

  constructor(readonly capBytes = GRID_MEMO_BYTES) {}

  /**
   * The direction under `key`, computed by `compute` the first time. The
   * returned tensor belongs to the caller (a float copy of the kept one).
   */
  async direction(key: string, compute: () => Promise<Tensor>, dtype: Tensor["dtype"]): Promise<Tensor> {
    const kept = this.directions.get(key);
    if (kept) {
      this.reused++;
      return kept.to(dtype);
    }
    const d = await compute();
    this.computed++;
    if (this.bytes + d.size <= this.capBytes) {
      // Sign values (-1, 0, 1) are exact in int8: a quarter of float32's memory.
      this.directions.set(key, keep(d.to("int8")));
      this.bytes += d.size;
    }
    return d;
  }

  dispose(): void {
    for (const t of this.directions.values()) t.dispose();
    this.directions.clear();
    this.bytes = 0;
  }
}
