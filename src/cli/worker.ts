/**
 * `vaeguard worker`: takes cells of distributed evaluations from the job queue
 * on a Redis server and runs them until stopped (SIGINT/SIGTERM finish the
 * current cell first). See src/queue/worker.ts and docs/distributed.md.
 */
import type { Command } from "commander";
import { parseRedisUrl } from "../queue/connection.js";
import { runWorker } from "../queue/worker.js";
import { runAction } from "./common.js";
import { parseIntArg, parseThreadsArg } from "./args.js";

interface Opts {
  queue?: string;
  threads?: number;
  lockDuration?: number;
  stalledInterval?: number;
  maxCells?: number;
}

export function register(program: Command): void {
  program
    .command("worker")
    .description(
      "run cells of distributed evaluations (`vaeguard evaluate --queue`, `vaeguard reproduce --queue`) from the job queue on a Redis server",
    )
    .requiredOption("--queue <url>", "the Redis server of the queue (redis://HOST:PORT)")
    .option("--threads <n>", "libtorch threads for the cells (default: all cores)", parseThreadsArg())
    .option(
      "--lock-duration <ms>",
      "how long a cell's lock lives without renewal: a dead worker's cell runs again after about this long (default 30000)",
      parseIntArg("lock-duration", 100),
    )
    .option(
      "--stalled-interval <ms>",
      "how often this worker looks for cells of dead workers (default 30000)",
      parseIntArg("stalled-interval", 100),
    )
    .option("--max-cells <n>", "stop after this many cells (default: run until stopped)", parseIntArg("max-cells", 1))
    .addHelpText(
      "after",
      `
The worker needs the checkpoint and data files the coordinator names, at the same
paths (a shared or copied folder): every job carries each file's path and sha256,
and a worker refuses a file with another hash. Models stay loaded between cells
of the same run. Run one worker per machine with --threads equal to its cores, or
several with fewer threads each (see docs/distributed.md for measurements).`,
    )
    .action((opts: Opts) =>
      runAction(async () => {
        const target = parseRedisUrl(opts.queue!);
        await runWorker({
          target,
          threads: opts.threads,
          lockDurationMs: opts.lockDuration,
          stalledIntervalMs: opts.stalledInterval,
          maxCells: opts.maxCells,
          log: (l) => process.stderr.write(l + "\n"),
        });
      }),
    );
}
