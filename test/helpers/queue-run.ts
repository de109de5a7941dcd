/** Shared by the tests of `reproduce --queue`: workers as child processes, and reports compared without their run-specific lines. */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const bin = join(process.cwd(), "bin", "vaeguard.js");

/** `vaeguard worker --queue URL --threads 1`, added to `pool` so that the test's after() kills what is left. */
export function startWorker(pool: ChildProcess[], url: string, env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, [bin, "worker", "--queue", url, "--threads", "1"], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  pool.push(child);
  return child;
}

/** OUT/report.md without the lines that differ between any two runs (`unstable`: command line, time stamp, times). */
export function stableReport(out: string, unstable: RegExp): string {
  return readFileSync(join(out, "report.md"), "utf8")
    .split("\n")
    .filter((l) => !unstable.test(l))
    .join("\n");
}

/** after(): kill the workers still running, stop Redis, remove the test's folder. */
export async function cleanUp(pool: ChildProcess[], redis: { stop(): Promise<void> } | undefined, dir: string) {
  for (const w of pool) if (w.exitCode === null && w.signalCode === null) w.kill("SIGKILL");
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
