/**
 * `npm run bench`: images/s of vaeguard and of PyTorch on the same machine in
 * the same run, and their ratio. Not a test: timings on a shared machine are
 * noisy, so the two engines run in alternating rounds and each figure is the
 * best of its rounds (the least disturbed measurement).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cpus } from "node:os";
import { Command } from "commander";
import { manualSeed, setChannelsLast, getChannelsLast } from "../src/core/engine.js";
import { setProcessThreads } from "../src/core/concurrency.js";
import { binding } from "../src/binding.js";
import { MnistCnn, Cifar10Cnn } from "../src/models/classifiers.js";
import { ConvVae, VAE_PRESETS } from "../src/models/vae.js";
import { benchClassifier, benchVae } from "./classifiers.js";
import { benchLarge, LARGE_PARTS } from "./large-images.js";
import { benchPurifier } from "./purifier.js";
import { benchEot } from "./eot.js";
import { benchServe, renderServeBench } from "./serve.js";
import { benchPipeline, renderPipelineBench } from "./pipeline.js";

const program = new Command()
  .name("bench")
  .option("--threads <n>", "intra-op threads for both engines", "2")
  .option("--seconds <s>", "seconds per measurement", "3")
  .option("--rounds <n>", "alternating rounds per engine (best of)", "2")
  .option(
    "--only <list>",
    "comma-separated: mnist,cifar10,vae,purifier,eot,kernels,large,serve (kernels: the mnist, cifar10 and vae rows again with both engines in NCHW and both in channels-last memory, issue 14 point 4; purifier: adversarial training steps of issue 12, the Table 2 VAE with FGSM-RS and the conv purifier with PGD-10; eot: adaptive PGD with EOT 10 through the MNIST VAE, batched EOT of issue 14; pipeline: the whole MNIST reproduction, vaeguard against a PyTorch script, wall time per stage (issue 14; not in the default list: about half an hour at --scale 1); large: patch VAEs and Inception V3 on 299x299 images, or a part of it: large-recon, large-train, large-inception; serve: HTTP load on vaeguard serve)",
    "mnist,cifar10,vae,kernels,purifier,eot",
  )
  .option("--scale <s>", "pipeline: fraction of the training and test images, in (0, 1]", "1")
  .option(
    "--jobs <n>",
    "pipeline: vaeguard's `reproduce --jobs` (default: reproduce's own default, 2 jobs of threads/2 when --threads is 2 or more; 1: one job with all threads, as before)",
  )
  .option("--eot-batches <list>", "eot: batch sizes (images per attack)", "8,32")
  .option("--python <path>", "python with torch for the comparison", "/usr/bin/python3")
  .option("--serve-seconds <s>", "serve: seconds per connection level", "30")
  .option("--connections <list>", "serve: connection counts", "1,8,32,128")
  .option(
    "--classifier <file>",
    "serve: classifier checkpoint (default runs/checkpoints/mnist-classifier[-quick].safetensors)",
  )
  .option("--vae <file>", "serve: VAE checkpoint (default runs/checkpoints/mnist-vae-b0.01-bce[-quick].safetensors)")
  .option("--json", "print JSON only")
  .parse();
const o = program.opts<{
  threads: string;
  seconds: string;
  rounds: string;
  only: string;
  python: string;
  json?: boolean;
  serveSeconds: string;
  connections: string;
  classifier?: string;
  vae?: string;
  eotBatches: string;
  scale: string;
  jobs?: string;
}>();
const threads = Number(o.threads);
const seconds = Number(o.seconds);
const rounds = Math.max(1, Number(o.rounds));
const only = o.only.split(",");

// The service benchmark stands alone: a server process under load, not alternating engine rounds.
if (only.includes("serve")) {
  const seconds = Number(o.serveSeconds);
  const r = await benchServe({
    threads,
    seconds,
    connections: o.connections.split(",").map(Number),
    classifier: o.classifier,
    vae: o.vae,
    maxBatch: 64,
  });
  console.log(o.json ? JSON.stringify(r, null, 2) : renderServeBench(r, seconds));
  if (only.length === 1) process.exit(0);
}

// The pipeline stands alone too: each engine runs the whole reproduction in its own child process.
if (only.includes("pipeline")) {
  const jobs = o.jobs === undefined ? undefined : Number(o.jobs);
  const r = benchPipeline({ scale: Number(o.scale), threads, rounds, python: o.python, jobs });
  console.log(o.json ? JSON.stringify(r, null, 2) : renderPipelineBench(r));
  if (only.length === 1) process.exit(0);
}

// Both engines get --threads for libtorch and for OpenBLAS alike: left alone, OpenBLAS keeps a spinning thread
// per core in each process, and a "1 thread" run used two cores' worth of CPU time.
setProcessThreads(threads);
manualSeed(0);
const pythonEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads) };

function oursOnce(): Record<string, number> {
  const out: Record<string, number> = {};
  if (only.includes("mnist")) {
    const m = new MnistCnn();
    for (const [k, v] of Object.entries(benchClassifier(m, 128, seconds))) out[`mnist.${k}`] = v;
    m.dispose();
  }
  if (only.includes("cifar10")) {
    const m = new Cifar10Cnn();
    for (const [k, v] of Object.entries(benchClassifier(m, 128, seconds))) out[`cifar10.${k}`] = v;
    m.dispose();
  }
  if (only.includes("vae")) {
    const v = new ConvVae(VAE_PRESETS.mnist);
    for (const [k, x] of Object.entries(benchVae(v, 128, seconds))) out[`mnist-vae.${k}`] = x;
    v.dispose();
  }
  return out;
}

const script = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bench", "torch_bench.py");
let torchNote = "";
function theirsOnce(layout: "nchw" | "channels_last" = "nchw"): Record<string, number> | undefined {
  if (!existsSync(o.python)) {
    torchNote = `No PyTorch comparison: ${o.python} not found (bash scripts/setup.sh --with-bench installs python3-torch)`;
    return undefined;
  }
  const args = [script, String(threads), String(seconds), only.join(","), layout];
  const r = spawnSync(o.python, args, { encoding: "utf8", env: pythonEnv });
  if (r.status !== 0) {
    torchNote = `PyTorch run failed: ${r.stderr.trim().split("\n").pop()}`;
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, number>;
}

const best = (acc: Record<string, number>, cur: Record<string, number> | undefined) => {
  for (const [k, v] of Object.entries(cur ?? {})) if (typeof v === "number") acc[k] = Math.max(acc[k] ?? 0, v);
};
const ours: Record<string, number> = {};
const theirs: Record<string, number> = {};
const purifierScript = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bench", "torch_purifier.py");
function theirPurifier(): Record<string, number> | undefined {
  if (!existsSync(o.python)) return undefined;
  const r = spawnSync(o.python, [purifierScript, String(threads), String(seconds)], {
    encoding: "utf8",
    env: pythonEnv,
  });
  if (r.status !== 0) {
    torchNote = [torchNote, `PyTorch purifier run failed: ${r.stderr.trim().split("\n").pop()}`]
      .filter(Boolean)
      .join("\n");
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, number>;
}

const eotScript = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bench", "torch_eot.py");
function theirEot(): Record<string, number> | undefined {
  if (!existsSync(o.python)) return undefined;
  const r = spawnSync(o.python, [eotScript, String(threads), String(seconds), o.eotBatches], {
    encoding: "utf8",
    env: pythonEnv,
  });
  if (r.status !== 0) {
    torchNote = [torchNote, `PyTorch EOT run failed: ${r.stderr.trim().split("\n").pop()}`].filter(Boolean).join("\n");
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, number>;
}

/** The same figures under another name: "mnist.infer" -> "mnist.infer [nchw]". */
const tagged = (figures: Record<string, number> | undefined, tag: string) =>
  figures &&
  Object.fromEntries(
    Object.entries(figures).flatMap(([k, v]) => (typeof v === "number" ? [[`${k} [${tag}]`, v]] : [])),
  );

/**
 * Kernel rows: each engine with conv2d in NCHW and in channels-last memory, so the layout's gain is
 * shown apart from the engines' (vaeguard's default is channels-last, PyTorch's default NCHW).
 */
const defaultChannelsLast = getChannelsLast();
function kernelRound(): void {
  best(theirs, tagged(theirsOnce("nchw"), "nchw"));
  best(theirs, tagged(theirsOnce("channels_last"), "channels-last"));
  setChannelsLast(false);
  best(ours, tagged(oursOnce(), "nchw"));
  setChannelsLast(true);
  best(ours, tagged(oursOnce(), "channels-last"));
  setChannelsLast(defaultChannelsLast);
}

for (let r = 0; r < rounds; r++) {
  best(theirs, theirsOnce());
  best(ours, oursOnce());
  if (only.includes("kernels")) kernelRound();
  if (only.includes("purifier")) {
    best(theirs, theirPurifier());
    best(ours, await benchPurifier(128, seconds));
  }
  if (only.includes("eot")) {
    best(theirs, theirEot());
    best(ours, await benchEot(o.eotBatches.split(",").map(Number), seconds));
  }
  const largeParts = only.includes("large") ? LARGE_PARTS : LARGE_PARTS.filter((p) => only.includes(`large-${p}`));
  if (largeParts.length > 0) {
    const large = benchLarge({ threads, seconds, python: o.python, parts: largeParts });
    best(ours, large.ours);
    best(theirs, large.theirs);
    if (r === rounds - 1) torchNote = [torchNote, ...large.notes].filter(Boolean).join("\n");
  }
}
const haveTorch = Object.keys(theirs).length > 0;
/** Whole numbers for large rates, three significant digits for small ones (the 64x64 VAE: a few patches/s). */
const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v.toPrecision(3));
/** PyTorch's figure for a row: the EOT rows with one pass per sample compare with the same PyTorch loop. */
const theirsFor = (k: string) => theirs[k.replace(/\.sequential$/, "")];
const rows = Object.keys(ours).map((k) => ({
  figure: k,
  vaeguard: ours[k],
  pytorch: haveTorch ? theirsFor(k) : undefined,
  ratio: haveTorch && theirsFor(k) ? ours[k] / theirsFor(k) : undefined,
}));
const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${threads} threads, libtorch ${binding.versions().torch}, best of ${rounds} alternating rounds of ${seconds} s`;
if (o.json) {
  console.log(JSON.stringify({ machine, rows, note: torchNote || undefined }, null, 2));
} else {
  console.log(
    `Machine: ${machine}; batch 128 (eot-pgd.bN: batch N); images/s (higher is better); ` +
      `rows without [layout]: each engine's default (vaeguard conv2d ${defaultChannelsLast ? "channels-last" : "NCHW"}, PyTorch NCHW)` +
      (only.includes("eot")
        ? "; eot-pgd: images attacked/s, L-inf PGD eps 0.1, 5 steps, EOT 10 through the MNIST VAE + CNN; .sequential: vaeguard with one pass per EOT sample"
        : "") +
      (only.includes("purifier")
        ? "; .perCpuSecond: images per CPU-second of each engine's process, steadier than wall time on a shared machine"
        : ""),
  );
  const width = Math.max(26, ...rows.map((r) => r.figure.length + 2));
  console.log("figure".padEnd(width) + "vaeguard".padStart(12) + "pytorch".padStart(12) + "ratio".padStart(8));
  for (const r of rows) {
    console.log(
      r.figure.padEnd(width) +
        fmt(r.vaeguard).padStart(12) +
        (r.pytorch === undefined ? "-" : fmt(r.pytorch)).padStart(12) +
        (r.ratio ? r.ratio.toFixed(2) + "x" : "-").padStart(8),
    );
  }
  if (torchNote) console.log(torchNote);
}
