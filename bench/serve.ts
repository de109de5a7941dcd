/**
 * Load benchmark of `vaeguard serve` (`npm run bench -- --only serve`):
 * autocannon on loopback against POST /v1/purify (the VAE defense) with
 * MNIST test digits as PNG, at several connection counts. Reports
 * requests/s, p50/p99 latency, errors and status codes, the mean model batch
 * size (from /metrics), and the server's resident memory and live tensors
 * before and after. For comparison it measures the library's own batched
 * purification rate (VaeDefense.apply on batches of the server's largest
 * batch size, no HTTP, no codecs) in this process before the server starts.
 *
 * The server is a separate process (`node bin/vaeguard.js serve`) with the
 * same libtorch thread count; autocannon runs here, so on a small machine
 * the client takes CPU from the server, as any loopback benchmark does.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import sharp from "sharp";
import { setNumThreads, tidy } from "../src/core/engine.js";
import { tensor } from "../src/core/tensor.js";
import { loadMnist } from "../src/data/mnist.js";
import { VaeDefense } from "../src/defenses/vae.js";
import { loadCheckpoint } from "../src/models/checkpoint.js";
import { ConvVae } from "../src/models/vae.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface ServeBenchOptions {
  threads: number;
  /** Seconds per connection level (the figure is 30). */
  seconds: number;
  connections: number[];
  classifier?: string;
  vae?: string;
  /** The server's largest batch (also the batch of the library figure). */
  maxBatch: number;
  log?: (line: string) => void;
}

export interface ServeLevel {
  connections: number;
  requestsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  meanBatchSize: number;
}

export interface ServeBenchResult {
  classifier: string;
  vae: string;
  libraryImagesPerSecond: number;
  levels: ServeLevel[];
  rssBeforeMiB: number;
  rssAfterMiB: number;
  liveTensorsBefore: number;
  liveTensorsAfter: number;
}

/** The full checkpoint of `reproduce mnist` when there is one, else the --quick one. */
function findCheckpoint(given: string | undefined, names: string[], flag: string): string {
  if (given) {
    if (!existsSync(given)) throw new Error(`${given}: no such checkpoint (${flag})`);
    return resolve(given);
  }
  for (const n of names) {
    const p = join(ROOT, "runs", "checkpoints", n);
    if (existsSync(p)) return p;
  }
  throw new Error(
    `No ${names[0]} under runs/checkpoints: run \`node bin/vaeguard.js reproduce mnist --quick\` first or pass ${flag}`,
  );
}

async function libraryRate(vaeFile: string, images: Float32Array, batch: number, seconds: number): Promise<number> {
  const vae = loadCheckpoint<ConvVae>(vaeFile, { expectArch: ConvVae.arch }).model;
  const defense = new VaeDefense(vae);
  const x = tensor(images.subarray(0, batch * 784), [batch, 1, 28, 28]);
  try {
    const once = async () => (await defense.apply(x)).dispose();
    await once();
    let n = 0;
    const t0 = performance.now();
    for (;;) {
      await once();
      n++;
      const el = (performance.now() - t0) / 1000;
      if (el >= seconds && n >= 3) return (n * batch) / el;
    }
  } finally {
    x.dispose();
    vae.dispose();
  }
}

function startServer(args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [join(ROOT, "bin", "vaeguard.js"), "serve", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolveStart, reject) => {
    let out = "";
    let err = "";
    child.stdout!.on("data", (d) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolveStart({ child, url: m[1] });
    });
    child.stderr!.on("data", (d) => (err += d.toString()));
    child.on("exit", (code) => reject(new Error(`vaeguard serve exited (${code}): ${err.trim()}`)));
  });
}

async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const i = line.lastIndexOf(" ");
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

export async function benchServe(o: ServeBenchOptions): Promise<ServeBenchResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const classifier = findCheckpoint(
    o.classifier,
    ["mnist-classifier.safetensors", "mnist-classifier-quick.safetensors"],
    "--classifier",
  );
  const vae = findCheckpoint(
    o.vae,
    ["mnist-vae-b0.01-bce.safetensors", "mnist-vae-b0.01-bce-quick.safetensors"],
    "--vae",
  );

  // 256 MNIST test digits: the library's batch and the PNG bodies the clients send, in turn.
  const test = loadMnist({ split: "test", limit: 256 });
  const images = tidy(() => test.images.contiguous().dataSync()) as Float32Array;
  test.images.dispose();
  test.labels.dispose();
  const pngs = await Promise.all(
    Array.from({ length: 256 }, (_, i) => {
      const px = Uint8Array.from(images.subarray(i * 784, (i + 1) * 784), (v) => Math.round(v * 255));
      return sharp(px, { raw: { width: 28, height: 28, channels: 1 } })
        .toColourspace("b-w")
        .png()
        .toBuffer();
    }),
  );

  setNumThreads(o.threads);
  log(`serve bench: library rate (VaeDefense.apply, batch ${o.maxBatch}, ${o.threads} threads) ...`);
  const libraryImagesPerSecond = await libraryRate(vae, images, Math.min(o.maxBatch, 256), Math.min(o.seconds, 10));

  const { child, url } = await startServer([
    "--classifier",
    classifier,
    "--vae",
    vae,
    "--defenses",
    "vae",
    "--port",
    "0",
    "--samples",
    "0",
    "--threads",
    String(o.threads),
    "--max-batch",
    String(o.maxBatch),
  ]);
  try {
    let next = 0;
    const run = (connections: number, seconds: number) =>
      autocannon({
        url,
        connections,
        duration: seconds,
        timeout: 60,
        requests: [
          {
            method: "POST",
            path: "/v1/purify?defense=vae",
            headers: { "content-type": "image/png" },
            setupRequest: (req) => ({ ...req, body: pngs[next++ % pngs.length] }),
          },
        ],
      });
    log("serve bench: warm-up (3 s at 8 connections)");
    await run(8, 3);
    const before = await scrape(url);
    const levels: ServeLevel[] = [];
    let last = before;
    for (const c of o.connections) {
      log(`serve bench: ${c} connection(s) for ${o.seconds} s ...`);
      const r = await run(c, o.seconds);
      const now = await scrape(url);
      const count =
        (now.get('vaeguard_batch_size_count{operation="purify"}') ?? 0) -
        (last.get('vaeguard_batch_size_count{operation="purify"}') ?? 0);
      const sum =
        (now.get('vaeguard_batch_size_sum{operation="purify"}') ?? 0) -
        (last.get('vaeguard_batch_size_sum{operation="purify"}') ?? 0);
      last = now;
      levels.push({
        connections: c,
        requestsPerSecond: r.requests.average,
        latencyP50Ms: r.latency.p50,
        latencyP99Ms: r.latency.p99,
        errors: r.errors,
        timeouts: r.timeouts,
        statusCodes: Object.fromEntries(Object.entries(r.statusCodeStats).map(([k, v]) => [k, v.count])),
        meanBatchSize: count > 0 ? sum / count : 0,
      });
    }
    const mib = (b: number | undefined) => (b ?? 0) / 2 ** 20;
    return {
      classifier,
      vae,
      libraryImagesPerSecond,
      levels,
      rssBeforeMiB: mib(before.get("process_resident_memory_bytes")),
      rssAfterMiB: mib(last.get("process_resident_memory_bytes")),
      liveTensorsBefore: before.get("vaeguard_live_tensors") ?? 0,
      liveTensorsAfter: last.get("vaeguard_live_tensors") ?? 0,
    };
  } finally {
    child.kill("SIGTERM");
  }
}

export function renderServeBench(r: ServeBenchResult, seconds: number): string {
  const lines = [
    `POST /v1/purify (VAE defense), MNIST PNGs, ${seconds} s per level; library: VaeDefense.apply on batches, no HTTP`,
    "connections".padEnd(12) +
      "req/s".padStart(9) +
      "p50 ms".padStart(9) +
      "p99 ms".padStart(9) +
      "  batch" +
      "  errors  status codes",
  ];
  for (const l of r.levels) {
    lines.push(
      String(l.connections).padEnd(12) +
        l.requestsPerSecond.toFixed(0).padStart(9) +
        l.latencyP50Ms.toFixed(1).padStart(9) +
        l.latencyP99Ms.toFixed(1).padStart(9) +
        l.meanBatchSize.toFixed(1).padStart(7) +
        String(l.errors + l.timeouts).padStart(8) +
        "  " +
        Object.entries(l.statusCodes)
          .map(([k, v]) => `${k}: ${v}`)
          .join(", "),
    );
  }
  const one = r.levels.find((l) => l.connections === 1)?.requestsPerSecond;
  const at32 = r.levels.find((l) => l.connections === 32)?.requestsPerSecond;
  lines.push(`library batched purification: ${r.libraryImagesPerSecond.toFixed(0)} images/s`);
  if (one && at32) lines.push(`32 connections / 1 connection: ${(at32 / one).toFixed(1)}x`);
  if (at32) lines.push(`library / service at 32 connections: ${(r.libraryImagesPerSecond / at32).toFixed(2)}x`);
  lines.push(
    `server RSS: ${r.rssBeforeMiB.toFixed(0)} MiB before, ${r.rssAfterMiB.toFixed(0)} MiB after; live tensors ${r.liveTensorsBefore} before, ${r.liveTensorsAfter} after`,
  );
  return lines.join("\n");
}
