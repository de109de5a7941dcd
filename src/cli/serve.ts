/**
 * `vaeguard serve`: the purification service (HTTP API and web page) with
 * the classifier and defenses named by flags or a config file. Binds
 * 127.0.0.1 unless --host says otherwise.
 */
import type { Command } from "commander";
import { setProcessThreads } from "../core/concurrency.js";
import { manualSeed } from "../core/engine.js";
import { ArgumentError } from "../core/errors.js";
import { loadMnist } from "../data/mnist.js";
import { describeDefenses } from "../defenses/index.js";
import { loadResultsFile, resolveServeConfig, type RawServeSettings, type ServeConfig } from "../serve/config.js";
import { sampleSet, type SampleSet } from "../serve/context.js";
import { loadServeModels, type ServeModels } from "../serve/models.js";
import { createServer } from "../serve/server.js";
import { runAction } from "./common.js";

type Flags = Record<string, unknown> & { config?: string };

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

/** The classifier and the defenses in front of it. */
function addModelOptions(cmd: Command): Command {
  return cmd
    .option(
      "--classifier <file>",
      "classifier: vaeguard checkpoint (.safetensors), TF.js model.json or TorchScript (.pt)",
    )
    .option("--input-shape <c,h,w>", "input shape of a TorchScript classifier")
    .option("--vae <file>", "VAE checkpoint for the vae defense")
    .option("--patch-vae <size=file>", "patch VAE checkpoint for patchvae:SIZE/STRIDE (repeatable)", collect)
    .option(
      "--defenses <list>",
      'defense specs, comma-separated (default "vae,jpeg:23" with --vae, else "jpeg:23"); "none" is always served',
    );
}

/** Where to listen and who may call. */
function addAccessOptions(cmd: Command): Command {
  return cmd
    .option("--host <host>", "address to bind (default 127.0.0.1: this machine only)")
    .option("--port <n>", "port (default 8080; 0: any free port)")
    .option("--no-attack", "switch off POST /v1/attack")
    .option("--api-key-env <name>", "require the API key held in this environment variable for /v1/* and /metrics");
}

/** Batching, queueing and the limits that keep hostile or heavy requests bounded. */
function addCapacityOptions(cmd: Command): Command {
  return cmd
    .option("--max-batch <n>", "images per model batch at most (default 64)")
    .option(
      "--batch-window-ms <ms>",
      "how long a request waits for others to batch with, in milliseconds (default 0: a batch starts at the end of the event loop's turn, and while one runs the next gathers)",
    )
    .option("--concurrency <n>", "model batches running at once (default 1)")
    .option("--queue-limit <n>", "images waiting at most; beyond it 503 + Retry-After (default 512)")
    .option("--queue-timeout-ms <ms>", "longest wait for the model before a 503 (default 30000)")
    .option("--body-limit <bytes>", "largest request body (default 4194304)")
    .option("--max-pixels <n>", "largest image, width x height (default 4194304)")
    .option("--max-images <n>", "images per JSON batch request at most (default 64)")
    .option("--request-timeout-ms <ms>", "time a client has to send its request, else 408 (default 10000)")
    .option("--max-attack-steps <n>", "most steps an attack request may ask for (default 100)")
    .option("--max-eot <n>", "most EOT samples an attack request may ask (default 10)");
}

/** The page's extras, libtorch and logging. */
function addRuntimeOptions(cmd: Command): Command {
  return cmd
    .option("--samples <n>", "MNIST test digits the page offers (default 1000; 0: none)")
    .option("--results <file>", "results.json of reproduce or evaluate, for the page's accuracy plot")
    .option("--threads <n>", "libtorch threads (default: all cores)")
    .option(
      "--model-thread <where>",
      'where the models run: "worker" (a worker thread with its own copy, default) or "main" (Node\'s main thread)',
    )
    .option("--seed <n>", "seed of libtorch's generator (default 0)")
    .option("--log", "log every request (JSON lines on stdout)");
}

/** Command-line values under their long-flag names, as resolveServeConfig takes them. */
function flagsFrom(opts: Flags, cmd: Command): RawServeSettings {
  const flags: RawServeSettings = {};
  for (const [k, v] of Object.entries(opts)) {
    if (k === "config") continue;
    // --no-attack's default (true) must not override a config file's "attack: false".
    if (k === "attack" && cmd.getOptionValueSource("attack") !== "cli") continue;
    const kebab = k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`) as keyof RawServeSettings;
    flags[kebab] = v;
  }
  return flags;
}

/** The key itself is read from the environment so it never shows in a process list. */
function readApiKey(cfg: ServeConfig): string | undefined {
  let apiKey: string | undefined;
  if (cfg.apiKeyEnv) {
    apiKey = process.env[cfg.apiKeyEnv];
    if (!apiKey)
      throw new ArgumentError(`--api-key-env ${cfg.apiKeyEnv}: that environment variable is not set or empty`);
  }
  return apiKey;
}

/** MNIST test digits for the page, only when the classifier takes 28x28 grey images. */
function loadSamples(cfg: ServeConfig, models: ServeModels): SampleSet | undefined {
  let samples: SampleSet | undefined;
  const [c, h, w] = models.classifier.inputShape;
  if (cfg.samples > 0 && c === 1 && h === 28 && w === 28) {
    const test = loadMnist({ split: "test", limit: cfg.samples });
    samples = sampleSet(test, cfg.samples);
    test.images.dispose();
    test.labels.dispose();
  }
  return samples;
}

async function runServe(opts: Flags, cmd: Command): Promise<void> {
  const cfg = resolveServeConfig(flagsFrom(opts, cmd), { configFile: opts.config });
  if (cfg.threads) setProcessThreads(cfg.threads);
  manualSeed(cfg.seed);
  const apiKey = readApiKey(cfg);
  const results = cfg.results ? loadResultsFile(cfg.results) : undefined;
  const models = loadServeModels(cfg.models);
  const samples = loadSamples(cfg, models);
  const server = createServer({
    models,
    batching: cfg.batching,
    limits: cfg.limits,
    attack: cfg.attack,
    apiKey,
    samples,
    results,
    logger: cfg.log,
    modelThread: cfg.modelThread,
    workerThreads: cfg.threads,
    seed: cfg.seed,
  });
  let url: string;
  try {
    url = await server.listen(cfg.port, cfg.host);
  } catch (e) {
    await server.close().catch(() => {});
    models.dispose();
    throw e;
  }
  const loopback = ["127.0.0.1", "::1", "localhost"].includes(cfg.host);
  console.log(
    `vaeguard serve: listening on ${url} (defenses ${models.defenses.map((d) => d.id).join(", ")}; attack endpoint ${cfg.attack.enabled ? "on" : "off"}${apiKey ? "; API key required" : ""})`,
  );
  if (!loopback && !apiKey) {
    process.stderr.write(`vaeguard serve: warning: listening on ${cfg.host} without an API key (--api-key-env)\n`);
  }
  const stop = () => {
    void server.close().then(() => {
      models.dispose();
      process.exit(0);
    });
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

export function register(program: Command): void {
  const command = program
    .command("serve")
    .description("run the purification service: HTTP API (/v1/purify, /v1/classify, /v1/attack) and a demo page")
    .option("--config <file>", "JSON or YAML file with any of the settings below (flags override it)");
  // Declared in this order so --help lists them as before.
  addModelOptions(command);
  addAccessOptions(command);
  addCapacityOptions(command);
  addRuntimeOptions(command);
  command
    .addHelpText(
      "after",
      `\nDefenses:\n${describeDefenses()}\n\nExample:\n  vaeguard serve --classifier runs/checkpoints/mnist-classifier.safetensors \\\n    --vae runs/checkpoints/mnist-vae-b0.01-bce.safetensors --results runs/mnist/results.json`,
    )
    .action((opts: Flags, cmd: Command) => runAction(() => runServe(opts, cmd)));
}
