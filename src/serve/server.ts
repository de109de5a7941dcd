/**
 * The purification service as a Fastify app factory. `createServer` returns
 * the app without listening, so tests drive it with `app.inject()`; `listen`
 * binds it (127.0.0.1 unless told otherwise) with a request timeout.
 *
 * Hostile input is handled here and in images.ts: a body limit, a pixel
 * limit, a request timeout, JSON errors with one shape for every failure
 * (errors.ts), an optional API key, and no file paths from clients anywhere.
 */
import { createServer as createHttpServer } from "node:http";
import { timingSafeEqual, createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyError, type FastifyInstance } from "fastify";
import { ArgumentError, ShapeError } from "../core/errors.js";
import { DynamicBatcher, type BatcherOptions } from "./batching.js";
import {
  DEFAULT_ATTACK_LIMITS,
  DEFAULT_LIMITS,
  type AttackLimits,
  type SampleSet,
  type ServeContext,
  type ServeLimits,
} from "./context.js";
import { HttpError, errorBody } from "./errors.js";
import { ACCEPTED_CONTENT_TYPES } from "./images.js";
import { ServeMetrics } from "./metrics.js";
import type { ServeModels } from "./models.js";
import { InlineRunner, WorkerRunner, type ModelRunner } from "./runner.js";
import type { EvaluationResult } from "../report/types.js";
import { registerAttack } from "./routes/attack.js";
import { registerClassify } from "./routes/classify.js";
import { registerInfo } from "./routes/info.js";
import { registerPurify } from "./routes/purify.js";
import { registerSamples } from "./routes/samples.js";
import { registerWeb } from "./routes/web.js";

export interface ServeOptions {
  models: ServeModels;
  batching?: Partial<BatcherOptions>;
  limits?: Partial<ServeLimits>;
  attack?: Partial<AttackLimits>;
  /** Clients must send it as `Authorization: Bearer KEY` or `X-API-Key: KEY` for /v1/* and /metrics. */
  apiKey?: string;
  samples?: SampleSet;
  results?: EvaluationResult;
  /** Folder of the built page (default: dist/web of this package). */
  webDir?: string;
  /** Log requests with Fastify's logger (default false). */
  logger?: boolean;
  /**
   * Where the models run: "worker" (default when the models were loaded from files: a worker thread
   * with its own copy of them, so HTTP and codecs keep the main thread) or "main".
   */
  modelThread?: "worker" | "main";
  /** libtorch threads of the model worker (default: libtorch's own). */
  workerThreads?: number;
  /** Seed of the model worker's generator (default 0). */
  seed?: number;
  /** The model worker's script (tests only). */
  workerScript?: URL;
}

export interface Server {
  app: FastifyInstance;
  ctx: ServeContext;
  /** Listen on host:port (port 0: any free one); returns the URL. */
  listen(port?: number, host?: string): Promise<string>;
  /** Resolves when the models are loaded where they run (listen waits for it). */
  ready(): Promise<void>;
  /** Stop listening, refuse waiting work, stop the model worker. */
  close(): Promise<void>;
}

/** dist/src/serve/server.js -> dist/web */
export const DEFAULT_WEB_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "web");

const digest = (s: string) => createHash("sha256").update(s).digest();

function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === "string" && /^bearer /i.test(auth)) return auth.slice(7).trim();
  const k = headers["x-api-key"];
  return typeof k === "string" ? k : undefined;
}

/** Map any error to status, code, message and headers of the one error shape. */
function describeError(
  e: unknown,
  limits: ServeLimits,
): { status: number; code: string; message: string; headers: Record<string, string> } {
  if (e instanceof HttpError) return { status: e.status, code: e.code, message: e.message, headers: e.headers };
  const fe = e as FastifyError;
  if (fe?.validation) {
    return { status: 400, code: "invalid_request", message: `Invalid request: ${fe.message}`, headers: {} };
  }
  switch (fe?.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return {
        status: 413,
        code: "body_too_large",
        message: `The request body is larger than the limit of ${limits.bodyLimit} bytes`,
        headers: {},
      };
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return {
        status: 415,
        code: "unsupported_media_type",
        message: `Unsupported Content-Type; send ${ACCEPTED_CONTENT_TYPES.join(", ")} or application/json`,
        headers: {},
      };
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return { status: 400, code: "empty_body", message: "The JSON body is empty", headers: {} };
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return {
        status: 400,
        code: "invalid_request",
        message: "The Content-Length does not match the body",
        headers: {},
      };
  }
  if (e instanceof SyntaxError || fe?.code === "FST_ERR_CTP_INVALID_JSON_BODY") {
    return { status: 400, code: "invalid_json", message: `The body is not valid JSON (${fe.message})`, headers: {} };
  }
  // The library's own argument checks (attack options, epsilon range): the client's mistake.
  if (e instanceof ArgumentError || e instanceof ShapeError) {
    return { status: 400, code: "invalid_argument", message: (e as Error).message, headers: {} };
  }
  if (typeof fe?.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, code: "bad_request", message: fe.message, headers: {} };
  }
  return { status: 500, code: "internal", message: "Internal error; see the server log", headers: {} };
}

/**
 * Where the models run. A worker needs files to load its own copy from; the
 * runner starts loading at once so the first request does not pay for it.
 */
function createRunner(options: ServeOptions): ModelRunner {
  const files = options.models.files;
  const modelThread = options.modelThread ?? (files ? "worker" : "main");
  if (modelThread === "worker" && !files) {
    throw new ArgumentError("A model worker needs models loaded from files (loadServeModels)");
  }
  const runner: ModelRunner =
    modelThread === "worker"
      ? new WorkerRunner({
          files: files!,
          threads: options.workerThreads,
          seed: options.seed,
          script: options.workerScript,
        })
      : new InlineRunner(options.models);
  // Start loading now; a failure is answered per batch (500) and by listen().
  runner.ready().catch(() => {});
  return runner;
}

/** The bare Fastify app with the body limit and Node's own request timeouts. */
function createApp(options: ServeOptions, limits: ServeLimits): FastifyInstance {
  return Fastify({
    logger: options.logger ?? false,
    bodyLimit: limits.bodyLimit,
    // Node's own check of slow requests runs every connectionsCheckingInterval: keep it near the timeout.
    serverFactory: (handler) =>
      createHttpServer(
        {
          requestTimeout: limits.requestTimeoutMs,
          headersTimeout: Math.min(limits.requestTimeoutMs, 60000),
          connectionsCheckingInterval: Math.max(50, Math.min(1000, limits.requestTimeoutMs / 4)),
        },
        handler,
      ),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    return503OnClosing: true,
  });
}

/** Body parsers, and every failure (including unknown routes) answered in the one error shape. */
function installParsersAndErrors(app: FastifyInstance, limits: ServeLimits, metrics: ServeMetrics): void {
  // Only JSON (batches, attacks) and image bytes: anything else is a 415.
  app.removeContentTypeParser(["text/plain"]);
  app.addContentTypeParser([...ACCEPTED_CONTENT_TYPES], { parseAs: "buffer" }, (_request, body, done) =>
    done(null, body),
  );

  app.setErrorHandler((error, request, reply) => {
    const d = describeError(error, limits);
    if (d.status >= 500 && d.code === "internal") request.log.error(error);
    if (d.code === "overloaded" || d.code === "timeout") metrics.rejected.inc({ reason: d.code });
    return reply.status(d.status).headers(d.headers).send(errorBody(d.code, d.message));
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send(errorBody("not_found", `No route ${request.method} ${request.url.split("?")[0]}`)),
  );
}

/** Guard /v1/* and /metrics with the key; compare digests in constant time so timing leaks nothing. */
function installApiKeyCheck(app: FastifyInstance, apiKey: string): void {
  if (apiKey.length === 0) throw new ArgumentError("The API key must not be empty");
  const want = digest(apiKey);
  app.addHook("onRequest", async (request, reply) => {
    if (!request.url.startsWith("/v1/") && !request.url.startsWith("/metrics")) return;
    const got = presentedKey(request.headers);
    if (got === undefined || !timingSafeEqual(digest(got), want)) {
      return reply
        .status(401)
        .header("www-authenticate", "Bearer")
        .send(errorBody("unauthorized", "A valid API key is needed (Authorization: Bearer KEY or X-API-Key: KEY)"));
    }
  });
}

/** Count and time every response, by route pattern rather than raw URL to keep the label set small. */
function installRequestMetrics(app: FastifyInstance, metrics: ServeMetrics): void {
  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "unmatched";
    metrics.requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });
}

function registerRoutes(app: FastifyInstance, ctx: ServeContext, webDir: string): void {
  registerInfo(app, ctx);
  registerPurify(app, ctx);
  registerClassify(app, ctx);
  registerAttack(app, ctx);
  registerSamples(app, ctx);
  registerWeb(app, webDir);
}

export function createServer(options: ServeOptions): Server {
  const limits: ServeLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const attack: AttackLimits = { ...DEFAULT_ATTACK_LIMITS, ...options.attack };
  // The metrics read the batcher's queue when scraped; the batcher reports batch sizes to the metrics.
  const metrics: ServeMetrics = new ServeMetrics(
    () => batcher,
    () => runner.liveTensors,
  );
  const batcher = new DynamicBatcher({
    ...options.batching,
    onBatch: (key, size) => metrics.batchSize.observe({ operation: key.split("|")[0] }, size),
  });
  const runner = createRunner(options);
  const ctx: ServeContext = {
    models: options.models,
    runner,
    batcher,
    metrics,
    limits,
    attack,
    samples: options.samples,
    results: options.results,
  };

  const app = createApp(options, limits);
  installParsersAndErrors(app, limits, metrics);
  if (options.apiKey !== undefined) installApiKeyCheck(app, options.apiKey);
  installRequestMetrics(app, metrics);
  registerRoutes(app, ctx, options.webDir ?? DEFAULT_WEB_DIR);

  return {
    app,
    ctx,
    ready: () => runner.ready(),
    async listen(port = 0, host = "127.0.0.1") {
      await runner.ready();
      return app.listen({ port, host });
    },
    async close() {
      batcher.close();
      try {
        await app.close();
      } finally {
        await runner.close();
      }
    },
  };
}
