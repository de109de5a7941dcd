/**
 * The HTTP API through fastify.inject() (no socket): every endpoint's reply
 * shape, with a fresh classifier and a tiny VAE loaded from temporary
 * checkpoints as `vaeguard serve` loads them. No trained weights: these
 * tests check the plumbing, so they assert shapes and consistency, not accuracy.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import sharp from "sharp";
import { memory } from "../../src/core/engine.js";
import { fixedShape } from "../../src/serve/models.js";
import type { Server } from "../../src/serve/server.js";
import { digitImage, makeFixture, makeServer, metricValue, type Fixture } from "./helpers.js";

let f: Fixture;
let s: Server;
let png: Buffer;

before(async () => {
  f = makeFixture(["vae", "jpeg:23"]);
  s = makeServer(f);
  png = await digitImage("png");
});
after(async () => {
  await s.close();
  f.cleanup();
});

const post = (url: string, payload: Buffer | object, type = "image/png", headers: Record<string, string> = {}) =>
  s.app.inject({
    method: "POST",
    url,
    payload: payload as Buffer,
    headers: Buffer.isBuffer(payload) ? { "content-type": type, ...headers } : headers,
  });

test("GET /healthz answers ok", async () => {
  const r = await s.app.inject({ method: "GET", url: "/healthz" });
  assert.equal(r.statusCode, 200);
  assert.deepEqual(r.json(), { status: "ok" });
});

test("GET /v1/models lists the classifier, 'none' first, the defenses and the attacks, with file names but no paths", async () => {
  const r = await s.app.inject({ method: "GET", url: "/v1/models" });
  assert.equal(r.statusCode, 200);
  const m = r.json();
  assert.deepEqual(m.classifier.inputShape, [1, 28, 28]);
  assert.equal(m.classifier.numClasses, 10);
  assert.deepEqual(
    m.defenses.map((d: { id: string }) => d.id),
    ["none", "vae", "jpeg:23"],
  );
  assert.equal(m.defenses[1].randomized, true);
  assert.deepEqual(m.sources, { classifier: "classifier.safetensors", vae: "vae.safetensors" });
  assert.ok(!JSON.stringify(m).includes(f.dir), "no server path in /v1/models");
  assert.deepEqual(
    m.attack.attacks.map((a: { name: string }) => a.name),
    ["fgsm", "ifgsm", "pgd", "pgd-l2", "square"],
  );
  assert.equal(m.samples.count, 20);
});

test("POST /v1/purify with PNG bytes returns the purified image as a 28x28 grayscale PNG", async () => {
  const r = await post("/v1/purify?defense=vae", png);
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers["content-type"], "image/png");
  assert.equal(r.headers["x-defense"], "vae");
  const meta = await sharp(r.rawPayload).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ["png", 28, 28, 1]);
});

test("POST /v1/purify takes JPEG and WebP too, and resizes to the VAE's input", async () => {
  for (const format of ["jpeg", "webp"] as const) {
    const r = await post("/v1/purify?defense=vae", await digitImage(format, 56, 40), `image/${format}`);
    assert.equal(r.statusCode, 200, format);
    const meta = await sharp(r.rawPayload).metadata();
    assert.deepEqual([meta.width, meta.height], [28, 28], format);
  }
});

test("POST /v1/purify with a defense of any size (JPEG) keeps the image's own size", async () => {
  const r = await post("/v1/purify?defense=jpeg:23", await digitImage("png", 40, 30));
  assert.equal(r.statusCode, 200);
  const meta = await sharp(r.rawPayload).metadata();
  assert.deepEqual([meta.width, meta.height], [40, 30]);
  assert.equal(fixedShape(f.models.defenses[2].defense), undefined);
  assert.deepEqual(fixedShape(f.models.defenses[1].defense), [1, 28, 28]);
});

test("POST /v1/purify with format=tensor (or Accept: application/octet-stream) returns float32 CHW bytes", async () => {
  for (const [url, headers] of [
    ["/v1/purify?defense=none&format=tensor", {}],
    ["/v1/purify?defense=none", { accept: "application/octet-stream" }],
  ] as const) {
    const r = await post(url, png, "image/png", headers);
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers["content-type"], "application/octet-stream");
    assert.equal(r.headers["x-tensor-shape"], "1,28,28");
    assert.equal(r.rawPayload.length, 28 * 28 * 4);
    // "none" returns the image itself: the stroke's column is light, the corner black.
    assert.ok(Math.abs(r.rawPayload.readFloatLE((5 * 28 + 14) * 4) - 230 / 255) < 0.01);
    assert.equal(r.rawPayload.readFloatLE(0), 0);
  }
});

test("POST /v1/purify with a JSON batch returns one PNG per image", async () => {
  const b64 = png.toString("base64");
  const r = await post("/v1/purify", { images: [b64, b64, b64], defense: "vae" });
  assert.equal(r.statusCode, 200);
  const body = r.json();
  assert.equal(body.defense, "vae");
  assert.equal(body.images.length, 3);
  const meta = await sharp(Buffer.from(body.images[2], "base64")).metadata();
  assert.deepEqual([meta.format, meta.width], ["png", 28]);
  const t = await post("/v1/purify", { images: [b64], defense: "none", format: "tensor" });
  assert.deepEqual(t.json().tensors[0].shape, [1, 28, 28]);
  assert.equal(Buffer.from(t.json().tensors[0].data, "base64").length, 28 * 28 * 4);
});

test("POST /v1/purify without a defense uses the first configured one", async () => {
  const r = await post("/v1/purify", png);
  assert.equal(r.headers["x-defense"], "vae");
});

test("POST /v1/classify returns top-k with and without each defense, sorted probabilities", async () => {
  const r = await post("/v1/classify?topk=4", png);
  assert.equal(r.statusCode, 200);
  const { predictions } = r.json();
  assert.deepEqual(
    predictions.map((p: { defense: string }) => p.defense),
    ["none", "vae", "jpeg:23"],
  );
  assert.deepEqual(
    predictions.map((p: { name: string }) => p.name),
    ["No defense", "VAE", "JPEG 23"],
  );
  for (const p of predictions) {
    assert.equal(p.top.length, 4);
    const probs = p.top.map((t: { probability: number }) => t.probability);
    assert.deepEqual(
      probs,
      [...probs].sort((a, b) => b - a),
    );
    assert.ok(probs.reduce((a: number, b: number) => a + b, 0) <= 1.0001);
    assert.equal(p.top[0].className, String(p.top[0].label));
  }
});

test("POST /v1/classify with a JSON batch returns one result per image", async () => {
  const b64 = png.toString("base64");
  const r = await post("/v1/classify", { images: [b64, b64], topk: 1 });
  assert.equal(r.statusCode, 200);
  const { results } = r.json();
  assert.equal(results.length, 2);
  // Deterministic parts (no defense, JPEG) agree on identical images.
  assert.deepEqual(results[0].predictions[0], results[1].predictions[0]);
  assert.deepEqual(results[0].predictions[2], results[1].predictions[2]);
});

test("GET /v1/samples/:index returns a test digit with its true label", async () => {
  const r = await s.app.inject({ method: "GET", url: "/v1/samples/0" });
  assert.equal(r.statusCode, 200);
  const body = r.json();
  assert.equal(body.label, f.samples.items[0].label);
  const meta = await sharp(Buffer.from(body.image, "base64")).metadata();
  assert.deepEqual([meta.width, meta.height, meta.channels], [28, 28, 1]);
  assert.deepEqual((await s.app.inject({ method: "GET", url: "/v1/samples" })).json(), { name: "mnist", count: 20 });
});

test("POST /v1/attack on a test sample returns gray-box and adaptive runs with three images and predictions", async () => {
  const r = await post("/v1/attack", { sample: 3, attack: "pgd:steps=3", eps: 0.2, defense: "vae", eot: 2 });
  assert.equal(r.statusCode, 200, r.body);
  const a = r.json();
  assert.equal(a.attack, "pgd:steps=3");
  assert.equal(a.label, f.samples.items[3].label);
  assert.equal(a.labelSource, "sample");
  assert.deepEqual(
    a.runs.map((x: { mode: string }) => x.mode),
    ["gray-box", "adaptive"],
  );
  const original = new Float32Array(f.samples.items[3].image.data);
  for (const run of a.runs) {
    for (const part of ["adversarial", "purified"]) {
      const img = Buffer.from(run[part].image, "base64");
      assert.equal((await sharp(img).metadata()).channels, 1);
      const { data, info } = await sharp(img).toColourspace("b-w").raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([info.width, info.height, info.channels], [28, 28, 1]);
      assert.equal(run[part].top.length, 3);
      if (part === "adversarial") {
        // Inside the L-inf ball (8-bit rounding adds at most half a level).
        let worst = 0;
        for (let i = 0; i < data.length; i++) worst = Math.max(worst, Math.abs(data[i] / 255 - original[i]));
        assert.ok(worst <= 0.2 + 0.5 / 255 + 1e-6, `perturbation ${worst} exceeds eps 0.2`);
        assert.ok(worst > 0, "the attack changed the image");
      }
    }
  }
  assert.equal(a.original.undefended.length, 3);
  assert.equal(a.predictions.length, 3);
});

test("POST /v1/attack on an uploaded image without a label attacks the clean prediction", async () => {
  const r = await post("/v1/attack", { image: png.toString("base64"), attack: "fgsm", eps: 0.1, mode: "gray-box" });
  assert.equal(r.statusCode, 200, r.body);
  const a = r.json();
  assert.equal(a.labelSource, "prediction");
  assert.equal(a.label, a.original.undefended[0].label);
  assert.equal(a.runs.length, 1);
});

test("GET /metrics exposes request counts, latencies, batch sizes, queue depth and process memory", async () => {
  await post("/v1/purify?defense=none", png);
  const r = await s.app.inject({ method: "GET", url: "/metrics" });
  assert.equal(r.statusCode, 200);
  assert.match(r.headers["content-type"] as string, /^text\/plain/);
  const text = r.body;
  assert.ok(
    (metricValue(text, 'vaeguard_http_requests_total{method="POST",route="/v1/purify",status="200"}') ?? 0) >= 1,
  );
  assert.ok((metricValue(text, 'vaeguard_batch_size_count{operation="purify"}') ?? 0) >= 1);
  assert.ok(
    (metricValue(text, 'vaeguard_http_request_duration_seconds_count{method="POST",route="/v1/purify"}') ?? 0) >= 1,
  );
  assert.equal(metricValue(text, "vaeguard_queue_depth"), 0);
  assert.ok((metricValue(text, "process_resident_memory_bytes") ?? 0) > 0);
});

test("GET / serves the page and its script with a Content-Security-Policy", async () => {
  const page = await s.app.inject({ method: "GET", url: "/" });
  assert.equal(page.statusCode, 200);
  assert.match(page.body, /<script type="module" src="\/app.js">/);
  assert.match(page.headers["content-security-policy"] as string, /script-src 'self'/);
  const js = await s.app.inject({ method: "GET", url: "/app.js" });
  assert.equal(js.statusCode, 200);
  assert.match(js.headers["content-type"] as string, /javascript/);
});

test("requests leave no tensors behind", async () => {
  await post("/v1/classify", png); // warm-up: anything created once
  const before = memory().numTensors;
  const b64 = png.toString("base64");
  await Promise.all([
    post("/v1/purify?defense=vae", png),
    post("/v1/purify", { images: [b64, b64] }),
    post("/v1/classify", png),
    post("/v1/attack", { sample: 1, attack: "fgsm", eps: 0.1, eot: 1 }),
    post("/v1/purify", Buffer.from("not an image")),
  ]);
  assert.equal(memory().numTensors, before);
});
