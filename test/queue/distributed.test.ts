/**
 * Distributed evaluation against a real redis-server on loopback: a run on
 * two workers writes the same results files and table as a run in one
 * process; a worker killed with kill -9 in the middle of a cell, a coordinator
 * killed and started again, and Redis restarted (with and without its data)
 * all end with the same table, each cell counted once; a Redis that stays
 * away, and a worker whose checkpoint is another file than the coordinator's,
 * stop the run with one line and no report.
 *
 * Tiny models trained here on 300 images, 8 test images in cells of 4, one
 * libtorch thread per process, locks of 1.5 s so dead workers are noticed fast.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Job, Queue } from "bullmq";
import { dispose, getNumThreads, setNumThreads } from "../../src/core/engine.js";
import { loadMnist } from "../../src/data/index.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import { ConvVae, VAE_PRESETS } from "../../src/models/vae.js";
import { trainClassifier, trainVae } from "../../src/train/trainer.js";
import type { ResultRow } from "../../src/report/types.js";
import { describeTask } from "../../src/eval/cells.js";
import { QUEUE_NAME } from "../../src/queue/connection.js";
import type { CellJobData } from "../../src/queue/jobs.js";
import type { QueueStatus } from "../../src/queue/status.js";
import { NO_REDIS_MESSAGE, TestRedis, hasRedisServer } from "../helpers/redis.js";

const skip = hasRedisServer() ? false : NO_REDIS_MESSAGE;
const bin = join(process.cwd(), "bin", "vaeguard.js");
const env = { ...process.env, VAEGUARD_THREADS: "1", VAEGUARD_QUEUE_POLL_MS: "500" };
const threads = getNumThreads();
let dir = "";
let redis: TestRedis;
const children: ChildProcess[] = [];
const servers: TestRedis[] = [];

/** Settings of every run here: both modes, two attacks, a randomized defense, 8 images in cells of 4. */
function settings(out: string, classifier = join(dir, "clf.safetensors")): string[] {
  return [
    ...["--classifier", classifier, "--vae", join(dir, "vae.safetensors")],
    ...["--samples", "8", "--shard-size", "4", "--batch-size", "4", "--attacks", "fgsm,pgd:steps=2"],
    ...["--eps", "0,0.2", "--defenses", "none,vae", "--eot", "2", "--passes", "2", "--mode", "both"],
    ...["--out", out, "--json"],
  ];
}
const CELLS = 18; // gray-box 3 rows x 2 shards, adaptive 3 x 2 defenses x 2 shards

interface Proc {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
}

function start(args: string[]): Proc {
  const child = spawn(process.execPath, [bin, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let err = "";
  let out = "";
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  child.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
  child.stderr!.setEncoding("utf8").on("data", (c: string) => {
    err += c;
    for (const w of [...waiters]) {
      const m = err.match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    exited,
    waitFor: (re, timeoutMs = 120000) =>
      new Promise((resolve, reject) => {
        const m = err.match(re);
        if (m) return resolve(m);
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in:\n${err}`)), timeoutMs);
        waiters.push({
          re,
          resolve: (x) => {
            clearTimeout(timer);
            resolve(x);
          },
        });
        void exited.then(() => setTimeout(() => reject(new Error(`exited before ${re}:\n${err}`)), 50));
      }),
  };
}

function worker(url: string): Proc {
  return start(["worker", "--queue", url, "--threads", "1", "--lock-duration", "1500", "--stalled-interval", "500"]);
}

/** SIGTERM (finish the cell, then stop), SIGKILL after 10 s. */
async function stopAll(procs: Proc[]): Promise<void> {
  const running = procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
  for (const p of running) p.child.kill("SIGTERM");
  const timer = setTimeout(() => running.forEach((p) => p.child.kill("SIGKILL")), 10000);
  await Promise.all(running.map((p) => p.exited));
  clearTimeout(timer);
}

/** The coordinator's exit code and rows (its --json output). */
async function finished(p: Proc): Promise<{ code: number | null; rows: ResultRow[] }> {
  const code = await p.exited;
  const rows = code === 0 ? (JSON.parse(p.stdout()) as { rows: ResultRow[] }).rows : [];
  return { code, rows };
}

async function jobsIn(url: string): Promise<Job<CellJobData>[]> {
  const port = Number(new URL(url).port);
  const db = Number(new URL(url).pathname.slice(1) || 0);
  const queue = new Queue<CellJobData>(QUEUE_NAME, { connection: { host: "127.0.0.1", port, db } });
  try {
    return (await queue.getJobs(["completed", "failed", "active", "waiting", "delayed"], 0, -1)) as Job<CellJobData>[];
  } finally {
    await queue.close();
  }
}

let reference: ResultRow[] = [];
let referenceOut = "";

before(async () => {
  if (skip) return;
  setNumThreads(1);
  dir = mkdtempSync(join(tmpdir(), "vaeguard-queue-"));
  const train = loadMnist({ split: "train", limit: 300 });
  try {
    const common = { train, epochs: 1, batchSize: 50, lr: 1e-3, seed: 0, quiet: true, log: () => {} };
    const clf = await trainClassifier({
      ...common,
      makeModel: () => new MnistCnn(),
      checkpoint: join(dir, "clf.safetensors"),
    });
    clf.model.dispose();
    const vae = await trainVae({
      ...common,
      makeModel: () => new ConvVae(VAE_PRESETS.mnist),
      checkpoint: join(dir, "vae.safetensors"),
      loss: { beta: 0.01, reconstruction: "bce" },
    });
    vae.model.dispose();
    // Another classifier: same architecture, other weights.
    const other = await trainClassifier({
      ...common,
      seed: 1,
      makeModel: () => new MnistCnn(),
      checkpoint: join(dir, "other-clf.safetensors"),
    });
    other.model.dispose();
  } finally {
    dispose(train);
  }
  redis = new TestRedis();
  servers.push(redis);
  await redis.start();
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const s of servers) await s.stop();
  setNumThreads(threads);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test(
  "two workers give the same results files and table as one process; queue status lists the run",
  { skip },
  async () => {
    referenceOut = join(dir, "local");
    const local = spawnSync(process.execPath, [bin, "evaluate", ...settings(referenceOut)], { env, encoding: "utf8" });
    assert.equal(local.status, 0, local.stderr);
    reference = (JSON.parse(local.stdout) as { rows: ResultRow[] }).rows;
    assert.equal(reference.length, 8);
    assert.ok(reference.some((r) => r.relL2 > 0 && r.accuracy["No defense"] < 1));

    const url = `${redis.url}/0`;
    const out = join(dir, "two-workers");
    const workers = [worker(url), worker(url)];
    const coordinator = start(["evaluate", ...settings(out), "--queue", url]);
    const { code, rows } = await finished(coordinator);
    assert.equal(code, 0, coordinator.stderr());
    assert.deepEqual(rows, reference);
    for (const f of ["sweep-gray-box.json", "sweep-adaptive.json", "results.csv"]) {
      assert.equal(readFileSync(join(out, f), "utf8"), readFileSync(join(referenceOut, f), "utf8"), f);
    }
    assert.match(coordinator.stderr(), new RegExp(`queue: 6 cells queued on ${url} in \\d+ ms`));
    // Both workers took cells.
    await new Promise((r) => setTimeout(r, 200));
    for (const w of workers) assert.match(w.stderr(), /done in/);

    const status = spawnSync(process.execPath, [bin, "queue", "status", "--queue", url, "--json"], {
      env,
      encoding: "utf8",
    });
    assert.equal(status.status, 0, status.stderr);
    const s = JSON.parse(status.stdout) as QueueStatus;
    assert.equal(s.counts.completed, CELLS);
    assert.equal(s.counts.failed, 0);
    assert.equal(s.workers.length, 2);
    assert.deepEqual(s.runs.map((r) => r.modes.join()).sort(), ["adaptive", "gray-box"]);
    await stopAll(workers);
    for (const w of workers) assert.match(w.stderr(), /stopping after the current cell/);
  },
);

test(
  "a worker killed with kill -9 in the middle of a cell: another worker runs it again, same table",
  { skip },
  async () => {
    const url = `${redis.url}/1`;
    const out = join(dir, "killed-worker");
    const coordinator = start(["evaluate", ...settings(out), "--queue", url]);
    const victim = worker(url);
    // The first cell loads the models and data in the worker: the kill lands in the middle of it.
    const [, cell] = await victim.waitFor(/worker: cell (.+) started\n/);
    victim.child.kill("SIGKILL");
    await victim.exited;
    assert.doesNotMatch(victim.stderr(), /done in/);
    const rescuer = worker(url);
    const { code, rows } = await finished(coordinator);
    assert.equal(code, 0, coordinator.stderr());
    assert.deepEqual(rows, reference);
    assert.equal(
      readFileSync(join(out, "sweep-adaptive.json"), "utf8"),
      readFileSync(join(referenceOut, "sweep-adaptive.json"), "utf8"),
    );
    assert.match(coordinator.stderr(), /runs again \(its worker stopped renewing the lock/);
    assert.match(rescuer.stderr(), new RegExp(`cell ${cell.replace(/[()[\]\\.+*?^$|{}]/g, "\\$&")} done in`));
    // Every cell finished exactly once; the killed one after a stall.
    const jobs = await jobsIn(url);
    assert.equal(jobs.length, CELLS);
    assert.ok(jobs.every((j) => j.finishedOn !== undefined && j.returnvalue !== null));
    const killed = jobs.find((j) => describeTask(j.data.task) === cell)!;
    assert.ok(killed.stalledCounter >= 1, `stalled ${killed.stalledCounter} times`);
    await stopAll([rescuer]);
  },
);

test("the coordinator killed and started again takes what the workers finished meanwhile", { skip }, async () => {
  const url = `${redis.url}/2`;
  const out = join(dir, "killed-coordinator");
  const w = worker(url);
  const first = start(["evaluate", ...settings(out), "--queue", url]);
  await first.waitFor(/eps 0: rel-L2/);
  first.child.kill("SIGKILL");
  await first.exited;
  // The worker goes on with the queued cells while no coordinator runs.
  // (Gray-box has 6 cells; the adaptive ones are queued once a coordinator gets there.)
  await w.waitFor(/(done in[^]*){6}/);
  const second = start(["evaluate", ...settings(out), "--queue", url]);
  const { code, rows } = await finished(second);
  assert.equal(code, 0, second.stderr());
  assert.deepEqual(rows, reference);
  const [, already] = second.stderr().match(/\((\d+) already finished there\)/) ?? [];
  assert.ok(Number(already) > 0, second.stderr());
  assert.equal((await jobsIn(url)).length, CELLS);
  await stopAll([w]);
});

for (const persistent of [true, false]) {
  test(
    `Redis killed and restarted mid-run ${persistent ? "with its append-only file" : "empty"}: the run recovers, same table`,
    { skip },
    async () => {
      const server = new TestRedis(persistent);
      servers.push(server);
      await server.start();
      const out = join(dir, `redis-restart-${persistent}`);
      const w = worker(server.url);
      const coordinator = start(["evaluate", ...settings(out), "--queue", server.url]);
      await coordinator.waitFor(/eps 0: rel-L2/);
      await server.kill();
      await new Promise((r) => setTimeout(r, 1000));
      await server.start();
      const { code, rows } = await finished(coordinator);
      assert.equal(code, 0, coordinator.stderr());
      assert.deepEqual(rows, reference);
      if (!persistent) assert.match(coordinator.stderr(), /Redis no longer has \d+ unfinished cells .*; queued again/);
      await stopAll([w]);
      await server.stop();
    },
  );
}

test("Redis gone for good, or never there: one line, exit code 2, no report", { skip }, async () => {
  const server = new TestRedis();
  servers.push(server);
  await server.start();
  const out = join(dir, "redis-gone");
  const w = worker(server.url);
  const coordinator = start(["evaluate", ...settings(out), "--queue", server.url, "--queue-timeout", "2"]);
  await coordinator.waitFor(/eps 0: rel-L2/);
  await server.kill();
  const code = await coordinator.exited;
  assert.equal(code, 2);
  const last = coordinator.stderr().trim().split("\n").at(-1)!;
  assert.match(
    last,
    new RegExp(
      `^vaeguard: error: lost the connection for 2 s to Redis at ${server.url} \\(.+\\) \\(\\d+ of 6 cells are stored in .*sweep-gray-box\\.json; the same command resumes\\)$`,
    ),
  );
  assert.ok(!existsSync(join(out, "report.md")));
  assert.ok(existsSync(join(out, "sweep-gray-box.json")));
  await stopAll([w]);

  const never = spawnSync(process.execPath, [bin, "evaluate", ...settings(join(dir, "never")), "--queue", server.url], {
    env,
    encoding: "utf8",
  });
  assert.equal(never.status, 2);
  assert.match(
    never.stderr.trim().split("\n").at(-1)!,
    /^vaeguard: error: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/,
  );
});

test("a worker refuses a checkpoint that is not the one the coordinator named: one line", { skip }, async () => {
  const url = `${redis.url}/3`;
  const clf = join(dir, "copy-clf.safetensors");
  copyFileSync(join(dir, "clf.safetensors"), clf);
  const coordinator = start(["evaluate", ...settings(join(dir, "mismatch"), clf), "--queue", url]);
  await coordinator.waitFor(/cells queued/);
  // Another file at the same path on the worker's side.
  copyFileSync(join(dir, "other-clf.safetensors"), clf);
  const w = worker(url);
  const code = await coordinator.exited;
  assert.equal(code, 2, coordinator.stderr());
  const last = coordinator.stderr().trim().split("\n").at(-1)!;
  assert.match(
    last,
    /^vaeguard: error: cell .+ failed on worker [^:]+:\d+: .*copy-clf\.safetensors: has sha256 [0-9a-f]{12} but the run names [0-9a-f]{12}: this is another checkpoint than the coordinator's; copy its file here \(\d+ of 6 cells/,
  );
  assert.match(w.stderr(), /failed: .*copy-clf\.safetensors: has sha256/);
  await stopAll([w]);
});

test("a bad --queue URL: one line, exit code 2", () => {
  const r = spawnSync(process.execPath, [bin, "queue", "status", "--queue", "http://localhost:6379"], {
    env,
    encoding: "utf8",
  });
  assert.equal(r.status, 2);
  assert.equal(
    r.stderr.trim(),
    'vaeguard: error: Expected a Redis URL like redis://HOST:PORT for --queue but received "http://localhost:6379"',
  );
});
