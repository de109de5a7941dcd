/**
 * What the queue holds: job counts by state, the connected workers, each run
 * (an evaluation's cells, grouped by setup) with its cells by state, the cells
 * running now and the last failures. For `vaeguard queue status`.
 */
import { Queue, type Job } from "bullmq";
import { describeTask } from "../eval/cells.js";
import { QUEUE_NAME, probe, readyWithin, type RedisTarget } from "./connection.js";
import { isCellJobData, type CellJobData, type CellJobProgress, type CellJobResult } from "./jobs.js";

const STATES = ["waiting", "active", "delayed", "prioritized", "completed", "failed"] as const;
type State = (typeof STATES)[number];

export interface RunStatus {
  run: string;
  dataset: string;
  classifier: string;
  vae: string | null;
  modes: string[];
  cells: Record<State, number>;
}

export interface QueueStatus {
  url: string;
  counts: Record<State, number>;
  workers: string[];
  runs: RunStatus[];
  running: { cell: string; worker: string | null; images: number; of: number; seconds: number }[];
  failed: { cell: string; worker: string | null; reason: string }[];
}

type CellJob = Job<CellJobData, CellJobResult>;

export async function queueStatus(target: RedisTarget, timeoutMs = 10000): Promise<QueueStatus> {
  await probe(target);
  let lastError: unknown;
  const queue = new Queue<CellJobData, CellJobResult>(QUEUE_NAME, { connection: target.connection });
  queue.on("error", (e) => (lastError = e));
  try {
    await readyWithin(target, queue.waitUntilReady(), timeoutMs, () => lastError);
    const raw = await queue.getJobCounts(...STATES);
    const counts = Object.fromEntries(STATES.map((s) => [s, raw[s] ?? 0])) as Record<State, number>;
    // Client names are "bull:<queue in base64>:w:<worker name>"; keep the worker's own name.
    const workers = (await queue.getWorkers()).map((w) => {
      const raw = String(w.rawname ?? "");
      const i = raw.indexOf(":w:");
      return i >= 0 ? raw.slice(i + 3) : String(w.addr ?? "?");
    });
    const runs = new Map<string, RunStatus>();
    const running: QueueStatus["running"] = [];
    const failed: QueueStatus["failed"] = [];
    for (const state of STATES) {
      const jobs = (await queue.getJobs([state], 0, -1)) as CellJob[];
      for (const job of jobs) {
        if (!job || !isCellJobData(job.data)) continue;
        const { run, setup, task } = job.data;
        let r = runs.get(run);
        if (!r) {
          r = {
            run,
            dataset: setup.dataset,
            classifier: setup.classifier.sha256.slice(0, 12),
            vae: setup.vae ? setup.vae.sha256.slice(0, 12) : null,
            modes: [],
            cells: Object.fromEntries(STATES.map((s) => [s, 0])) as Record<State, number>,
          };
          runs.set(run, r);
        }
        r.cells[state]++;
        if (!r.modes.includes(task.cell.mode)) r.modes.push(task.cell.mode);
        if (state === "active") {
          running.push({
            cell: describeTask(task),
            worker: job.processedBy ?? null,
            images: Number((job.progress as CellJobProgress | undefined)?.images ?? 0),
            of: task.count,
            seconds: job.processedOn ? Math.round((Date.now() - job.processedOn) / 1000) : 0,
          });
        }
        if (state === "failed") {
          failed.push({
            cell: describeTask(task),
            worker: job.processedBy ?? null,
            reason: job.failedReason?.split("\n")[0] ?? "",
          });
        }
      }
    }
    return { url: target.url, counts, workers, runs: [...runs.values()], running, failed: failed.slice(-20) };
  } finally {
    await queue.close().catch(() => undefined);
  }
}

export function renderStatus(s: QueueStatus): string {
  const lines = [
    `Queue ${QUEUE_NAME} on ${s.url}`,
    `  jobs: ${STATES.map((st) => `${s.counts[st]} ${st}`).join(", ")}`,
    `  workers connected: ${s.workers.length}${s.workers.length > 0 ? ` (${s.workers.join(", ")})` : ""}`,
  ];
  if (s.runs.length > 0) {
    lines.push("", "Runs (cells by state):");
    for (const r of s.runs) {
      const total = STATES.reduce((a, st) => a + r.cells[st], 0);
      const parts = STATES.filter((st) => r.cells[st] > 0).map((st) => `${r.cells[st]} ${st}`);
      lines.push(
        `  ${r.run}  ${r.dataset} ${r.modes.join("+")}, classifier ${r.classifier}${r.vae ? `, VAE ${r.vae}` : ""}: ${r.cells.completed}/${total} done (${parts.join(", ")})`,
      );
    }
  }
  if (s.running.length > 0) {
    lines.push("", "Running:");
    for (const a of s.running) {
      lines.push(`  ${a.cell}: ${a.images}/${a.of} images, ${a.seconds} s${a.worker ? ` on ${a.worker}` : ""}`);
    }
  }
  if (s.failed.length > 0) {
    lines.push("", "Failed (the coordinator's next run retries them):");
    for (const f of s.failed) lines.push(`  ${f.cell}${f.worker ? ` on ${f.worker}` : ""}: ${f.reason}`);
  }
  return lines.join("\n");
}
