/**
 * `vaeguard reproduce mnist --queue`: the models are trained in the
 * coordinator's process, then the sweep's cells run on workers through a real
 * redis-server on loopback; the results file, table and report are those of
 * a run in one process. A tiny subset (256 training images, 8 test images in
 * cells of 4), one libtorch thread per process.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ResultRow } from "../../src/report/types.js";
import { cleanUp, startWorker, stableReport } from "../helpers/queue-run.js";
import { NO_REDIS_MESSAGE, TestRedis, hasRedisServer } from "../helpers/redis.js";

const skip = hasRedisServer() ? false : NO_REDIS_MESSAGE;
const bin = join(process.cwd(), "bin", "vaeguard.js");
const env = { ...process.env, VAEGUARD_THREADS: "1", VAEGUARD_QUEUE_POLL_MS: "500" };
let dir = "";
let redis: TestRedis | undefined;
const workers: ChildProcess[] = [];

function settings(out: string, extra: string[] = []): string[] {
  return [
    ...["reproduce", "mnist", "--quick", "--train-samples", "256", "--samples", "8"],
    ...["--epochs-classifier", "1", "--epochs-vae", "1", "--eps", "0,0.1", "--defenses", "none,jpeg:23,vae"],
    ...["--shard-size", "4", "--eval-batch-size", "4", "--checkpoints", join(dir, "ck"), "--out", out],
    ...["--quiet", "--json", ...extra],
  ];
}

function run(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { env, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return { rows: (JSON.parse(r.stdout) as { rows: ResultRow[] }).rows, stderr: r.stderr };
}

const UNSTABLE = /vaeguard reproduce|Created|^Time:/;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "vaeguard-queue-repro-"));
  redis = new TestRedis();
  await redis.start();
});

after(() => cleanUp(workers, redis, dir));

for (const mode of ["gray-box", "adaptive"] as const) {
  test(
    `reproduce --queue (${mode}) gives the results file, table and report of a run in one process`,
    { skip },
    async () => {
      // Adaptive: FGSM alone through each defense (EOT over the VAE's randomness), to keep it short.
      const extra = mode === "adaptive" ? ["--mode", "adaptive", "--attacks", "fgsm"] : [];
      const local = join(dir, `local-${mode}`);
      // Trains the models (once, into ck/) and evaluates in this process.
      const reference = run(settings(local, extra)).rows;
      assert.ok(reference.some((r) => r.epsilon > 0 && r.relL2 > 0));

      const url = `${redis!.url}/${mode === "gray-box" ? 0 : 1}`;
      const queued = join(dir, `queued-${mode}`);
      const pool = [startWorker(workers, url, env), startWorker(workers, url, env)];
      const r = run(settings(queued, [...extra, "--queue", url]));
      assert.match(r.stderr, new RegExp(`queue: \\d+ cells queued on ${url}`));
      assert.deepEqual(r.rows, reference);
      for (const f of [`sweep-${mode}.json`, "results.csv"]) {
        assert.equal(readFileSync(join(queued, f), "utf8"), readFileSync(join(local, f), "utf8"), f);
      }
      assert.equal(stableReport(queued, UNSTABLE), stableReport(local, UNSTABLE));
      for (const w of pool) w.kill("SIGTERM");
      await Promise.all(pool.map((w) => new Promise((resolve) => w.once("exit", resolve))));
    },
  );
}
