/**
 * A stand-in model worker for test/serve/worker.test.ts: it says it is ready,
 * then dies on the first batch it is sent (exit, or an uncaught exception),
 * as a worker that hits a fatal error would.
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";

if (!isMainThread && parentPort && (workerData as { role?: string } | undefined)?.role === "vaeguard-serve-models") {
  const port = parentPort;
  const how = process.env.VAEGUARD_TEST_CRASH ?? "exit";
  port.postMessage({ type: "ready", live: 0 });
  port.on("message", () => {
    if (how === "throw") throw new Error("the model worker fell over");
    process.exit(3);
  });
}
