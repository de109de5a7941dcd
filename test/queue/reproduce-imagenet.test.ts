/**
 * `vaeguard reproduce imagenet --queue`: the patch VAEs are trained in the
 * coordinator's process, then the cells of Tables 6 and 7 (one image each)
 * run on two workers through a real redis-server on loopback. Each worker
 * loads the 299x299 evaluation images, the TF.js classifier and the patch
 * VAEs by content hash; the results file, the table, the claims and the
 * report are those of a run in one process.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanUp, startWorker, stableReport } from "../helpers/queue-run.js";
import { NO_REDIS_MESSAGE, TestRedis, hasRedisServer } from "../helpers/redis.js";
import { writeNipsFixture } from "../helpers/nips2017.js";

const skip = hasRedisServer() ? false : NO_REDIS_MESSAGE;
const bin = join(process.cwd(), "bin", "vaeguard.js");
const env = { ...process.env, VAEGUARD_THREADS: "1", VAEGUARD_QUEUE_POLL_MS: "500" };
let dir = "";
let fixture: { images: string; model: string };
let redis: TestRedis | undefined;
const workers: ChildProcess[] = [];

function settings(out: string, extra: string[] = []): string[] {
  return [
    ...["reproduce", "imagenet", "--quick", "--images", fixture.images, "--model", fixture.model],
    ...["--patch-sizes", "16,32", "--max-epochs", "1", "--eps", "0,0.03", "--ifgsm-eps", "0.03"],
    ...["--eval-batch-size", "1", "--checkpoints", join(dir, "ck"), "--out", out, "--quiet", "--json", ...extra],
  ];
}

function run(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { env, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return { result: JSON.parse(r.stdout) as { rows: unknown[]; claims: unknown[] }, stderr: r.stderr };
}

const UNSTABLE = /vaeguard reproduce|Created|## Time|^Data \d+ s/;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "vaeguard-queue-nips-"));
  fixture = await writeNipsFixture(dir);
  redis = new TestRedis();
  await redis.start();
});

after(() => cleanUp(workers, redis, dir));

test(
  "reproduce imagenet --queue gives the results file, table, claims and report of a run in one process",
  { skip },
  async () => {
    const local = join(dir, "local");
    const reference = run(settings(local)).result;
    assert.equal(reference.rows.length, 4);

    const url = redis!.url;
    const queued = join(dir, "queued");
    const pool = [startWorker(workers, url, env), startWorker(workers, url, env)];
    const r = run(settings(queued, ["--queue", url]));
    assert.match(r.stderr, new RegExp(`queue: 9 cells queued on ${url}`));
    assert.deepEqual(r.result.rows, reference.rows);
    assert.deepEqual(r.result.claims, reference.claims);
    for (const f of ["sweep-gray-box.json", "results.csv"]) {
      assert.equal(readFileSync(join(queued, f), "utf8"), readFileSync(join(local, f), "utf8"), f);
    }
    assert.equal(stableReport(queued, UNSTABLE), stableReport(local, UNSTABLE));
    for (const w of pool) w.kill("SIGTERM");
    await Promise.all(pool.map((w) => new Promise((resolve) => w.once("exit", resolve))));
  },
);
