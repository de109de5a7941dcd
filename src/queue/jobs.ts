/**
 * One job per cell of a sweep. The job id is a hash of what the cell computes
 * (content hashes of models and data, the defenses, the cell's own attack,
 * the cell, its seed and images), so enqueueing is idempotent: a restarted
 * coordinator adds the same ids and finds the cells already done, and two
 * runs that share cells share their results.
 */
import { createHash } from "node:crypto";
import { CLEAN_ATTACK, type CellResult, type CellTask } from "../eval/cells.js";
import { setupKey, type EvaluationSetup } from "../eval/evaluation.js";

export const JOB_NAME = "cell";

export interface CellJobData {
  format: "vaeguard-cell-job/1";
  /** setupKey(setup): groups the jobs of one evaluation in `vaeguard queue status`. */
  run: string;
  setup: EvaluationSetup;
  task: CellTask;
}

export type CellJobResult = CellResult;

/** Progress a worker reports while a cell runs. */
export interface CellJobProgress {
  images: number;
}

export function jobData(setup: EvaluationSetup, task: CellTask): CellJobData {
  return { format: "vaeguard-cell-job/1", run: setupKey(setup), setup, task };
}

/** The job id of a cell: what it computes, never where its files are. */
export function jobId(setup: EvaluationSetup, task: CellTask): string {
  const attack = task.cell.attack === CLEAN_ATTACK ? null : setup.attacks.find((a) => a.name === task.cell.attack);
  const core = setupKey({ ...setup, attacks: [] });
  const what = JSON.stringify([
    core,
    attack ?? null,
    task.cell,
    task.seed,
    task.start,
    task.count,
    task.gridImages ?? 0,
  ]);
  // Letters first: BullMQ refuses ids that look like integers or contain ':'.
  return `cell-${createHash("sha256").update(what).digest("hex").slice(0, 40)}`;
}

export function isCellJobData(x: unknown): x is CellJobData {
  return typeof x === "object" && x !== null && (x as CellJobData).format === "vaeguard-cell-job/1";
}
