/**
 * Resident memory over a long synchronous training loop (not a test: it prints
 * the curve). The loop never yields to the event loop, as a user's script may
 * not: memory must stay flat because of the allocator settings and deterministic
 * handle release, not because finalizers happen to run.
 *
 *   node dist/bench/memory.js --model mnist-cnn --steps 20000 --batch 8
 *   node dist/bench/memory.js --model small --steps 20000 --json
 */
import { Command } from "commander";
import { memory, manualSeed, setNumThreads } from "../src/core/engine.js";
import { binding } from "../src/binding.js";
import { checkInt, checkOneOf } from "../src/core/validate.js";
import { makeTrainingLoop, MEMORY_MODELS, type MemoryModel } from "../test/helpers/memory-loop.js";

const program = new Command()
  .name("bench-memory")
  .option("--model <name>", `one of ${MEMORY_MODELS.join(", ")}`, "mnist-cnn")
  .option("--steps <n>", "training steps", "20000")
  .option("--batch <n>", "batch size", "8")
  .option("--every <n>", "print resident memory every n steps", "1000")
  .option("--threads <n>", "intra-op threads", "1")
  .option("--json", "print one JSON object at the end instead of lines")
  .parse();
const o = program.opts<{
  model: string;
  steps: string;
  batch: string;
  every: string;
  threads: string;
  json?: boolean;
}>();
const model = checkOneOf(o.model, "--model", MEMORY_MODELS) as MemoryModel;
const steps = checkInt(Number(o.steps), "--steps", 1, 10_000_000);
const batch = checkInt(Number(o.batch), "--batch", 1, 4096);
const every = checkInt(Number(o.every), "--every", 1);
setNumThreads(checkInt(Number(o.threads), "--threads", 1, 64));
manualSeed(0);

const MB = 2 ** 20;
const loop = makeTrainingLoop(model, batch);
const curve: { step: number; rssMB: number; tensors: number }[] = [];
const record = (step: number) => {
  const rssMB = Math.round(process.memoryUsage().rss / MB);
  const tensors = memory().numTensors;
  curve.push({ step, rssMB, tensors });
  if (!o.json)
    console.log(`step ${String(step).padStart(7)}  rss ${String(rssMB).padStart(6)} MB  live tensors ${tensors}`);
};
const t0 = performance.now();
record(0);
for (let i = 1; i <= steps; i++) {
  loop.step();
  if (i % every === 0 || i === steps) record(i);
}
const seconds = (performance.now() - t0) / 1000;
loop.dispose();
const first = curve.find((c) => c.step >= Math.min(every, steps)) ?? curve[0];
const peak = Math.max(...curve.map((c) => c.rssMB));
const summary = {
  model,
  steps,
  batch,
  rssAfterFirstReportMB: first.rssMB,
  peakRssMB: peak,
  growthAfterWarmupMB: peak - first.rssMB,
  seconds: Math.round(seconds),
  allocator: binding.allocatorSettings(),
};
if (o.json) console.log(JSON.stringify({ ...summary, curve }));
else console.log(JSON.stringify(summary));
