/** `vaeguard queue status`: what the job queue of distributed evaluations holds. */
import type { Command } from "commander";
import { parseRedisUrl } from "../queue/connection.js";
import { queueStatus, renderStatus } from "../queue/status.js";
import { runAction } from "./common.js";

export function register(program: Command): void {
  const queue = program
    .command("queue")
    .description("the job queue of distributed evaluations (see `vaeguard worker`)");
  queue
    .command("status")
    .description("job counts by state, connected workers, runs with their cells by state, running and failed cells")
    .requiredOption("--queue <url>", "the Redis server of the queue (redis://HOST:PORT)")
    .option("--json", "print the status as JSON on stdout")
    .action((opts: { queue: string; json?: boolean }) =>
      runAction(async () => {
        const status = await queueStatus(parseRedisUrl(opts.queue));
        console.log(opts.json ? JSON.stringify(status, null, 2) : renderStatus(status));
      }),
    );
}
