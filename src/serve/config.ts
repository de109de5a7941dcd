/**
 * Settings of `vaeguard serve`, from flags and an optional JSON or YAML
 * config file (same names as the long flags, without "--"; flags override
 * the file; relative paths in the file are taken from the file's folder).
 * Every bad value is reported in one line that names the flag or the key.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { readConfigMapping } from "../io/config-file.js";
import { ArgumentError } from "../core/errors.js";
import { fail } from "../core/validate.js";
import { needsVae, splitDefenseList } from "../eval/config.js";
import { checkRows, type EvaluationResult } from "../report/types.js";
import { DEFAULT_BATCHER_OPTIONS, type BatcherOptions } from "./batching.js";
import { DEFAULT_ATTACK_LIMITS, DEFAULT_LIMITS, type AttackLimits, type ServeLimits } from "./context.js";
import type { ModelFiles } from "./models.js";

export interface ServeConfig {
  host: string;
  port: number;
  models: ModelFiles;
  batching: Omit<BatcherOptions, "onBatch">;
  limits: ServeLimits;
  attack: AttackLimits;
  /** Name of the environment variable holding the API key (the key itself never goes on a command line). */
  apiKeyEnv?: string;
  /** MNIST test digits offered by the page (0: none). */
  samples: number;
  results?: string;
  threads?: number;
  /** Where the models run: a worker thread (default) or the main thread. */
  modelThread: "worker" | "main";
  seed: number;
  log: boolean;
}

/** Settings keys: the long flags without "--". */
export const SERVE_KEYS = [
  "classifier",
  "input-shape",
  "vae",
  "patch-vae",
  "defenses",
  "host",
  "port",
  "attack",
  "api-key-env",
  "max-batch",
  "batch-window-ms",
  "concurrency",
  "queue-limit",
  "queue-timeout-ms",
  "body-limit",
  "max-pixels",
  "max-images",
  "request-timeout-ms",
  "max-attack-steps",
  "max-eot",
  "samples",
  "results",
  "threads",
  "model-thread",
  "seed",
  "log",
] as const;
export type ServeKey = (typeof SERVE_KEYS)[number];
export type RawServeSettings = Partial<Record<ServeKey, unknown>>;

export function loadServeConfigFile(file: string): RawServeSettings {
  const parsed = readConfigMapping(file);
  const out: RawServeSettings = {};
  for (const [key, value] of Object.entries(parsed)) {
    const kebab = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/_/g, "-");
    if (!(SERVE_KEYS as readonly string[]).includes(kebab)) {
      throw new ArgumentError(`${file}: unknown key "${key}" (known keys: ${SERVE_KEYS.join(", ")})`);
    }
    out[kebab as ServeKey] = value;
  }
  return out;
}

interface Source {
  raw: unknown;
  where: string;
  base: string;
}

function int(s: Source, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n =
    typeof s.raw === "number" ? s.raw : typeof s.raw === "string" && /^\s*\d+\s*$/.test(s.raw) ? Number(s.raw) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    fail(
      `integer ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `between ${min} and ${max}`}`,
      s.where,
      s.raw,
    );
  }
  return n;
}

function num(s: Source, min: number): number {
  const n = typeof s.raw === "number" ? s.raw : typeof s.raw === "string" && s.raw.trim() !== "" ? Number(s.raw) : NaN;
  if (!Number.isFinite(n) || n < min) fail(`number of at least ${min}`, s.where, s.raw);
  return n;
}

function str(s: Source): string {
  if (typeof s.raw !== "string" || s.raw.trim() === "") fail("non-empty string", s.where, s.raw);
  return s.raw.trim();
}

function bool(s: Source): boolean {
  if (typeof s.raw === "boolean") return s.raw;
  if (s.raw === "true") return true;
  if (s.raw === "false") return false;
  return fail("true or false", s.where, s.raw);
}

const path = (s: Source) => resolve(s.base, str(s));

type Pick = (key: ServeKey) => Source | undefined;
type Get = <T>(key: ServeKey, parse: (s: Source) => T, dflt: T) => T;

/**
 * Look a key up in the flags first, then in the file, remembering where the
 * value came from so errors name the flag or the key and relative paths are
 * taken from the right folder.
 */
function settingsReader(
  flags: RawServeSettings,
  options: { configFile?: string; cwd?: string },
): { pick: Pick; get: Get } {
  const cwd = options.cwd ?? process.cwd();
  const file = options.configFile ? resolve(cwd, options.configFile) : undefined;
  const fromFile = file ? loadServeConfigFile(file) : {};
  const pick = (key: ServeKey): Source | undefined => {
    if (flags[key] !== undefined) return { raw: flags[key], where: `--${key}`, base: cwd };
    if (fromFile[key] !== undefined)
      return { raw: fromFile[key], where: `"${key}" in ${options.configFile}`, base: dirname(file!) };
    return undefined;
  };
  const get = <T>(key: ServeKey, parse: (s: Source) => T, dflt: T): T => {
    const s = pick(key);
    return s === undefined ? dflt : parse(s);
  };
  return { pick, get };
}

function requireClassifier(pick: Pick): Source {
  const clf = pick("classifier");
  if (!clf) {
    throw new ArgumentError(
      "--classifier is required: a classifier checkpoint (e.g. runs/checkpoints/mnist-classifier.safetensors from `vaeguard reproduce mnist`)",
    );
  }
  return clf;
}

/** `--patch-vae SIZE=FILE`, repeatable (or a list in the file). */
function parsePatchVaes(pv: Source | undefined): Record<string, string> {
  const patchVaes: Record<string, string> = {};
  if (pv) {
    const entries = Array.isArray(pv.raw) ? pv.raw : [pv.raw];
    for (const e of entries) {
      const m = typeof e === "string" ? /^(\d+)=(.+)$/.exec(e.trim()) : null;
      if (!m) fail("SIZE=FILE (e.g. 16=runs/checkpoints/patch16.safetensors)", pv.where, e);
      patchVaes[m[1]] = resolve(pv.base, m[2]);
    }
  }
  return patchVaes;
}

/** The defenses to serve; the default depends on whether a VAE was given, and a VAE defense needs one. */
function resolveDefenses(defensesRaw: Source | undefined, vae: string | undefined): string[] {
  let defenses: string[];
  if (defensesRaw === undefined) defenses = vae ? ["vae", "jpeg:23"] : ["jpeg:23"];
  else if (Array.isArray(defensesRaw.raw)) defenses = defensesRaw.raw.map((d) => str({ ...defensesRaw, raw: d }));
  else defenses = splitDefenseList(str(defensesRaw));
  for (const d of defenses) {
    if (needsVae(d) && !vae) {
      throw new ArgumentError(
        `Defense "${d}" needs a VAE: pass --vae with a VAE checkpoint (e.g. runs/checkpoints/mnist-vae-b0.01-bce.safetensors)`,
      );
    }
  }
  return defenses;
}

function inputShape(s: Source): [number, number, number] {
  const parts = (Array.isArray(s.raw) ? s.raw : String(s.raw).split(",")).map((p) => Number(p));
  if (parts.length !== 3 || !parts.every((p) => Number.isInteger(p) && p > 0))
    fail("C,H,W (e.g. 3,224,224)", s.where, s.raw);
  return parts as [number, number, number];
}

function modelThread(s: Source): "worker" | "main" {
  const v = str(s);
  if (v !== "worker" && v !== "main") fail('"worker" or "main"', s.where, s.raw);
  return v as "worker" | "main";
}

function batchingSettings(get: Get): ServeConfig["batching"] {
  return {
    maxBatchSize: get("max-batch", (s) => int(s, 1, 4096), DEFAULT_BATCHER_OPTIONS.maxBatchSize),
    windowMs: get("batch-window-ms", (s) => num(s, 0), DEFAULT_BATCHER_OPTIONS.windowMs),
    concurrency: get("concurrency", (s) => int(s, 1, 64), DEFAULT_BATCHER_OPTIONS.concurrency),
    queueLimit: get("queue-limit", (s) => int(s, 1), DEFAULT_BATCHER_OPTIONS.queueLimit),
    timeoutMs: get("queue-timeout-ms", (s) => int(s, 1), DEFAULT_BATCHER_OPTIONS.timeoutMs),
  };
}

function limitSettings(get: Get): ServeLimits {
  return {
    bodyLimit: get("body-limit", (s) => int(s, 1024), DEFAULT_LIMITS.bodyLimit),
    maxPixels: get("max-pixels", (s) => int(s, 1), DEFAULT_LIMITS.maxPixels),
    maxImagesPerRequest: get("max-images", (s) => int(s, 1), DEFAULT_LIMITS.maxImagesPerRequest),
    requestTimeoutMs: get("request-timeout-ms", (s) => int(s, 100), DEFAULT_LIMITS.requestTimeoutMs),
  };
}

function attackSettings(get: Get): AttackLimits {
  return {
    ...DEFAULT_ATTACK_LIMITS,
    enabled: get("attack", bool, true),
    maxSteps: get("max-attack-steps", (s) => int(s, 1), DEFAULT_ATTACK_LIMITS.maxSteps),
    maxEot: get("max-eot", (s) => int(s, 1), DEFAULT_ATTACK_LIMITS.maxEot),
  };
}

export function resolveServeConfig(
  flags: RawServeSettings,
  options: { configFile?: string; cwd?: string } = {},
): ServeConfig {
  const { pick, get } = settingsReader(flags, options);

  // The model settings are checked first (in this order) so that a missing
  // classifier or VAE is the error reported, before any tuning flag.
  const clf = requireClassifier(pick);
  const vae = get("vae", path, undefined as string | undefined);
  const patchVaes = parsePatchVaes(pick("patch-vae"));
  const defenses = resolveDefenses(pick("defenses"), vae);
  const shape = get("input-shape", inputShape, undefined as [number, number, number] | undefined);

  // Fields in the order they were always read, so the first bad value reported stays the same.
  const host = get("host", str, "127.0.0.1");
  return {
    host,
    port: get("port", (s) => int(s, 0, 65535), 8080),
    models: { classifier: path(clf), inputShape: shape, vae, patchVaes, defenses },
    batching: batchingSettings(get),
    limits: limitSettings(get),
    attack: attackSettings(get),
    apiKeyEnv: get("api-key-env", str, undefined as string | undefined),
    samples: get("samples", (s) => int(s, 0), 1000),
    results: get("results", path, undefined as string | undefined),
    threads: get("threads", (s) => int(s, 1), undefined as number | undefined),
    modelThread: get("model-thread", modelThread, "worker" as "worker" | "main"),
    seed: get("seed", (s) => int(s, 0), 0),
    log: get("log", bool, false),
  };
}

/** A results.json of `reproduce` or `evaluate`, checked, for the page's plot. */
export function loadResultsFile(file: string): EvaluationResult {
  let parsed: EvaluationResult;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8")) as EvaluationResult;
  } catch (e) {
    throw new ArgumentError(`${file}: cannot read the results file (${(e as Error).message.split("\n")[0]})`);
  }
  if (
    typeof parsed !== "object" ||
    parsed === null ||
    !Array.isArray(parsed.rows) ||
    typeof parsed.metadata !== "object"
  ) {
    throw new ArgumentError(`${file}: not a vaeguard results file (expected {"metadata": ..., "rows": [...]})`);
  }
  try {
    checkRows(parsed.rows, "rows");
  } catch (e) {
    throw new ArgumentError(`${file}: ${(e as Error).message}`);
  }
  return parsed;
}
