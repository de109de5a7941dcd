/**
 * Jobs side by side in worker threads (core/job-threads.ts, job-thread.ts,
 * concurrency.ts): each thread draws the random numbers its seed gives, as if
 * alone, while others draw at the same time; data is shared without a copy
 * and nothing shared is left behind; the first failure stops the other jobs
 * and comes back as the class it was thrown as; the thread counts are
 * restored; messages keep their order.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { dispose, getNumThreads, setNumThreads, tidy } from "../../src/core/engine.js";
import { CheckpointError, VaeguardError, exitCodeOf } from "../../src/core/errors.js";
import { JobThreads } from "../../src/core/job-threads.js";
import { getBlasThreads, setBlasThreads, setProcessThreads, sharedTensorCount } from "../../src/core/concurrency.js";
import type { Progress } from "../../src/core/progress.js";
import { shareDataset } from "../../src/data/shared.js";
import { randomMnistLike } from "../helpers/random-data.js";
import { JOB_FIXTURE_ROLE, draws, type FixtureJob } from "../helpers/job-fixture.js";

const module = new URL("../helpers/job-fixture.js", import.meta.url);

function start(data: FixtureJob[], onMessage?: (thread: number, m: unknown) => void, extra = {}) {
  return JobThreads.start({ module, role: JOB_FIXTURE_ROLE, data, threadsPerJob: 1, onMessage, ...extra });
}

test("each thread draws what its seed gives alone, while other threads and the main thread draw too", async () => {
  const alone = new Map([5, 6].map((s) => [s, draws(s)]));
  const mainAlone = draws(9);
  const got = new Map<number, unknown>();
  const jobs = await start(
    [
      { draw: 5, rounds: 40 },
      { draw: 6, rounds: 40 },
      { draw: 5, rounds: 40 },
    ],
    (thread, m) => got.set(thread, m),
  );
  // The main thread keeps drawing from its own generator meanwhile.
  let mainRounds = 0;
  const finished = jobs.finished().then(() => true);
  while (!(await Promise.race([finished, new Promise((r) => setImmediate(() => r(false)))]))) {
    assert.deepEqual(draws(9), mainAlone);
    mainRounds++;
  }
  assert.ok(mainRounds > 0);
  assert.deepEqual(got.get(0), alone.get(5));
  assert.deepEqual(got.get(1), alone.get(6));
  assert.deepEqual(got.get(2), alone.get(5));
  assert.notDeepEqual(alone.get(5), alone.get(6));
});

test("a data set is shared without a copy, and no shared tensor is left behind", async () => {
  const ds = randomMnistLike(7);
  try {
    const expected = tidy(() => [ds.images.sum().item(), ds.labels.sum().item()]);
    const got: unknown[] = [];
    const jobs = await start([{ sum: shareDataset(ds) }, { sum: shareDataset(ds) }], (_, m) => got.push(m));
    await jobs.finished();
    assert.deepEqual(got, [expected, expected]);
    assert.equal(sharedTensorCount(), 0);
  } finally {
    dispose([ds.images, ds.labels]);
  }
});

test("the first failure stops the other job and keeps its class, file and exit code; thread counts are restored", async () => {
  const threads = getNumThreads();
  const blas = getBlasThreads();
  const lines: string[] = [];
  const bars: { label: string; stopped: boolean }[] = [];
  const progress = (label: string): Progress => {
    const bar = { label, stopped: false };
    bars.push(bar);
    return { update: () => undefined, stop: () => (bar.stopped = true) };
  };
  let jobs: JobThreads | undefined = undefined;
  const tell = (thread: number, m: unknown) => thread === 0 && m === "spinning" && jobs!.post(1, "now");
  jobs = await start([{ spin: true }, { fail: "checkpoint", wait: true }], tell, {
    log: (l: string) => lines.push(l),
    progress,
    threadsPerJob: 2,
  });
  const e = await jobs.finished().then(
    () => assert.fail("expected a failure"),
    (x: unknown) => x,
  );
  assert.ok(e instanceof CheckpointError);
  assert.equal(e.file, "/tmp/broken.safetensors");
  assert.equal(e.message, "/tmp/broken.safetensors: is damaged");
  assert.equal(exitCodeOf(e), 2);
  assert.deepEqual(lines, ["failing now"]);
  // The spinning job's bar was started, then stopped with its thread.
  assert.deepEqual(bars, [{ label: "spinning", stopped: true }]);
  assert.equal(getNumThreads(), threads);
  assert.equal(getBlasThreads(), blas);
});

test("a plain error in a job stays an internal error (exit code 1)", async () => {
  const jobs = await start([{ fail: "plain" }], undefined, { log: () => undefined });
  const e = await jobs.finished().catch((x: unknown) => x);
  assert.ok(e instanceof Error && !(e instanceof VaeguardError));
  assert.equal((e as Error).message, "a bug");
  assert.equal(exitCodeOf(e), 1);
});

test("job messages arrive in order both ways", async () => {
  const got: unknown[] = [];
  const jobs = await start([{ echo: true }], (_, m) => got.push(m));
  for (const m of [1, "two", { three: 3 }, "stop"]) jobs.post(0, m);
  await jobs.finished();
  assert.deepEqual(got, [1, "two", { three: 3 }]);
});

test(
  "a process's --threads sets OpenBLAS's pool as well as libtorch's threads",
  { skip: getBlasThreads() === undefined && "this libtorch's BLAS is not OpenBLAS" },
  () => {
    const threads = getNumThreads();
    const blas = getBlasThreads()!;
    try {
      setBlasThreads(2);
      setProcessThreads(1);
      assert.equal(getNumThreads(), 1);
      // Before the fix OpenBLAS kept its pool of one thread per core, spinning beside a one-thread job.
      assert.equal(getBlasThreads(), 1);
    } finally {
      setNumThreads(threads);
      setBlasThreads(blas);
    }
  },
);
