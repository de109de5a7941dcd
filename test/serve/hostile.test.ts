/**
 * Hostile and malformed input: every case answers with its status code and
 * the one error shape {error: {code, message}}, and none of them hurts the
 * process (it still answers, and no tensor is left behind).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { memory } from "../../src/core/engine.js";
import type { Server } from "../../src/serve/server.js";
import { digitImage, makeFixture, makeServer, pngBomb, type Fixture } from "./helpers.js";

let f: Fixture;
let s: Server;
let png: Buffer;
let tensorsBefore = 0;

before(async () => {
  f = makeFixture(["vae", "jpeg:23"]);
  s = makeServer(f, { limits: { bodyLimit: 64 * 1024, maxImagesPerRequest: 4 } });
  png = await digitImage("png");
  // Warm-up: whatever a first request creates once is not a leak.
  await s.app.inject({ method: "POST", url: "/v1/classify", headers: { "content-type": "image/png" }, payload: png });
  tensorsBefore = memory().numTensors;
});
after(async () => {
  await s.close();
  f.cleanup();
});

interface Case {
  name: string;
  method?: "GET" | "POST";
  url: string;
  type?: string;
  body?: Buffer | string | object;
  headers?: Record<string, string>;
  status: number;
  code: string;
  message: RegExp;
}

async function check(c: Case): Promise<void> {
  const headers: Record<string, string> = { ...c.headers };
  let payload: Buffer | string | undefined;
  if (c.body !== undefined) {
    payload = Buffer.isBuffer(c.body) || typeof c.body === "string" ? c.body : JSON.stringify(c.body);
    headers["content-type"] = c.type ?? (Buffer.isBuffer(c.body) ? "image/png" : "application/json");
  }
  const r = await s.app.inject({ method: c.method ?? "POST", url: c.url, headers, payload });
  assert.equal(r.statusCode, c.status, `${c.name}: ${r.body}`);
  const body = r.json();
  assert.deepEqual(Object.keys(body), ["error"], c.name);
  assert.deepEqual(Object.keys(body.error), ["code", "message"], c.name);
  assert.equal(body.error.code, c.code, c.name);
  assert.match(body.error.message, c.message, c.name);
}

test("non-images, wrong formats, truncated images and bombs are 400/413/415 with a message", async () => {
  const jpeg = await digitImage("jpeg", 64, 64);
  const cases: Case[] = [
    {
      name: "text with Content-Type text/plain",
      url: "/v1/classify",
      body: "hello",
      type: "text/plain",
      status: 415,
      code: "unsupported_media_type",
      message: /^Unsupported Content-Type; send image\/png, image\/jpeg, image\/webp or application\/json$/,
    },
    {
      name: "multipart form",
      url: "/v1/purify",
      body: "--x\r\n\r\nhi\r\n--x--",
      type: "multipart/form-data; boundary=x",
      status: 415,
      code: "unsupported_media_type",
      message: /Unsupported Content-Type/,
    },
    {
      name: "text bytes labelled image/png",
      url: "/v1/purify",
      body: Buffer.from("this is not an image at all"),
      status: 400,
      code: "invalid_image",
      message: /^The request body is not a PNG, JPEG or WebP image$/,
    },
    {
      name: "empty body labelled image/png",
      url: "/v1/classify",
      body: Buffer.alloc(0),
      status: 400,
      code: "empty_image",
      message: /^The request body is empty; send PNG, JPEG or WebP bytes$/,
    },
    {
      name: "a GIF",
      url: "/v1/classify",
      body: await digitImage("gif"),
      type: "image/png",
      status: 415,
      code: "unsupported_image_format",
      message: /^The request body is a gif image; send PNG, JPEG or WebP$/,
    },
    {
      name: "an SVG (never handed to the decoder)",
      url: "/v1/purify",
      body: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
      type: "image/webp",
      status: 415,
      code: "unsupported_image_format",
      message: /is a svg image; send PNG, JPEG or WebP/,
    },
    {
      name: "a truncated PNG",
      url: "/v1/purify",
      body: png.subarray(0, png.length - 30),
      status: 400,
      code: "invalid_image",
      message: /^The request body is a truncated or damaged png image \(.+\)$/,
    },
    {
      name: "a truncated JPEG",
      url: "/v1/classify",
      body: jpeg.subarray(0, Math.floor(jpeg.length / 2)),
      type: "image/jpeg",
      status: 400,
      code: "invalid_image",
      message: /^The request body is a (truncated or )?damaged jpeg image \(.+\)$/,
    },
    {
      name: "a decompression bomb (50000 x 50000 pixels in a few hundred bytes)",
      url: "/v1/purify",
      body: pngBomb(50000, 50000),
      status: 413,
      code: "too_many_pixels",
      message: /^The request body has 50000x50000 = 2500000000 pixels; the limit is 4194304$/,
    },
    {
      name: "a body over the size limit",
      url: "/v1/purify",
      body: Buffer.concat([png, Buffer.alloc(70 * 1024)]),
      status: 413,
      code: "body_too_large",
      message: /^The request body is larger than the limit of 65536 bytes$/,
    },
  ];
  for (const c of cases) await check(c);
});

test("malformed JSON batches and settings are 400 with a message", async () => {
  const b64 = png.toString("base64");
  const cases: Case[] = [
    {
      name: "invalid JSON",
      url: "/v1/purify",
      body: '{"images": [',
      type: "application/json",
      status: 400,
      code: "invalid_json",
      message: /^The body is not valid JSON/,
    },
    {
      name: "prototype poisoning",
      url: "/v1/classify",
      body: `{"images": ["${b64}"], "__proto__": {"admin": true}}`,
      type: "application/json",
      status: 400,
      code: "invalid_json",
      message: /^The body is not valid JSON/,
    },
    {
      name: "no images field",
      url: "/v1/classify",
      body: { image: b64 },
      status: 400,
      code: "invalid_request",
      message: /^Unknown field "image"; expected topk$/,
    },
    {
      name: "empty images",
      url: "/v1/purify",
      body: { images: [] },
      status: 400,
      code: "invalid_request",
      message: /needs "images": a non-empty array/,
    },
    {
      name: "too many images",
      url: "/v1/purify",
      body: { images: [b64, b64, b64, b64, b64] },
      status: 400,
      code: "too_many_images",
      message: /^The request has 5 images; the limit is 4 per request$/,
    },
    {
      name: "not base64",
      url: "/v1/purify",
      body: { images: [b64, "!!not base64!!"] },
      status: 400,
      code: "invalid_base64",
      message: /^Images\[1\] is not valid base64$/,
    },
    {
      name: "a non-image inside a batch",
      url: "/v1/classify",
      body: { images: [b64, Buffer.from("plain text").toString("base64")] },
      status: 400,
      code: "invalid_image",
      message: /^Images\[1\] is not a PNG, JPEG or WebP image$/,
    },
    {
      name: "unknown defense",
      url: "/v1/purify?defense=median:3",
      body: png,
      status: 400,
      code: "unknown_defense",
      message: /^Unknown defense "median:3"; this server has none, vae, jpeg:23$/,
    },
    {
      name: "a file path where a defense goes",
      url: "/v1/purify?defense=/etc/passwd",
      body: png,
      status: 400,
      code: "unknown_defense",
      message: /^Unknown defense "\/etc\/passwd"/,
    },
    {
      name: "unknown query parameter",
      url: "/v1/purify?path=/etc/passwd",
      body: png,
      status: 400,
      code: "invalid_request",
      message: /^Unknown query parameter "path"; expected defense, format$/,
    },
    {
      name: "bad format",
      url: "/v1/purify?format=npy",
      body: png,
      status: 400,
      code: "invalid_request",
      message: /^Expected one of "png", "tensor" for format but received "npy"$/,
    },
    {
      name: "top-k out of range",
      url: "/v1/classify?topk=11",
      body: png,
      status: 400,
      code: "invalid_request",
      message: /^Expected integer between 1 and 10 for topk but received "11"$/,
    },
  ];
  for (const c of cases) await check(c);
});

test("bad attack requests are 400 with a message", async () => {
  const cases: Case[] = [
    {
      name: "epsilon out of range",
      url: "/v1/attack",
      body: { sample: 0, attack: "fgsm", eps: 2 },
      status: 400,
      code: "invalid_argument",
      message: /^Expected number between 0 and 1 for eps but received 2$/,
    },
    {
      name: "missing epsilon",
      url: "/v1/attack",
      body: { sample: 0 },
      status: 400,
      code: "invalid_request",
      message: /^Invalid request: body must have required property 'eps'$/,
    },
    {
      name: "unknown field",
      url: "/v1/attack",
      body: { sample: 0, eps: 0.1, file: "/etc/passwd" },
      status: 400,
      code: "invalid_request",
      message: /must NOT have additional properties/,
    },
    {
      name: "unknown attack",
      url: "/v1/attack",
      body: { sample: 0, eps: 0.1, attack: "deepfool" },
      status: 400,
      code: "invalid_argument",
      message:
        /^Unknown attack "deepfool" in attack spec "deepfool"; expected one of fgsm, ifgsm, pgd, pgd-l2, square$/,
    },
    {
      name: "too many steps",
      url: "/v1/attack",
      body: { sample: 0, eps: 0.1, attack: "pgd:steps=100000" },
      status: 400,
      code: "attack_too_expensive",
      message: /^steps 100000 is more than this server allows \(100\)$/,
    },
    {
      name: "too many EOT samples",
      url: "/v1/attack",
      body: { sample: 0, eps: 0.1, eot: 1000 },
      status: 400,
      code: "attack_too_expensive",
      message: /^eot 1000 is more than this server allows \(10\)$/,
    },
    {
      name: "both an image and a sample",
      url: "/v1/attack",
      body: { sample: 0, image: png.toString("base64"), eps: 0.1 },
      status: 400,
      code: "invalid_request",
      message: /^Give exactly one of "image" \(base64\) and "sample" \(a test image index\)$/,
    },
    {
      name: "a sample that does not exist",
      url: "/v1/attack",
      body: { sample: 999, eps: 0.1 },
      status: 400,
      code: "unknown_sample",
      message: /^No test sample 999; this server has 20/,
    },
    {
      name: "a label that does not exist",
      url: "/v1/attack",
      body: { sample: 0, eps: 0.1, label: 10 },
      status: 400,
      code: "invalid_request",
      message: /^Expected integer between 0 and 9 for label but received 10$/,
    },
    {
      name: "mode",
      url: "/v1/attack",
      body: { sample: 0, eps: 0.1, mode: "white-box" },
      status: 400,
      code: "invalid_request",
      message: /body\/mode must be equal to one of the allowed values/,
    },
  ];
  for (const c of cases) await check(c);
});

test("unknown routes and samples are 404 in the same shape", async () => {
  await check({
    name: "route",
    method: "GET",
    url: "/v1/nothing",
    status: 404,
    code: "not_found",
    message: /^No route GET \/v1\/nothing$/,
  });
  await check({
    name: "sample path",
    method: "GET",
    url: "/v1/samples/..%2F..%2Fetc%2Fpasswd",
    status: 404,
    code: "unknown_sample",
    message: /^No test sample "..\/..\/etc\/passwd"; this server has 20 \(0 to 19\)$/,
  });
  await check({
    name: "results",
    method: "GET",
    url: "/v1/results",
    status: 404,
    code: "no_results",
    message: /--results/,
  });
});

test("after all of it the process still answers and no tensor was left behind", async () => {
  const r = await s.app.inject({
    method: "POST",
    url: "/v1/classify",
    headers: { "content-type": "image/png" },
    payload: png,
  });
  assert.equal(r.statusCode, 200);
  assert.equal(memory().numTensors, tensorsBefore);
});

test("an API key, when set, is required for /v1/* and /metrics, not for /healthz", async () => {
  const keyed = makeServer(f, { apiKey: "s3cret" });
  try {
    const none = await keyed.app.inject({ method: "GET", url: "/v1/models" });
    assert.equal(none.statusCode, 401);
    assert.deepEqual(none.json(), {
      error: {
        code: "unauthorized",
        message: "A valid API key is needed (Authorization: Bearer KEY or X-API-Key: KEY)",
      },
    });
    assert.equal(none.headers["www-authenticate"], "Bearer");
    const wrong = await keyed.app.inject({ method: "GET", url: "/metrics", headers: { authorization: "Bearer nope" } });
    assert.equal(wrong.statusCode, 401);
    const bearer = await keyed.app.inject({
      method: "GET",
      url: "/v1/models",
      headers: { authorization: "Bearer s3cret" },
    });
    assert.equal(bearer.statusCode, 200);
    const header = await keyed.app.inject({ method: "GET", url: "/metrics", headers: { "x-api-key": "s3cret" } });
    assert.equal(header.statusCode, 200);
    assert.equal((await keyed.app.inject({ method: "GET", url: "/healthz" })).statusCode, 200);
  } finally {
    await keyed.close();
  }
});

test("the attack endpoint can be switched off", async () => {
  const off = makeServer(f, { attack: { enabled: false } });
  try {
    const r = await off.app.inject({ method: "POST", url: "/v1/attack", payload: { sample: 0, eps: 0.1 } });
    assert.equal(r.statusCode, 403);
    assert.deepEqual(r.json(), {
      error: { code: "attack_disabled", message: "The attack endpoint is switched off on this server" },
    });
  } finally {
    await off.close();
  }
});

test("a client that does not finish sending its request gets 408 (request timeout)", async () => {
  const slow = makeServer(f, { limits: { requestTimeoutMs: 300 } });
  const url = new URL(await slow.listen(0));
  try {
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = connect(Number(url.port), url.hostname, () => {
        // Promise 1000 bytes, send 10, then stall.
        sock.write(
          "POST /v1/purify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n0123456789",
        );
      });
      let data = "";
      sock.on("data", (d) => (data += d.toString()));
      sock.on("close", () => resolve(data));
      sock.on("error", reject);
      setTimeout(() => {
        sock.destroy();
        reject(new Error(`no answer within 20 s; got ${JSON.stringify(data)}`));
      }, 20000).unref();
    });
    assert.match(reply, /^HTTP\/1\.1 408 /);
  } finally {
    await slow.close();
  }
});
