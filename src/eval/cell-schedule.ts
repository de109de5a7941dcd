/**
 * Which cell a runner thread takes next (thread-runner.ts). Two aims:
 *
 * - keep the grid reuse (grid-memo.ts): the cells of one direction group
 *   (mode, adaptive defense, shard) share FGSM's gradient and I-FGSM's first
 *   step through the memo of the thread that runs them, so a thread keeps to
 *   the groups it has claimed, claims a new group when its own are done, and
 *   only then helps with another thread's group (which costs that thread one
 *   extra gradient per batch, nothing more: the numbers stay the same);
 * - balance: cells are taken most expensive first (longest-processing-time
 *   order), so the last cells to finish are short ones. The cost is a rough
 *   count of gradients: images x (1 + attack steps); eps 0 cells take none.
 *
 * Where a cell runs changes no number (each cell is seeded from itself), so
 * the schedule only moves time.
 */
import { CLEAN_ATTACK, type CellTask } from "./cells.js";
import type { SetupAttack } from "./evaluation.js";

/** The cell's rough cost: images times (1 + gradient steps of its attack). */
export function cellCost(task: CellTask, attacks: readonly SetupAttack[]): number {
  const { cell } = task;
  if (cell.attack === CLEAN_ATTACK || cell.epsilon === 0) return task.count;
  const steps = attacks.find((a) => a.name === cell.attack)?.params.steps;
  return task.count * (1 + (typeof steps === "number" && steps > 0 ? steps : 1));
}

/** The cells that share eps-free directions in one thread's memo. */
export function directionGroup(task: CellTask): string {
  return JSON.stringify([task.cell.mode, task.cell.defense ?? null, task.cell.shard]);
}

export class CellScheduler {
  private readonly pending: CellTask[];
  private readonly owner = new Map<string, number>();

  constructor(tasks: readonly CellTask[], cost: (t: CellTask) => number) {
    // Stable: equal costs keep the plan's order (shard by shard).
    this.pending = tasks
      .map((t, i) => ({ t, i, c: cost(t) }))
      .sort((a, b) => b.c - a.c || a.i - b.i)
      .map((x) => x.t);
  }

  get remaining(): number {
    return this.pending.length;
  }

  /** The next cell for `thread`: of its own groups, else of a group nobody has, else any; undefined when none is left. */
  next(thread: number): CellTask | undefined {
    if (this.pending.length === 0) return undefined;
    let i = this.pending.findIndex((t) => this.owner.get(directionGroup(t)) === thread);
    if (i < 0) i = this.pending.findIndex((t) => !this.owner.has(directionGroup(t)));
    if (i < 0) i = 0;
    const [task] = this.pending.splice(i, 1);
    const group = directionGroup(task);
    if (!this.owner.has(group)) this.owner.set(group, thread);
    return task;
  }
}
