/**
 * The model worker (see runner.ts): loads its own copy of the server's
 * models from the same files, then runs the batches it is sent, one at a
 * time, in the order they come, and answers each with its result or its
 * error. Pixels arrive and leave as flat float32 arrays whose buffers are
 * transferred, not copied. Only runs when started as a Worker with
 * workerData.role "vaeguard-serve-models".
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { manualSeed, memory, setNumThreads } from "../core/engine.js";
import { attackBatch, classifyFlat, purifyFlat, splitImages } from "./compute.js";
import { loadServeModels, type ServeModels } from "./models.js";
import { toWorkerError, type WorkerData, type WorkerJob, type WorkerReply } from "./runner.js";

async function run(models: ServeModels, job: WorkerJob): Promise<{ reply: WorkerReply; transfer: ArrayBuffer[] }> {
  const defense = (id: string) => {
    const d = models.defenses.find((x) => x.id === id);
    if (!d) throw new Error(`no served defense "${id}"`);
    return d.defense;
  };
  switch (job.op) {
    case "purify": {
      const batch = await purifyFlat(defense(job.defense), job.batch);
      return {
        reply: { type: "result", id: job.id, live: memory().numTensors, batch },
        transfer: [batch.data.buffer as ArrayBuffer],
      };
    }
    case "classify": {
      const defenses = models.defenses.map((d) => d.defense);
      const probs = await classifyFlat(models.classifier, defenses, job.batch);
      return {
        reply: { type: "result", id: job.id, live: memory().numTensors, probs, defenses: defenses.length },
        transfer: [probs.buffer as ArrayBuffer],
      };
    }
    case "attack": {
      const r = job.request;
      const images = splitImages(job.batch);
      const outcomes = await attackBatch(
        models.classifier,
        { choice: r.choice, eps: r.eps, mode: r.mode, defense: defense(r.defense), eot: r.eot },
        images.map((image, i) => ({ image, label: job.labels[i] })),
      );
      return { reply: { type: "result", id: job.id, live: memory().numTensors, outcomes }, transfer: [] };
    }
  }
}

if (!isMainThread && parentPort && (workerData as WorkerData | undefined)?.role === "vaeguard-serve-models") {
  const port = parentPort;
  const data = workerData as WorkerData;
  let models: ServeModels | undefined;
  try {
    if (data.threads) setNumThreads(data.threads);
    manualSeed(data.seed);
    models = loadServeModels(data.files);
    port.postMessage({ type: "ready", live: memory().numTensors } satisfies WorkerReply);
  } catch (e) {
    port.postMessage({ type: "load-error", error: toWorkerError(e) } satisfies WorkerReply);
  }
  if (models) {
    const m = models;
    // One batch at a time, in order: libtorch's own threads parallelise inside a batch.
    let chain: Promise<void> = Promise.resolve();
    port.on("message", (job: WorkerJob) => {
      chain = chain.then(async () => {
        try {
          const { reply, transfer } = await run(m, job);
          port.postMessage(reply, transfer);
        } catch (e) {
          port.postMessage({
            type: "error",
            id: job.id,
            live: memory().numTensors,
            error: toWorkerError(e),
          } satisfies WorkerReply);
        }
      });
    });
  }
}
