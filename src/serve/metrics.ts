/**
 * Prometheus metrics of one server (prom-client, its own registry so that
 * several servers in one process, as in the tests, do not collide): request
 * counts and latencies by route, batch sizes, queue depth, live tensors, and
 * prom-client's process metrics (resident memory, event-loop lag, GC).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { memory } from "../core/engine.js";

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"method" | "route" | "status">;
  readonly latency: Histogram<"method" | "route">;
  readonly batchSize: Histogram<"operation">;
  readonly rejected: Counter<"reason">;

  /** `otherTensors`: tensors alive elsewhere in the process (the model worker's, as it last reported). */
  constructor(queue: () => { depth: number; active: number }, otherTensors: () => number = () => 0) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: "vaeguard_http_requests_total",
      help: "HTTP requests answered, by method, route and status code",
      labelNames: ["method", "route", "status"],
      registers,
    });
    this.latency = new Histogram({
      name: "vaeguard_http_request_duration_seconds",
      help: "Time from request to reply, by method and route",
      labelNames: ["method", "route"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.batchSize = new Histogram({
      name: "vaeguard_batch_size",
      help: "Images per model batch, by operation (purify, classify, attack)",
      labelNames: ["operation"],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.rejected = new Counter({
      name: "vaeguard_rejected_total",
      help: "Requests refused by the batcher (overloaded, timeout)",
      labelNames: ["reason"],
      registers,
    });
    new Gauge({
      name: "vaeguard_queue_depth",
      help: "Images waiting for a batch",
      registers,
      collect() {
        this.set(queue().depth);
      },
    });
    new Gauge({
      name: "vaeguard_batches_running",
      help: "Model batches running now",
      registers,
      collect() {
        this.set(queue().active);
      },
    });
    new Gauge({
      name: "vaeguard_live_tensors",
      help: "libtorch tensors alive in this process, main thread and model worker (grows only if something leaks)",
      registers,
      collect() {
        this.set(memory().numTensors + otherTensors());
      },
    });
  }
}
