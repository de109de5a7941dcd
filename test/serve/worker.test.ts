/**
 * The model worker: models loaded from files run in a worker thread with
 * their own copy (the main thread makes no tensors), with the same answers
 * as on the main thread; a worker that dies or cannot load its models
 * answers 500 in the error shape instead of leaving requests waiting, and
 * the next batch starts a new one.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { memory } from "../../src/core/engine.js";
import { loadServeModels } from "../../src/serve/models.js";
import { createServer, type Server } from "../../src/serve/server.js";
import type { WorkerRunner } from "../../src/serve/runner.js";
import { digitImage, makeFixture, makeServer, metricValue, type Fixture } from "./helpers.js";

let f: Fixture;
let png: Buffer;

before(async () => {
  f = makeFixture(["vae", "jpeg:23"]);
  png = await digitImage("png");
});
after(() => f.cleanup());

const purify = (s: Server, url = "/v1/purify?defense=vae&format=tensor") =>
  s.app.inject({ method: "POST", url, headers: { "content-type": "image/png" }, payload: png });

const crashWorker = new URL("./crash-worker.js", import.meta.url);

test("models loaded from files run in a worker, with the same answers as on the main thread", async () => {
  const worker = makeServer(f);
  const main = makeServer(f, { modelThread: "main" });
  try {
    assert.equal(worker.ctx.runner.where, "worker");
    assert.equal(main.ctx.runner.where, "main");
    await worker.ready();
    const live = memory().numTensors;
    // The worker's own count (its models' tensors) as it said when ready: batches must leave it so.
    const workerLive = worker.ctx.runner.liveTensors;
    assert.ok(workerLive > 0);
    // The VAE samples its latent code, so compare the deterministic defenses bit for bit.
    for (const defense of ["none", "jpeg:23"]) {
      const a = await purify(worker, `/v1/purify?defense=${defense}&format=tensor`);
      const b = await purify(main, `/v1/purify?defense=${defense}&format=tensor`);
      assert.equal(a.statusCode, 200);
      assert.equal(b.statusCode, 200);
      assert.deepEqual(a.rawPayload, b.rawPayload);
    }
    const v = await purify(worker);
    assert.equal(v.statusCode, 200);
    assert.equal(v.headers["x-tensor-shape"], "1,28,28");
    const body = { images: [png.toString("base64"), png.toString("base64")] };
    const ca = await worker.app.inject({ method: "POST", url: "/v1/classify", payload: body });
    const cb = await main.app.inject({ method: "POST", url: "/v1/classify", payload: body });
    assert.equal(ca.statusCode, 200);
    type Classified = { results: { predictions: { defense: string }[] }[] };
    const pick = (r: Classified) => r.results.map((x) => x.predictions.filter((p) => p.defense !== "vae"));
    assert.deepEqual(pick(ca.json() as Classified), pick(cb.json() as Classified));
    assert.equal((ca.json() as Classified).results[0].predictions.length, 3);
    const attack = await worker.app.inject({
      method: "POST",
      url: "/v1/attack",
      payload: { sample: 0, attack: "pgd:steps=2", eps: 0.1, mode: "both", defense: "vae" },
    });
    assert.equal(attack.statusCode, 200, attack.body);
    assert.equal((attack.json() as { runs: unknown[] }).runs.length, 2);
    // The worker's batches leave no tensor on the main thread.
    const again = await purify(worker);
    assert.equal(again.statusCode, 200);
    assert.equal(memory().numTensors, live);
    assert.equal(worker.ctx.runner.liveTensors, workerLive);
    const metrics = (await worker.app.inject({ method: "GET", url: "/metrics" })).body;
    assert.ok(metrics.includes(`vaeguard_live_tensors ${live + workerLive}\n`), metrics);
  } finally {
    await worker.close();
    await main.close();
  }
});

test("models built in memory run on the main thread; a worker for them is refused", () => {
  const models = { ...f.models, files: undefined };
  const s = createServer({ models });
  assert.equal(s.ctx.runner.where, "main");
  assert.throws(() => createServer({ models, modelThread: "worker" }), {
    message: "A model worker needs models loaded from files (loadServeModels)",
  });
});

for (const how of ["exit", "throw"] as const) {
  test(`a model worker that dies (${how}) answers 500 in the error shape, and the next batch starts a new one`, async () => {
    process.env.VAEGUARD_TEST_CRASH = how;
    const logged: string[] = [];
    const s = makeServer(f, { workerScript: crashWorker });
    // Quiet: the runner reports to stderr; count the reports instead.
    (s.ctx.runner as WorkerRunner as unknown as { log: (m: string) => void }).log = (m) => logged.push(m);
    try {
      await s.ready();
      for (let i = 0; i < 2; i++) {
        const r = await purify(s);
        assert.equal(r.statusCode, 500);
        assert.deepEqual(r.json(), {
          error: {
            code: "model_failed",
            message: "The model worker stopped while computing this request; it was not computed (see the server log)",
          },
        });
      }
      // Several requests in one batch all get their answer.
      const replies = await Promise.all(Array.from({ length: 4 }, () => purify(s)));
      assert.deepEqual(
        replies.map((r) => r.statusCode),
        [500, 500, 500, 500],
      );
      // The first worker ran the first batch; every later batch found it dead and started a new one.
      const text = (await s.app.inject({ method: "GET", url: "/metrics" })).body;
      const batches = metricValue(text, 'vaeguard_batch_size_count{operation="purify"}')!;
      assert.ok(batches >= 3);
      assert.equal((s.ctx.runner as WorkerRunner).starts, batches);
      assert.ok(logged.length >= 3, logged.join("\n"));
      const health = await s.app.inject({ method: "GET", url: "/healthz" });
      assert.equal(health.statusCode, 200);
      assert.equal(s.ctx.batcher.active, 0);
    } finally {
      delete process.env.VAEGUARD_TEST_CRASH;
      await s.close();
    }
  });
}

test("a model worker that cannot load its models: listen fails, requests are 500 without paths", async () => {
  const g = makeFixture(["vae"]);
  try {
    const models = loadServeModels({ classifier: g.classifierFile, vae: g.vaeFile, defenses: ["vae"] });
    rmSync(g.vaeFile);
    const logged: string[] = [];
    const s = createServer({ models });
    (s.ctx.runner as unknown as { log: (m: string) => void }).log = (m) => logged.push(m);
    try {
      await assert.rejects(s.listen(0), { message: "The model worker could not load the models (see the server log)" });
      const r = await purify(s);
      assert.equal(r.statusCode, 500);
      assert.deepEqual(r.json(), {
        error: { code: "model_failed", message: "The model worker could not load the models (see the server log)" },
      });
      assert.ok(!r.body.includes(g.dir));
      assert.ok(
        logged.some((m) => m.includes("vae.safetensors")),
        logged.join("\n"),
      );
    } finally {
      await s.close();
      models.dispose();
    }
  } finally {
    g.cleanup();
  }
});
