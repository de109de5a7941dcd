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
 * The server is a separate process (`node bin/vaeguard.js serve`), and so is
 * the load generator (autocannon in a child of this process, so that its CPU
 * time can be measured apart). On a small machine the client still takes
 * CPU from the server, as any loopback benchmark does: the report gives the
 * CPU seconds of both per level, so that the server's cost per request can
 * be set beside the library's cost per image.
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
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
  /**
   * libtorch threads of the server (default 1, env VAEGUARD_SERVE_BENCH_SERVER_THREADS): on a machine
   * shared with the load generator, HTTP and the codecs, one thread beats two (see the README).
   */
  serverThreads?: number;
  /** The server's --batch-window-ms (default 0: a batch starts at once when the model is idle). */
  windowMs?: number;
  /** The server's --model-thread (default "worker", env VAEGUARD_SERVE_BENCH_MODEL_THREAD). */
  modelThread?: "worker" | "main";
  /** The server's --concurrency: batches handed to the model at once (default 1, env VAEGUARD_SERVE_BENCH_CONCURRENCY). */
  concurrency?: number;
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
  /** CPU seconds per second of wall time (1 = one core busy): the server process and the load generator. */
  serverCpu: number;
  clientCpu: number;
  /** Server CPU milliseconds per answered request. */
  serverCpuMsPerRequest: number;
}

export interface ServeBenchResult {
  classifier: string;
  vae: string;
  /** The library's best rate (the comparison figure), and its rate by libtorch thread count. */
  libraryImagesPerSecond: number;
  libraryByThreads: Record<string, number>;
  /** Library CPU milliseconds per image at its best thread count. */
  libraryCpuMsPerImage: number;
  serverThreads: number;
  windowMs: number;
  modelThread: "worker" | "main";
  concurrency: number;
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

async function libraryRate(
  vaeFile: string,
  images: Float32Array,
  batch: number,
  seconds: number,
): Promise<{ rate: number; cpuMsPerImage: number }> {
  const vae = loadCheckpoint<ConvVae>(vaeFile, { expectArch: ConvVae.arch }).model;
  const defense = new VaeDefense(vae);
  const x = tensor(images.subarray(0, batch * 784), [batch, 1, 28, 28]);
  try {
    const once = async () => (await defense.apply(x)).dispose();
    await once();
    let n = 0;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (;;) {
      await once();
      n++;
      const el = (performance.now() - t0) / 1000;
      if (el >= seconds && n >= 3) {
        const c = process.cpuUsage(c0);
        return { rate: (n * batch) / el, cpuMsPerImage: (c.user + c.system) / 1000 / (n * batch) };
      }
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

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN elsewhere. */
function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100 on Linux)
  } catch {
    return NaN;
  }
}

type LoadResult = Awaited<ReturnType<typeof autocannon>>;

interface LoadJob {
  url: string;
  connections: number;
  seconds: number;
  pngs: string[];
}

/** The load generator's side: run autocannon and report its result and this process's CPU time. */
async function loadChild(): Promise<void> {
  const job = await new Promise<LoadJob>((res) => process.once("message", (m) => res(m as LoadJob)));
  const pngs = job.pngs.map((b) => Buffer.from(b, "base64"));
  let next = 0;
  const c0 = process.cpuUsage();
  const r = await autocannon({
    url: job.url,
    connections: job.connections,
    duration: job.seconds,
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
  const c = process.cpuUsage(c0);
  process.send!({ result: r, cpuSeconds: (c.user + c.system) / 1e6 }, () => process.exit(0));
}

if (process.env.VAEGUARD_SERVE_LOAD_CHILD === "1" && process.send) void loadChild();

/** autocannon in a child process (its CPU use measured apart from the server's). */
function runLoad(job: LoadJob): Promise<{ result: LoadResult; cpuSeconds: number }> {
  const child = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, VAEGUARD_SERVE_LOAD_CHILD: "1" },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return new Promise((res, rej) => {
    child.once("message", (m) => res(m as { result: LoadResult; cpuSeconds: number }));
    child.once("exit", (code) => rej(new Error(`load generator exited (${code}) without a result`)));
    child.send(job);
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

  const serverThreads = o.serverThreads ?? Number(process.env.VAEGUARD_SERVE_BENCH_SERVER_THREADS ?? 1);
  const windowMs = o.windowMs ?? Number(process.env.VAEGUARD_SERVE_BENCH_WINDOW_MS ?? 0);
  const modelThread = o.modelThread ?? (process.env.VAEGUARD_SERVE_BENCH_MODEL_THREAD === "main" ? "main" : "worker");
  const concurrency = o.concurrency ?? Number(process.env.VAEGUARD_SERVE_BENCH_CONCURRENCY ?? 1);
  // The library's rate at the bench's thread count and at the server's, the better one being the comparison.
  const libraryByThreads: Record<string, number> = {};
  let best = { rate: 0, cpuMsPerImage: 0 };
  for (const t of [...new Set([o.threads, serverThreads])]) {
    setNumThreads(t);
    log(`serve bench: library rate (VaeDefense.apply, batch ${o.maxBatch}, ${t} thread(s)) ...`);
    const r = await libraryRate(vae, images, Math.min(o.maxBatch, 256), Math.min(o.seconds, 10));
    libraryByThreads[String(t)] = r.rate;
    if (r.rate > best.rate) best = r;
  }
  setNumThreads(o.threads);

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
    String(serverThreads),
    "--max-batch",
    String(o.maxBatch),
    "--batch-window-ms",
    String(windowMs),
    "--model-thread",
    modelThread,
    "--concurrency",
    String(concurrency),
  ]);
  try {
    const pngText = pngs.map((b) => b.toString("base64"));
    const run = (connections: number, seconds: number) => runLoad({ url, connections, seconds, pngs: pngText });
    log("serve bench: warm-up (3 s at 8 connections)");
    await run(8, 3);
    const before = await scrape(url);
    const levels: ServeLevel[] = [];
    let last = before;
    for (const c of o.connections) {
      log(`serve bench: ${c} connection(s) for ${o.seconds} s ...`);
      const cpu0 = processCpuSeconds(child.pid!);
      const { result: r, cpuSeconds: clientCpuSeconds } = await run(c, o.seconds);
      // autocannon's own duration: the load generator's start-up is not load (the server idles through it).
      const wall = r.duration > 1000 ? r.duration / 1000 : r.duration;
      const serverCpuSeconds = processCpuSeconds(child.pid!) - cpu0;
      const now = await scrape(url);
      const count =
        (now.get('vaeguard_batch_size_count{operation="purify"}') ?? 0) -
        (last.get('vaeguard_batch_size_count{operation="purify"}') ?? 0);
      const sum =
        (now.get('vaeguard_batch_size_sum{operation="purify"}') ?? 0) -
        (last.get('vaeguard_batch_size_sum{operation="purify"}') ?? 0);
      last = now;
      const answered = Object.values(r.statusCodeStats).reduce((a, v) => a + v.count, 0);
      levels.push({
        connections: c,
        requestsPerSecond: r.requests.average,
        latencyP50Ms: r.latency.p50,
        latencyP99Ms: r.latency.p99,
        errors: r.errors,
        timeouts: r.timeouts,
        statusCodes: Object.fromEntries(Object.entries(r.statusCodeStats).map(([k, v]) => [k, v.count])),
        meanBatchSize: count > 0 ? sum / count : 0,
        serverCpu: serverCpuSeconds / wall,
        clientCpu: clientCpuSeconds / wall,
        serverCpuMsPerRequest: answered > 0 ? (serverCpuSeconds * 1000) / answered : NaN,
      });
    }
    const mib = (b: number | undefined) => (b ?? 0) / 2 ** 20;
    return {
      classifier,
      vae,
      libraryImagesPerSecond: best.rate,
      libraryByThreads,
      libraryCpuMsPerImage: best.cpuMsPerImage,
      serverThreads,
      windowMs,
      modelThread,
      concurrency,
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
    `POST /v1/purify (VAE defense), MNIST PNGs, ${seconds} s per level; server: ${r.serverThreads} libtorch thread(s), ` +
      `batch window ${r.windowMs} ms, models on ${r.modelThread === "worker" ? "a worker thread" : "the main thread"}, ` +
      `${r.concurrency} batch(es) at once; library: VaeDefense.apply on batches, no HTTP`,
    "connections".padEnd(12) +
      "req/s".padStart(9) +
      "p50 ms".padStart(9) +
      "p99 ms".padStart(9) +
      "  batch" +
      "  errors" +
      "  srv cpu" +
      "  load cpu" +
      "  srv ms/req" +
      "  status codes",
  ];
  for (const l of r.levels) {
    lines.push(
      String(l.connections).padEnd(12) +
        l.requestsPerSecond.toFixed(0).padStart(9) +
        l.latencyP50Ms.toFixed(1).padStart(9) +
        l.latencyP99Ms.toFixed(1).padStart(9) +
        l.meanBatchSize.toFixed(1).padStart(7) +
        String(l.errors + l.timeouts).padStart(8) +
        l.serverCpu.toFixed(2).padStart(9) +
        l.clientCpu.toFixed(2).padStart(10) +
        l.serverCpuMsPerRequest.toFixed(3).padStart(12) +
        "  " +
        Object.entries(l.statusCodes)
          .map(([k, v]) => `${k}: ${v}`)
          .join(", "),
    );
  }
  const one = r.levels.find((l) => l.connections === 1)?.requestsPerSecond;
  const at32 = r.levels.find((l) => l.connections === 32)?.requestsPerSecond;
  const byThreads = Object.entries(r.libraryByThreads)
    .map(([t, v]) => `${v.toFixed(0)} with ${t} thread(s)`)
    .join(", ");
  lines.push(
    `library batched purification: ${r.libraryImagesPerSecond.toFixed(0)} images/s (${byThreads}; ` +
      `${r.libraryCpuMsPerImage.toFixed(3)} CPU ms per image)`,
  );
  if (one && at32) lines.push(`32 connections / 1 connection: ${(at32 / one).toFixed(1)}x`);
  if (at32) lines.push(`library / service at 32 connections: ${(r.libraryImagesPerSecond / at32).toFixed(2)}x`);
  lines.push(
    `server RSS: ${r.rssBeforeMiB.toFixed(0)} MiB before, ${r.rssAfterMiB.toFixed(0)} MiB after; live tensors ${r.liveTensorsBefore} before, ${r.liveTensorsAfter} after`,
  );
  return lines.join("\n");
}
