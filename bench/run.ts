/**
 * `npm run bench`: images/s of vaeguard and of PyTorch on the same machine in
 * the same run, and their ratio. Not a test: timings on a shared machine are noisy.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cpus } from "node:os";
import { Command } from "commander";
import { setNumThreads, manualSeed } from "../src/core/engine.js";
import { binding } from "../src/binding.js";
import { MnistCnn, Cifar10Cnn } from "../src/models/classifiers.js";
import { benchClassifier } from "./classifiers.js";

const program = new Command()
  .name("bench")
  .option("--threads <n>", "intra-op threads for both engines", "2")
  .option("--seconds <s>", "seconds per measurement", "3")
  .option("--only <list>", "comma-separated: mnist,cifar10", "mnist,cifar10")
  .option("--python <path>", "python with torch for the comparison", "/usr/bin/python3")
  .option("--json", "print JSON only")
  .parse();
const o = program.opts<{ threads: string; seconds: string; only: string; python: string; json?: boolean }>();
const threads = Number(o.threads);
const seconds = Number(o.seconds);
const only = o.only.split(",");

setNumThreads(threads);
manualSeed(0);
const ours: Record<string, number> = {};
if (only.includes("mnist")) {
  const m = new MnistCnn();
  for (const [k, v] of Object.entries(benchClassifier(m, 128, seconds))) ours[`mnist.${k}`] = v;
  m.dispose();
}
if (only.includes("cifar10")) {
  const m = new Cifar10Cnn();
  for (const [k, v] of Object.entries(benchClassifier(m, 128, seconds))) ours[`cifar10.${k}`] = v;
  m.dispose();
}

let theirs: Record<string, number> | undefined;
let torchNote = "";
const script = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bench", "torch_bench.py");
if (existsSync(o.python)) {
  const r = spawnSync(o.python, [script, String(threads), String(seconds), only.join(",")], { encoding: "utf8" });
  if (r.status === 0) {
    theirs = JSON.parse(r.stdout.trim().split("\n").pop()!);
  } else {
    torchNote = `PyTorch run failed: ${r.stderr.trim().split("\n").pop()}`;
  }
} else {
  torchNote = `No PyTorch comparison: ${o.python} not found (apt-get install python3-torch)`;
}

const rows = Object.keys(ours).map((k) => ({
  figure: k,
  vaeguard: ours[k],
  pytorch: theirs?.[k],
  ratio: theirs?.[k] ? ours[k] / theirs[k] : undefined,
}));
const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${threads} threads, libtorch ${binding.versions().torch}`;
if (o.json) {
  console.log(JSON.stringify({ machine, rows, note: torchNote || undefined }, null, 2));
} else {
  console.log(`Machine: ${machine}; batch 128; images/s (higher is better)`);
  console.log("figure".padEnd(20) + "vaeguard".padStart(12) + "pytorch".padStart(12) + "ratio".padStart(8));
  for (const r of rows) {
    console.log(
      r.figure.padEnd(20) +
        r.vaeguard.toFixed(0).padStart(12) +
        (r.pytorch?.toFixed(0) ?? "-").padStart(12) +
        (r.ratio ? r.ratio.toFixed(2) + "x" : "-").padStart(8),
    );
  }
  if (torchNote) console.log(torchNote);
}
