/**
 * Dynamic batching: the batcher on its own (grouping by key, batch size
 * limit, bounded queue, timeouts, errors) and through the server (concurrent
 * requests share one libtorch batch, shown by the batch-size metric; a full
 * queue answers 503 with Retry-After).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { DynamicBatcher } from "../../src/serve/batching.js";
import { HttpError } from "../../src/serve/errors.js";
import type { Server } from "../../src/serve/server.js";
import { digitImage, makeFixture, makeServer, metricValue, type Fixture } from "./helpers.js";

/** A runner that records its batches and finishes only when released. */
function gatedRunner() {
  const batches: number[][] = [];
  let release: () => void = () => {};
  let gate = new Promise<void>((r) => (release = r));
  return {
    batches,
    release: () => release(),
    reset: () => (gate = new Promise<void>((r) => (release = r))),
    run: async (items: number[]) => {
      batches.push(items);
      await gate;
      return items.map((i) => i * 10);
    },
  };
}

test("items submitted together under one key run as one batch, in order", async () => {
  const b = new DynamicBatcher({ windowMs: 20 });
  const r = gatedRunner();
  r.release();
  const out = await Promise.all([1, 2, 3, 4, 5].map((i) => b.submit("k", i, r.run)));
  assert.deepEqual(out, [10, 20, 30, 40, 50]);
  assert.deepEqual(r.batches, [[1, 2, 3, 4, 5]]);
});

test("different keys never share a batch", async () => {
  const b = new DynamicBatcher({ windowMs: 20, concurrency: 2 });
  const r = gatedRunner();
  r.release();
  await Promise.all([b.submit("a", 1, r.run), b.submit("b", 2, r.run), b.submit("a", 3, r.run)]);
  assert.deepEqual(r.batches.map((x) => x.join(",")).sort(), ["1,3", "2"]);
});

test("batches hold at most maxBatchSize items; a full batch starts without waiting for the window", async () => {
  const b = new DynamicBatcher({ windowMs: 60000, maxBatchSize: 4, concurrency: 3 });
  const r = gatedRunner();
  r.release();
  const all = b.submitAll("k", [1, 2, 3, 4, 5, 6, 7, 8], r.run);
  assert.deepEqual(await all, [10, 20, 30, 40, 50, 60, 70, 80]);
  assert.deepEqual(r.batches, [
    [1, 2, 3, 4],
    [5, 6, 7, 8],
  ]);
});

/** The end of this turn of the event loop, when a batch submitted in it has started. */
const turn = () => new Promise<void>((res) => setImmediate(res));

test("items submitted in one turn of the event loop share a batch even with no window", async () => {
  const b = new DynamicBatcher({ windowMs: 0, concurrency: 1 });
  const r = gatedRunner();
  r.release();
  const out = await Promise.all([1, 2, 3].map((i) => b.submit("k", i, r.run)));
  assert.deepEqual(out, [10, 20, 30]);
  assert.deepEqual(r.batches, [[1, 2, 3]]);
});

test("while a batch runs, new items gather into the next batch", async () => {
  const b = new DynamicBatcher({ windowMs: 0, concurrency: 1 });
  const r = gatedRunner();
  const first = b.submit("k", 1, r.run);
  await turn();
  const rest = Promise.all([2, 3, 4].map((i) => b.submit("k", i, r.run)));
  assert.equal(b.depth, 3);
  assert.equal(b.active, 1);
  r.release();
  await first;
  await rest;
  assert.deepEqual(r.batches, [[1], [2, 3, 4]]);
});

test("past queueLimit a request is refused whole with 503 and Retry-After, and nothing of it runs", async () => {
  const b = new DynamicBatcher({ windowMs: 0, concurrency: 1, queueLimit: 3 });
  const r = gatedRunner();
  const running = b.submit("k", 1, r.run); // starts at the end of this turn, leaving the queue empty
  await turn();
  const queued = b.submitAll("k", [2, 3], r.run);
  await assert.rejects(b.submitAll("k", [4, 5], r.run), (e: unknown) => {
    assert.ok(e instanceof HttpError);
    assert.equal(e.status, 503);
    assert.equal(e.code, "overloaded");
    assert.equal(e.message, "The server is at capacity (3 images waiting); retry after a second");
    assert.deepEqual(e.headers, { "retry-after": "1" });
    return true;
  });
  assert.equal(b.depth, 2);
  r.release();
  await running;
  assert.deepEqual(await queued, [20, 30]);
  assert.deepEqual(r.batches, [[1], [2, 3]]);
});

test("an item that waited longer than timeoutMs is answered 503 instead of run late", async () => {
  const b = new DynamicBatcher({ windowMs: 0, concurrency: 1, timeoutMs: 30 });
  const r = gatedRunner();
  const running = b.submit("k", 1, r.run);
  await turn();
  const late = b.submit("k", 2, r.run);
  await new Promise((res) => setTimeout(res, 80));
  r.release();
  await running;
  await assert.rejects(late, (e: unknown) => e instanceof HttpError && e.status === 503 && e.code === "timeout");
  assert.deepEqual(r.batches, [[1]]);
});

test("a failing batch fails each of its items with the runner's error; later batches run", async () => {
  const b = new DynamicBatcher({ windowMs: 5 });
  let calls = 0;
  const run = async (items: number[]) => {
    calls++;
    if (calls === 1) throw new Error("boom");
    return items;
  };
  const failed = await Promise.allSettled([b.submit("k", 1, run), b.submit("k", 2, run)]);
  assert.deepEqual(
    failed.map((x) => x.status === "rejected" && (x.reason as Error).message),
    ["boom", "boom"],
  );
  assert.equal(await b.submit("k", 3, run), 3);
});

test("close() refuses waiting items with 503", async () => {
  const b = new DynamicBatcher({ windowMs: 60000 });
  const waiting = b.submit("k", 1, async (x: number[]) => x);
  b.close();
  await assert.rejects(waiting, (e: unknown) => e instanceof HttpError && e.code === "shutting_down");
  await assert.rejects(
    b.submit("k", 2, async (x: number[]) => x),
    (e: unknown) => e instanceof HttpError && e.status === 503,
  );
});

serverTests();

function serverTests(): void {
  let f: Fixture;
  let png: Buffer;
  before(async () => {
    f = makeFixture(["vae"]);
    png = await digitImage("png");
  });
  after(() => f.cleanup());

  const purify = (s: Server, url = "/v1/purify?defense=vae") =>
    s.app.inject({ method: "POST", url, headers: { "content-type": "image/png" }, payload: png });

  test("concurrent purify requests share one model batch (batch-size metric)", async () => {
    // The batch starts when 8 images are there (the window is far longer than the test).
    const s = makeServer(f, { batching: { windowMs: 60000, maxBatchSize: 8 } });
    try {
      const replies = await Promise.all(Array.from({ length: 8 }, () => purify(s)));
      assert.deepEqual(
        replies.map((r) => r.statusCode),
        Array(8).fill(200),
      );
      const text = (await s.app.inject({ method: "GET", url: "/metrics" })).body;
      assert.equal(metricValue(text, 'vaeguard_batch_size_count{operation="purify"}'), 1);
      assert.equal(metricValue(text, 'vaeguard_batch_size_sum{operation="purify"}'), 8);
      assert.equal(metricValue(text, 'vaeguard_batch_size_bucket{le="4",operation="purify"}'), 0);
      assert.equal(metricValue(text, 'vaeguard_batch_size_bucket{le="8",operation="purify"}'), 1);
    } finally {
      await s.close();
    }
  });

  test("a full queue answers 503 with Retry-After in the error shape, counted in /metrics", async () => {
    const s = makeServer(f, { batching: { windowMs: 60000, maxBatchSize: 100, queueLimit: 2 } });
    try {
      const waiting = [purify(s), purify(s)];
      // Let both requests reach the queue (decoding is asynchronous).
      for (let i = 0; i < 200 && s.ctx.batcher.depth < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(s.ctx.batcher.depth, 2);
      const r = await purify(s);
      assert.equal(r.statusCode, 503);
      assert.equal(r.headers["retry-after"], "1");
      assert.deepEqual(r.json(), {
        error: { code: "overloaded", message: "The server is at capacity (2 images waiting); retry after a second" },
      });
      const b64 = png.toString("base64");
      const batch = await s.app.inject({ method: "POST", url: "/v1/purify", payload: { images: [b64, b64, b64] } });
      assert.equal(batch.statusCode, 503);
      const text = (await s.app.inject({ method: "GET", url: "/metrics" })).body;
      assert.equal(metricValue(text, 'vaeguard_rejected_total{reason="overloaded"}'), 2);
      assert.equal(metricValue(text, "vaeguard_queue_depth"), 2);
      await s.close();
      // Shutting down answers the waiting requests (503) instead of leaving them hanging.
      const statuses = (await Promise.all(waiting)).map((x) => x.statusCode);
      assert.deepEqual(statuses, [503, 503]);
    } finally {
      await s.close();
    }
  });
}
