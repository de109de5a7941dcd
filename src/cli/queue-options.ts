/** `--queue` and `--queue-timeout`, shared by the commands whose cells can run on workers (evaluate, reproduce). */
import type { Command } from "commander";
import type { EvaluationSetup } from "../eval/evaluation.js";
import type { CellRunner } from "../eval/sweep.js";
import { parseRedisUrl } from "../queue/connection.js";
import { QueueRunner } from "../queue/coordinator.js";
import { parseIntArg } from "./args.js";

export interface QueueOpts {
  queue?: string;
  queueTimeout?: number;
}

export function addQueueOptions(command: Command): Command {
  return command
    .option(
      "--queue <url>",
      "run the cells on workers through the job queue on this Redis server (redis://HOST:PORT); see `vaeguard worker`",
    )
    .option(
      "--queue-timeout <s>",
      "with --queue: stop when Redis has been unreachable for this many seconds (default 60)",
      parseIntArg("queue-timeout", 1),
    );
}

/** With --queue: each sweep's cells go on the queue (the URL is checked here, before any work); else undefined. */
export function queueRunners(
  opts: QueueOpts,
  restart: boolean,
  log: (line: string) => void,
): ((setup: EvaluationSetup) => CellRunner) | undefined {
  if (opts.queue === undefined) return undefined;
  const target = parseRedisUrl(opts.queue);
  return (setup) =>
    new QueueRunner({
      target,
      setup,
      restart,
      timeoutMs: (opts.queueTimeout ?? 60) * 1000,
      pollMs: Number(process.env.VAEGUARD_QUEUE_POLL_MS) || undefined,
      log,
    });
}
