/**
 * The paper's evaluation: for each attack and each epsilon, attack the test
 * images, then measure the average relative L2 difference and the top-1
 * accuracy of the classifier behind every defense.
 *
 * Modes: "gray-box" (the paper's; the attack sees only the classifier, one set
 * of adversarial images serves every defense) and "adaptive" (each defense is
 * attacked through its own attack view: exact, BPDA or EOT gradients).
 * Randomized defenses are scored as the mean over several passes, never the best.
 *
 * The sweep is cut into cells (cells.ts), each seeded from the cell alone and
 * run by a CellRunner: in this process by default, or by workers of a job
 * queue (src/queue/). Finished cells are kept in a JSON results file, written
 * atomically, so an interrupted sweep resumes where it stopped, and rows are
 * merged from cells in a fixed order: wherever the cells ran, the table is the same.
 */
import { readResultsJson } from "../io/results-file.js";
import { VaeguardError } from "../core/errors.js";
import { checkInt, checkNumber } from "../core/validate.js";
import type { AttackMode, GridSample, ResultRow } from "./results.js";
import { datasetSize } from "../data/index.js";
import { writeJsonAtomic } from "../io/atomic.js";
import { silentProgress, type ProgressFactory } from "../core/progress.js";
import {
  describeTask,
  mergeRow,
  planSweep,
  rowPredictions,
  uniqueTasks,
  type CellResult,
  type CellTask,
  type PlannedRow,
  type SerializedGrid,
} from "./cells.js";
import { runCell, type SweepContext } from "./run-cell.js";
import { GridMemo } from "./grid-memo.js";

export type { AttackSpec, SweepContext } from "./run-cell.js";

export type { GridSample } from "./results.js";

/** What a runner tells the sweep about its cells. */
export interface CellEvents {
  /** A cell started, or started again after an attempt that failed or was abandoned by a dead worker. */
  started(task: CellTask): void;
  /** Images of the cell done so far in its current attempt. */
  images(task: CellTask, done: number): void;
  /** An attempt failed or was abandoned; the cell will run again. */
  retried(task: CellTask, reason: string): void;
  /** The cell's result (a second report of the same cell is ignored). */
  done(task: CellTask, result: CellResult): void;
}

/** Where cells run. It resolves when every cell was reported done, and rejects with one clear line otherwise. */
export interface CellRunner {
  /** For log lines: "in this process", "on redis://host:6379". */
  readonly where: string;
  /** Least milliseconds between two writes of the results file (many tiny cells would rewrite it for each). */
  readonly saveIntervalMs?: number;
  run(tasks: CellTask[], events: CellEvents): Promise<void>;
}

/**
 * Cells one after another in this process. `stopAt` (Date.now() milliseconds):
 * start no cell after it; the rest stay for a later run (see SweepOptions.partial).
 * The cells share eps-free attack directions through one grid memo
 * (grid-memo.ts), freed when the run ends.
 */
export function localRunner(ctx: SweepContext, stopAt?: number): CellRunner {
  return {
    where: "in this process",
    async run(tasks, events) {
      const memo = new GridMemo();
      try {
        for (const t of tasks) {
          if (stopAt !== undefined && Date.now() >= stopAt) return;
          events.started(t);
          events.done(t, await runCell(ctx, t, (done) => events.images(t, done), memo));
        }
      } finally {
        memo.dispose();
      }
    },
  };
}

export interface SweepOptions extends SweepContext {
  epsilons: number[];
  mode: AttackMode;
  /** Every cell's seed derives from this one and the cell (default 0). */
  seed?: number;
  /** Images per cell (default: all, one cell per attack, epsilon and, in adaptive mode, defense). */
  shardSize?: number;
  /** JSON results file: resumed when it exists and was made with the same settings. */
  resultsFile?: string;
  /** Settings that must match for a resume (data, models, attack parameters). */
  fingerprint?: Record<string, unknown>;
  /** Keep this many images of the first batch at `gridEpsilon` for a picture grid. */
  gridImages?: number;
  gridEpsilon?: number;
  /** Where the cells run (default: in this process, one after another). */
  runner?: CellRunner;
  /** Run only the cells it accepts (one process's share); the others are left for other processes. */
  only?: (task: CellTask) => boolean;
  /** Results files of other processes with the same settings to take finished cells from. */
  mergeFrom?: readonly string[];
  /** In this process (no runner given): start no cell after this many seconds. */
  maxSeconds?: number;
  /**
   * Unfinished cells are no error: the rows cover the longest run of first
   * shards that every row has finished (cells run shard by shard, so a sweep
   * cut short still gives whole rows on fewer images).
   */
  partial?: boolean;
  quiet?: boolean;
  /** Reports progress over all cells (default: nothing). */
  progress?: ProgressFactory;
  log?: (line: string) => void;
}

const FORMAT = "vaeguard-sweep/2";

interface ResultsFile {
  format: typeof FORMAT;
  fingerprint: Record<string, unknown>;
  /** Finished rows, in table order (derived from the cells). */
  rows: ResultRow[];
  /** Finished cells by id, in plan order. */
  cells: Record<string, CellResult>;
}

function loadResults(path: string, fingerprint: Record<string, unknown>): ResultsFile | undefined {
  const parsed = readResultsJson(path) as ResultsFile | undefined;
  if (parsed === undefined) return undefined;
  if ((parsed as { format?: unknown }).format === "vaeguard-sweep/1") {
    throw new VaeguardError(
      `${path}: was made by an earlier vaeguard that seeded by row, not by cell; delete it or pass --restart`,
    );
  }
  if (parsed.format !== FORMAT || typeof parsed.cells !== "object" || parsed.cells === null) {
    throw new VaeguardError(`${path}: not a vaeguard results file; delete it or pass --restart`);
  }
  if (JSON.stringify(parsed.fingerprint) !== JSON.stringify(fingerprint)) {
    throw new VaeguardError(
      `${path}: was made with other settings (data, models or attacks); delete it or pass --restart`,
    );
  }
  return parsed;
}

function deserializeGrid(g: SerializedGrid, attack: string, epsilon: number): GridSample {
  const conv = <T extends { data: number[] }>(xs: T[]) => xs.map((x) => ({ ...x, data: Float32Array.from(x.data) }));
  return {
    attack,
    epsilon,
    shape: g.shape,
    original: conv(g.original),
    adversarial: conv(g.adversarial),
    defended: Object.fromEntries(Object.entries(g.defended).map(([k, v]) => [k, conv(v)])),
  };
}

function gridFrom(plan: PlannedRow[], results: ReadonlyMap<string, CellResult>): GridSample | undefined {
  for (const row of plan) {
    const t = row.tasks.find((x) => x.gridImages !== undefined);
    const g = t ? results.get(t.id)?.grid : undefined;
    if (g) return deserializeGrid(g, row.attack, row.epsilon);
  }
  return undefined;
}

/** Progress over all cells: images done (finished cells plus the running ones' progress), running, retried. */
class SweepProgress {
  private readonly running = new Map<string, number>();
  private finishedImages = 0;
  private finishedCells = 0;
  private retries = 0;
  private readonly bar;

  constructor(
    label: string,
    private readonly tasks: CellTask[],
    makeBar: ProgressFactory,
  ) {
    this.bar = makeBar(
      label,
      tasks.reduce((a, t) => a + t.count, 0),
      "images",
    );
    this.show();
  }

  started(t: CellTask): void {
    this.running.set(t.id, 0);
    this.show();
  }

  images(t: CellTask, done: number): void {
    if (this.running.has(t.id)) this.running.set(t.id, done);
    this.show();
  }

  retried(t: CellTask): void {
    this.running.delete(t.id);
    this.retries++;
    this.show();
  }

  done(t: CellTask): void {
    this.running.delete(t.id);
    this.finishedImages += t.count;
    this.finishedCells++;
    this.show();
  }

  private show(): void {
    let partial = 0;
    for (const v of this.running.values()) partial += v;
    this.bar.update(this.finishedImages + partial, {
      cells: `${this.finishedCells}/${this.tasks.length}`,
      running: String(this.running.size),
      retried: String(this.retries),
    });
  }

  stop(): void {
    this.bar.stop();
  }
}

/** One sweep's plan of cells, its finished cells and where they go. */
interface SweepRun {
  opts: SweepOptions;
  log: (line: string) => void;
  /** Defense names, in table order. */
  defenses: string[];
  /** What a results file must have been made with to be resumed. */
  fingerprint: Record<string, unknown>;
  plan: PlannedRow[];
  /** The plan's distinct cells, in plan order. */
  tasks: CellTask[];
  /** Finished cells by id, resumed or new. */
  results: Map<string, CellResult>;
  runner: CellRunner;
}

export interface SweepResult {
  rows: ResultRow[];
  grid?: GridSample;
  /** Images the rows cover (fewer than the data's with `partial`). */
  images: number;
  /** With keepPredictions: per row, each defense's per-image predictions. */
  predictions?: Record<string, number[]>[];
}

/**
 * Run the sweep; returns every row (including rows of cells loaded from a
 * resumed results file) and the picture-grid sample when asked for.
 */
export async function sweep(opts: SweepOptions): Promise<SweepResult> {
  const run = planRun(opts);
  resumeCells(run);
  const failure = await runPending(run, resultsSaver(run));
  if (opts.partial && failure === undefined) return finishedPrefix(run);
  throwIfUnfinished(run, failure);
  return resultOf(run, run.plan, datasetSize(opts.data));
}

function resultOf(run: SweepRun, plan: PlannedRow[], images: number): SweepResult {
  const { results, defenses } = run;
  const out: SweepResult = { rows: plan.map((row) => mergeRow(row, results, defenses)), images };
  const grid = gridFrom(plan, results);
  if (grid) out.grid = grid;
  const predictions = plan.map((row) => rowPredictions(row, results, defenses));
  if (plan.length > 0 && predictions.every((p) => p !== undefined)) out.predictions = predictions;
  return out;
}

/** The rows over the first shards that are finished in every row (none: no rows, 0 images). */
function finishedPrefix(run: SweepRun): SweepResult {
  const missing = run.tasks.filter((t) => !run.results.has(t.id)).map((t) => t.cell.shard);
  if (missing.length === 0) return resultOf(run, run.plan, datasetSize(run.opts.data));
  const shards = Math.min(...missing);
  const plan = run.plan.map((row) => ({ ...row, tasks: row.tasks.filter((t) => t.cell.shard < shards) }));
  if (shards === 0) return { rows: [], images: 0 };
  const counts = new Map<number, number>();
  for (const t of run.tasks) if (t.cell.shard < shards) counts.set(t.cell.shard, t.count);
  return resultOf(
    run,
    plan,
    [...counts.values()].reduce((a, b) => a + b, 0),
  );
}

/** Checks the options and cuts the sweep into cells. */
function planRun(opts: SweepOptions): SweepRun {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const n = datasetSize(opts.data);
  const seed = checkInt(opts.seed ?? 0, "seed", 0);
  const shardSize = checkInt(opts.shardSize ?? n, "shardSize", 1);
  const defenses = opts.defenses.map((d) => d.name);
  const fingerprint = {
    ...(opts.fingerprint ?? {}),
    mode: opts.mode,
    epsilons: opts.epsilons,
    attacks: opts.attacks.map((a) => (a.epsilons ? { name: a.name, epsilons: a.epsilons } : a.name)),
    defenses,
    samples: n,
    passes: opts.passes,
    seed,
    shardSize,
  };
  const plan = planSweep({
    attacks: opts.attacks,
    epsilons: opts.epsilons,
    mode: opts.mode,
    defenses,
    images: n,
    shardSize,
    seed,
    gridImages: opts.gridImages,
    gridEpsilon: opts.gridEpsilon,
  });
  const tasks = uniqueTasks(plan);
  const stopAt =
    opts.maxSeconds === undefined ? undefined : Date.now() + checkNumber(opts.maxSeconds, "maxSeconds", 0) * 1000;
  const runner = opts.runner ?? localRunner(opts, stopAt);
  return { opts, log, defenses, fingerprint, plan, tasks, results: new Map(), runner };
}

function rowComplete(row: PlannedRow, results: ReadonlyMap<string, CellResult>): boolean {
  return row.tasks.every((t) => results.has(t.id));
}

/** Takes the finished cells of a results file made with the same settings. */
function resumeCells(run: SweepRun): void {
  const { opts, plan, tasks, results } = run;
  const previous = opts.resultsFile ? loadResults(opts.resultsFile, run.fingerprint) : undefined;
  for (const t of tasks) {
    const r = previous?.cells[t.id];
    if (r) results.set(t.id, r);
  }
  for (const file of opts.mergeFrom ?? []) {
    const other = loadResults(file, run.fingerprint);
    const taken = tasks.filter((t) => !results.has(t.id) && other?.cells[t.id]);
    for (const t of taken) results.set(t.id, other!.cells[t.id]);
    if (taken.length > 0) run.log(`evaluate: took ${taken.length} cells from ${file}`);
  }
  if (results.size > 0) {
    run.log(
      `evaluate: resuming ${opts.resultsFile} (${plan.filter((row) => rowComplete(row, results)).length} rows, ${results.size} of ${tasks.length} cells already done)`,
    );
  }
}

/** Writes the results file: when forced, or when the runner's least interval since the last write has passed. */
function resultsSaver(run: SweepRun): (force: boolean) => void {
  const { opts, plan, tasks, results, defenses } = run;
  let lastSave = 0;
  return (force) => {
    if (!opts.resultsFile) return;
    const now = Date.now();
    if (!force && now - lastSave < (opts.runner?.saveIntervalMs ?? 0)) return;
    lastSave = now;
    writeJsonAtomic(opts.resultsFile, {
      format: FORMAT,
      fingerprint: run.fingerprint,
      rows: plan.filter((row) => rowComplete(row, results)).map((row) => mergeRow(row, results, defenses)),
      cells: Object.fromEntries(tasks.filter((t) => results.has(t.id)).map((t) => [t.id, results.get(t.id)!])),
    } satisfies ResultsFile);
  };
}

/**
 * Runs the cells not yet finished, keeping each result, saving and logging the
 * rows it completes; returns what the runner threw, if anything.
 */
async function runPending(run: SweepRun, save: (force: boolean) => void): Promise<unknown> {
  const { opts, plan, tasks, results, defenses, log } = run;
  const rowsOf = new Map<string, PlannedRow[]>();
  for (const row of plan) for (const t of row.tasks) rowsOf.set(t.id, [...(rowsOf.get(t.id) ?? []), row]);

  const pending = tasks.filter((t) => !results.has(t.id) && (opts.only?.(t) ?? true));
  // Shard by shard when a run may stop early: what it finished is then whole rows on the first images.
  if (opts.partial) pending.sort((a, b) => a.cell.shard - b.cell.shard);
  const bar = new SweepProgress(
    `${opts.mode} sweep`,
    pending,
    opts.quiet || pending.length === 0 ? silentProgress : (opts.progress ?? silentProgress),
  );
  let failure: unknown;
  try {
    await run.runner.run(pending, {
      started: (t) => bar.started(t),
      images: (t, done) => bar.images(t, done),
      retried: (t, reason) => {
        bar.retried(t);
        if (!opts.quiet) log(`evaluate: ${describeTask(t)} runs again (${reason})`);
      },
      done: (t, r) => {
        if (results.has(t.id) || !rowsOf.has(t.id)) return;
        results.set(t.id, r);
        bar.done(t);
        const finished = rowsOf.get(t.id)!.filter((row) => rowComplete(row, results));
        save(false);
        for (const row of finished) log(rowLine(mergeRow(row, results, defenses)));
      },
    });
  } catch (e) {
    failure = e;
  } finally {
    bar.stop();
    save(true);
  }
  return failure;
}

/** Throws when the runner failed or cells are missing: a VaeguardError saying what is stored, or the runner's own error. */
function throwIfUnfinished(run: SweepRun, failure: unknown): void {
  const { opts, tasks, results } = run;
  const missing = tasks.filter((t) => !results.has(t.id)).length;
  if (failure !== undefined || missing > 0) {
    const where = opts.resultsFile ? ` in ${opts.resultsFile}` : "";
    const kept = `${tasks.length - missing} of ${tasks.length} cells are stored${where}; the same command resumes`;
    if (failure !== undefined && !(failure instanceof VaeguardError)) throw failure;
    const reason =
      failure instanceof Error ? failure.message : `the cells ran ${run.runner.where} but ${missing} never finished`;
    throw new VaeguardError(`${reason} (${kept})`, { cause: failure });
  }
}

function rowLine(row: ResultRow): string {
  const accs = Object.entries(row.accuracy)
    .map(([d, a]) => `${d} ${a.toFixed(3)}`)
    .join(", ");
  return `${row.attack} (${row.mode}) eps ${row.epsilon}: rel-L2 ${row.relL2.toFixed(3)}; ${accs}`;
}
