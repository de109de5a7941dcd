/**
 * The addon is context-aware: it loads and computes inside worker_threads, in
 * parallel with the main thread, with per-thread live-tensor counters, and a
 * worker that exits with live tensors does not disturb the process.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { memory } from "../../src/core/engine.js";
import { ones } from "../../src/core/tensor.js";
import { workload, type WorkloadResult } from "../helpers/worker-compute.js";
import { assertClose } from "../helpers/assert.js";

interface Done {
  type: "done";
  result: WorkloadResult;
  started: number;
  finished: number;
  liveAtEnd: number;
}

const workerUrl = new URL("../helpers/worker-compute.js", import.meta.url);

function start(iterations: number, seed: number, leaveLive = false, startLine?: Int32Array) {
  const worker = new Worker(workerUrl, {
    workerData: { role: "vaeguard-test", iterations, seed, leaveLive, startLine },
  });
  const ready = new Promise<{ liveAtStart: number }>((resolve, reject) => {
    worker.on("message", (m: { type: string; liveAtStart: number }) => {
      if (m.type === "ready") resolve(m);
    });
    worker.once("error", reject);
  });
  const done = new Promise<Done>((resolve, reject) => {
    worker.on("message", (m: Done) => {
      if (m.type === "done") resolve(m);
    });
    worker.once("error", reject);
  });
  const exited = new Promise<number>((resolve) => worker.once("exit", resolve));
  return { worker, ready, done, exited };
}

function assertResult(actual: WorkloadResult, expected: WorkloadResult, what: string): void {
  assertClose(
    [actual.matmulSum, actual.convSum, actual.gradSum],
    [expected.matmulSum, expected.convSum, expected.gradSum],
    { atol: 1e-6, rtol: 1e-5 },
    what,
  );
}

test("workers load the addon and compute in parallel with the main thread, with correct results", async () => {
  const expected1 = workload(1);
  const expected2 = workload(2);
  // Sanity: the workload depends on its seed, so a mix-up would show.
  assert.notEqual(expected1.matmulSum, expected2.matmulSum);
  // d/dx sum(x^2) = 2x over the first 4 rows of k / 48^2 + 1.
  assertClose([expected1.gradSum], [2 * (4 * 48 + (191 * 192) / 2 / (48 * 48))], { atol: 0, rtol: 1e-6 });

  const mainLive = memory().numTensors;
  const held = ones([3]);
  // The workers wait at a shared start line, and the main thread computes until both have finished an iteration
  // (150 iterations at least): they overlap by construction, however the machine's load schedules the threads,
  // and a worker that cannot compute beside the main thread stalls the loop until its cap fails the test.
  const startLine = new Int32Array(new SharedArrayBuffer(8));
  const w1 = start(150, 1, false, startLine);
  const w2 = start(150, 2, false, startLine);
  const [r1, r2] = await Promise.all([w1.ready, w2.ready]);
  // Each thread has its own counter: the main thread's tensor is not counted there.
  assert.equal(r1.liveAtStart, 0);
  assert.equal(r2.liveAtStart, 0);

  const mainStarted = Date.now();
  Atomics.store(startLine, 0, 1);
  Atomics.notify(startLine, 0);
  let mainLast: WorkloadResult | undefined;
  let iterations = 0;
  for (; iterations < 150 || (Atomics.load(startLine, 1) < 2 && iterations < 200_000); iterations++) {
    mainLast = workload(2);
  }
  const mainFinished = Date.now();
  assert.equal(
    Atomics.load(startLine, 1),
    2,
    `the workers did not compute during ${iterations} main-thread iterations`,
  );

  const [d1, d2] = await Promise.all([w1.done, w2.done]);
  assertResult(d1.result, expected1, "worker 1");
  assertResult(d2.result, expected2, "worker 2");
  assertResult(mainLast!, expected2, "main thread");
  assert.equal(d1.liveAtEnd, 0);
  // The workers were computing while the main thread was.
  for (const d of [d1, d2]) {
    assert.ok(d.started <= mainFinished && d.finished >= mainStarted, "worker and main thread did not overlap");
  }
  assert.deepEqual(await Promise.all([w1.exited, w2.exited]), [0, 0]);
  assert.equal(memory().numTensors, mainLive + 1);
  held.dispose();
  assert.equal(memory().numTensors, mainLive);
});

test("a worker that exits with live tensors, and a worker terminated mid-run, leave the process healthy", async () => {
  const w = start(2, 3, true);
  const d = await w.done;
  assert.equal(d.liveAtEnd, 1);
  assert.equal(await w.exited, 0);

  const busy = start(100000, 4);
  await busy.ready;
  await busy.worker.terminate();
  await busy.exited;

  // The addon still works here, and in a fresh worker.
  assertResult(workload(3), d.result, "main thread after workers exited");
  const again = start(1, 3);
  assertResult((await again.done).result, d.result, "a fresh worker");
  assert.equal(await again.exited, 0);
});
