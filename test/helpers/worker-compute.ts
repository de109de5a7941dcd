/**
 * A deterministic workload for test/native/worker.test.ts, and the worker
 * entry point that runs it. Imported on the main thread it only exports
 * `workload`; started as a Worker (with workerData.role "vaeguard-test") it
 * loads the addon, reports, computes and posts its results.
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { memory, tidy } from "../../src/core/engine.js";
import { arange, grad } from "../../src/core/tensor.js";
import * as F from "../../src/nn/functional.js";

export interface WorkloadResult {
  matmulSum: number;
  convSum: number;
  gradSum: number;
}

/** Matmul, convolution and a gradient on inputs made without randomness (the generator is process-wide). */
export function workload(seed: number): WorkloadResult {
  return tidy(() => {
    const a = arange(0, 48 * 48, 1, { dtype: "float32" })
      .reshape(48, 48)
      .div(48 * 48)
      .add(seed);
    const matmulSum = a.matmul(a.transpose(0, 1)).sum().item();
    const img = a.reshape(1, 1, 48, 48);
    const kernel = arange(0, 9, 1, { dtype: "float32" }).reshape(1, 1, 3, 3).div(9);
    const convSum = F.conv2d(img, kernel, null, { padding: 1 }).relu().sum().item();
    const x = a.narrow(0, 0, 4).to("float64").requiresGrad_();
    const [g] = grad(x.mul(x).sum(), [x]);
    return { matmulSum, convSum, gradSum: g.sum().item() };
  });
}

interface WorkerData {
  role: string;
  iterations: number;
  seed: number;
  leaveLive?: boolean;
  /**
   * Optional start line shared with the main thread: [0] is set to 1 when the worker may start; the worker adds
   * 1 to [1] once its first iteration is done. Lets a test know the threads ran at once without timing them.
   */
  startLine?: Int32Array;
}

if (!isMainThread && parentPort && (workerData as WorkerData | undefined)?.role === "vaeguard-test") {
  const port = parentPort;
  const { iterations, seed, leaveLive, startLine } = workerData as WorkerData;
  port.postMessage({ type: "ready", liveAtStart: memory().numTensors });
  if (startLine) Atomics.wait(startLine, 0, 0);
  const started = Date.now();
  let last: WorkloadResult | undefined;
  for (let i = 0; i < iterations; i++) {
    last = workload(seed);
    if (i === 0 && startLine) Atomics.add(startLine, 1, 1);
  }
  const finished = Date.now();
  if (leaveLive) {
    // Left for the environment's teardown to free when the worker exits.
    arange(10);
  }
  port.postMessage({ type: "done", result: last, started, finished, liveAtEnd: memory().numTensors });
}
