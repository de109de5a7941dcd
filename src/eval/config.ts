/**
 * Settings of `vaeguard evaluate`: parsed from the command line and from a
 * JSON or YAML config file (flags override the file), validated with one-line
 * messages that name the bad key or the bad part of a spec.
 *
 * Attack specs: NAME[:KEY=VALUE[:KEY=VALUE...]], several separated by commas,
 *   fgsm | ifgsm:steps=10 | pgd:steps=40:restarts=2 | pgd-l2:steps=100:stepSize=0.05 |
 *   square:queries=1000:pInit=0.05
 * In a config file an attack may also be an object: {name: pgd, steps: 40, restarts: 2}.
 *
 * Defense specs are those of createDefense (src/defenses/index.ts); on the
 * command line they are separated by commas, and a comma-separated piece that
 * does not start with a defense name continues the previous spec
 * ("vae:samples=8,clip=2,jpeg:23" is two defenses).
 */
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { readConfigMapping } from "../io/config-file.js";
import { ArgumentError } from "../core/errors.js";
import { parseNumber } from "../core/spec.js";
import { fail } from "../core/validate.js";
import { LIMITS } from "../core/limits.js";
import { ATTACK_NAMES, attackChoice, checkAttackKind, parseAttackSpec, type AttackChoice } from "../attacks/index.js";
import { DEFENSE_NAMES, createDefense } from "../defenses/index.js";
import type { AttackMode } from "./results.js";
import { RECIPES, type SmallDataset } from "./reproduce.js";

export type EvaluateMode = AttackMode | "both";
export const EVALUATE_MODES: readonly EvaluateMode[] = ["gray-box", "adaptive", "both"];

// Attack specs, their parameters and their checks are the attacks' own (src/attacks/index.ts).
export { parseAttackSpec, type AttackChoice };

/** Fully resolved settings of one evaluation. */
export interface EvaluateConfig {
  dataset: SmallDataset;
  dataDir?: string;
  /** Test images (the first N of the test set); undefined: all. */
  samples?: number;
  classifier: string;
  vae?: string;
  defenses: string[];
  attacks: AttackChoice[];
  eps: number[];
  mode: EvaluateMode;
  /** EOT samples per gradient (per query for Square) on randomized defenses in adaptive mode. */
  eot: number;
  /** Forward passes that score a randomized defense (their mean is reported). */
  passes: number;
  seed: number;
  out: string;
  batchSize: number;
  /** Images per cell, the unit of work, seeding and resumption (default: the batch size). */
  shardSize: number;
}

/** Keys of a config file; the long command-line options without "--". */
export const CONFIG_KEYS = [
  "dataset",
  "data-dir",
  "samples",
  "classifier",
  "vae",
  "defenses",
  "attacks",
  "eps",
  "mode",
  "eot",
  "passes",
  "seed",
  "out",
  "batch-size",
  "shard-size",
] as const;
export type ConfigKey = (typeof CONFIG_KEYS)[number];

/** Options that only make sense for one invocation, so a config file may not hold them. */
const COMMAND_LINE_ONLY = ["config", "restart", "json", "quiet", "threads", "queue", "queue-timeout"];

/** Raw values by key, as a config file or the command line gives them. */
export type RawSettings = Partial<Record<ConfigKey, unknown>>;

export const DEFAULTS = {
  dataset: "mnist" as SmallDataset,
  samples: 1000,
  attacks: "fgsm,pgd,square",
  mode: "both" as EvaluateMode,
  eot: 10,
  passes: 5,
  seed: 0,
  batchSize: 250,
  defensesWithVae: "none,jpeg:23,vae",
  defensesWithoutVae: "none,jpeg:23",
};

/** Where a value came from, for messages: `--eps` or `"eps" in run.yaml`. */
interface Origin {
  file?: string;
}

function where(key: string, origin: Origin): string {
  return origin.file === undefined ? `--${key}` : `"${key}" in ${origin.file}`;
}

// ---------------------------------------------------------------- attacks

/** An attack from a config file: a spec string or an object {name, ...parameters}. */
export function parseAttackEntry(entry: unknown, label: string): AttackChoice {
  if (typeof entry === "string") return parseAttackSpec(entry);
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    fail("an attack spec string or an object {name, ...parameters}", label, entry);
  }
  const { name, ...rest } = entry as Record<string, unknown>;
  if (typeof name !== "string") fail(`a "name" (one of ${ATTACK_NAMES.join(", ")})`, label, name);
  return attackChoice(checkAttackKind(name, label), Object.entries(rest), label);
}

/** Give every attack a distinct table name: a second attack with the same name is named by its spec. */
function distinctNames(choices: AttackChoice[]): AttackChoice[] {
  const specs = new Set<string>();
  for (const c of choices) {
    if (specs.has(c.spec)) throw new ArgumentError(`Attack "${c.spec}" is listed twice`);
    specs.add(c.spec);
  }
  const count = new Map<string, number>();
  for (const c of choices) count.set(c.name, (count.get(c.name) ?? 0) + 1);
  return choices.map((c) => (count.get(c.name)! > 1 ? { ...c, name: `${c.name} [${c.spec}]` } : c));
}

// ---------------------------------------------------------------- defenses

function defenseHead(spec: string): string {
  const colon = spec.indexOf(":");
  return (colon < 0 ? spec : spec.slice(0, colon)).trim().toLowerCase();
}

/**
 * Split a comma-separated defense list. Defense specs use commas for their own
 * arguments, so a piece that does not start with a defense name belongs to the
 * spec before it.
 */
export function splitDefenseList(text: string): string[] {
  const out: string[] = [];
  for (const piece of text.split(",").map((s) => s.trim())) {
    if (piece === "") continue;
    const known = (DEFENSE_NAMES as readonly string[]).includes(defenseHead(piece));
    const previous = out.at(-1);
    // An argument continues a spec that already has arguments ("vae:samples=8,clip=2");
    // anything else starts a new spec, so a misspelt name is reported as an unknown defense.
    if (!known && previous !== undefined && previous.includes(":") && !piece.includes(":")) {
      out[out.length - 1] = `${previous},${piece}`;
    } else {
      out.push(piece);
    }
  }
  return out;
}

/** Whether a defense spec needs the VAE of --vae (a vae defense, or an ensemble with one). */
export function needsVae(spec: string): boolean {
  const head = defenseHead(spec);
  if (head === "vae") return true;
  if (head === "ensemble")
    return spec
      .slice(spec.indexOf(":") + 1)
      .split("+")
      .some((m) => needsVae(m));
  return false;
}

function checkDefenses(specs: string[], hasVae: boolean, label: string): string[] {
  if (specs.length === 0) fail("at least one defense", label, specs);
  const seen = new Set<string>();
  for (const spec of specs) {
    const head = defenseHead(spec);
    if (!(DEFENSE_NAMES as readonly string[]).includes(head)) {
      throw new ArgumentError(
        `Unknown defense "${head}" in defense spec "${spec}" (${label}); expected one of ${DEFENSE_NAMES.join(", ")}`,
      );
    }
    const members = head === "ensemble" ? spec.slice(spec.indexOf(":") + 1).split("+") : [spec];
    if (members.some((m) => defenseHead(m) === "patchvae")) {
      throw new ArgumentError(
        `Defense spec "${spec}" needs patch VAEs, which vaeguard evaluate does not load; use vae (one VAE from --vae)`,
      );
    }
    if (needsVae(spec)) {
      if (!hasVae) {
        throw new ArgumentError(
          `Defense spec "${spec}" needs a VAE: pass --vae with a VAE checkpoint (e.g. runs/checkpoints/mnist-vae-b0.01-bce.safetensors)`,
        );
      }
    } else {
      // Defenses without a model can be built now, so a bad argument is reported before any work.
      createDefense(spec);
    }
    if (seen.has(spec)) throw new ArgumentError(`Defense "${spec}" is listed twice`);
    seen.add(spec);
  }
  return specs;
}

// ---------------------------------------------------------------- values

function str(raw: unknown, key: ConfigKey, origin: Origin): string {
  if (typeof raw !== "string" || raw.trim() === "") fail("non-empty string", where(key, origin), raw);
  return raw.trim();
}

function int(raw: unknown, key: ConfigKey, origin: Origin, min: number, max?: number): number {
  const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < min || (max !== undefined && n > max))
    fail(
      max === undefined ? `integer of at least ${min}` : `integer between ${min} and ${max}`,
      where(key, origin),
      raw,
    );
  return n;
}

/** A list: an array (config files) or a comma-separated string. */
function list(raw: unknown, key: ConfigKey, origin: Origin, split = (s: string) => s.split(",")): unknown[] {
  if (Array.isArray(raw)) return raw;
  if (typeof raw === "string")
    return split(raw)
      .map((s) => s.trim())
      .filter((s) => s !== "");
  if (typeof raw === "number") return [raw];
  return fail("a list (an array or a comma-separated string)", where(key, origin), raw);
}

function epsilons(raw: unknown, origin: Origin): number[] {
  const items = list(raw, "eps", origin);
  if (items.length === 0) fail("at least one epsilon", where("eps", origin), raw);
  const out: number[] = [];
  for (const item of items) {
    const n = typeof item === "number" ? item : typeof item === "string" ? (parseNumber(item) ?? NaN) : NaN;
    if (!(n >= 0 && n <= 1)) fail("number between 0 and 1", where("eps", origin), item);
    if (out.includes(n)) throw new ArgumentError(`Epsilon ${n} is listed twice in ${where("eps", origin)}`);
    out.push(n);
  }
  return out;
}

/**
 * A path setting, relative to the config file's folder. A path in a config file
 * must stay inside that folder (a shared config must not reach ../../etc);
 * paths given on the command line are the user's own and may point anywhere.
 */
function path(raw: unknown, key: ConfigKey, origin: Origin, base: string): string {
  const full = resolve(base, str(raw, key, origin));
  if (origin.file !== undefined) {
    const rel = relative(base, full);
    if (rel.startsWith("..") || isAbsolute(rel)) {
      throw new ArgumentError(
        `${where(key, origin)} is ${JSON.stringify(raw)}, which lies outside the config file's folder ${base}; ` +
          `give it on the command line (--${key}) instead`,
      );
    }
  }
  return full;
}

// ---------------------------------------------------------------- files

/** Read a JSON or YAML config file (by extension: .json, .yaml, .yml) into raw settings. */
export function loadConfigFile(file: string): RawSettings {
  const parsed = readConfigMapping(file);
  const out: RawSettings = {};
  for (const [key, value] of Object.entries(parsed)) {
    if ((CONFIG_KEYS as readonly string[]).includes(key)) {
      out[key as ConfigKey] = value;
      continue;
    }
    const kebab = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/_/g, "-");
    if (COMMAND_LINE_ONLY.includes(kebab)) {
      throw new ArgumentError(`${file}: "${key}" is a command-line option (--${kebab}), not a config file setting`);
    }
    const hint = (CONFIG_KEYS as readonly string[]).includes(kebab) ? `; did you mean "${kebab}"?` : "";
    throw new ArgumentError(`${file}: unknown key "${key}"${hint} (known keys: ${CONFIG_KEYS.join(", ")})`);
  }
  return out;
}

// ---------------------------------------------------------------- resolving

/** A setting's raw value, where it came from, and the folder its relative paths start from. */
interface Picked {
  raw: unknown;
  origin: Origin;
  base: string;
}

/** The settings' sources: the command line over the config file. */
interface Sources {
  cwd: string;
  configFile?: string;
  fileOrigin: Origin;
  pick(key: ConfigKey): Picked | undefined;
}

/**
 * Merge defaults, the config file and the command line (each overriding the
 * one before) and validate everything. Relative paths in the file are taken
 * from the file's folder; those on the command line from `cwd`.
 */
export function resolveConfig(flags: RawSettings, options: { configFile?: string; cwd?: string } = {}): EvaluateConfig {
  const src = settingSources(flags, options);
  const { pick, cwd } = src;
  const dataset = resolveDataset(src);
  const recipe = RECIPES[dataset];

  const clf = pick("classifier");
  if (!clf) {
    throw new ArgumentError(
      "--classifier is required: a vaeguard classifier checkpoint (e.g. runs/checkpoints/mnist-classifier.safetensors)",
    );
  }
  const vaeSetting = pick("vae");
  const vae = vaeSetting ? path(vaeSetting.raw, "vae", vaeSetting.origin, vaeSetting.base) : undefined;

  const dd = pick("data-dir");
  const sm = pick("samples");
  let samples: number | undefined = DEFAULTS.samples;
  if (sm) samples = sm.raw === "all" ? undefined : int(sm.raw, "samples", sm.origin, 1);

  const defenses = resolveDefenses(src, vae !== undefined);
  const attacks = resolveAttacks(src);

  const ep = pick("eps");
  const eps = ep ? epsilons(ep.raw, ep.origin) : [...recipe.epsilons];
  const mode = resolveMode(src);

  const intSetting = (key: ConfigKey, fallback: number, min: number, max?: number) => {
    const p = pick(key);
    return p ? int(p.raw, key, p.origin, min, max) : fallback;
  };
  const out = pick("out");
  const batchSize = intSetting("batch-size", DEFAULTS.batchSize, 1, LIMITS.batchSize);
  return {
    dataset,
    dataDir: dd ? path(dd.raw, "data-dir", dd.origin, dd.base) : undefined,
    samples,
    classifier: path(clf.raw, "classifier", clf.origin, clf.base),
    vae,
    defenses,
    attacks,
    eps,
    mode,
    eot: intSetting("eot", DEFAULTS.eot, 1, LIMITS.eotSamples),
    passes: intSetting("passes", DEFAULTS.passes, 1, LIMITS.passes),
    seed: intSetting("seed", DEFAULTS.seed, 0),
    out: out ? path(out.raw, "out", out.origin, out.base) : resolve(cwd, "runs", `evaluate-${dataset}`),
    batchSize,
    shardSize: intSetting("shard-size", batchSize, 1, LIMITS.batchSize),
  };
}

/** Reads the config file, if any, and says where each setting is taken from. */
function settingSources(flags: RawSettings, options: { configFile?: string; cwd?: string }): Sources {
  const cwd = options.cwd ?? process.cwd();
  const fileSettings = options.configFile ? loadConfigFile(resolve(cwd, options.configFile)) : {};
  const fileOrigin: Origin = { file: options.configFile };
  const flagOrigin: Origin = {};
  const fileBase = options.configFile ? dirname(resolve(cwd, options.configFile)) : cwd;
  const pick = (key: ConfigKey): Picked | undefined => {
    if (flags[key] !== undefined) return { raw: flags[key], origin: flagOrigin, base: cwd };
    if (fileSettings[key] !== undefined) return { raw: fileSettings[key], origin: fileOrigin, base: fileBase };
    return undefined;
  };
  return { cwd, configFile: options.configFile, fileOrigin, pick };
}

function resolveDataset(src: Sources): SmallDataset {
  const ds = src.pick("dataset");
  const dataset = ds ? str(ds.raw, "dataset", ds.origin).toLowerCase() : DEFAULTS.dataset;
  if (!(dataset in RECIPES)) {
    fail(
      `one of ${Object.keys(RECIPES)
        .map((k) => JSON.stringify(k))
        .join(", ")}`,
      ds ? where("dataset", ds.origin) : "dataset",
      dataset,
    );
  }
  return dataset as SmallDataset;
}

function resolveDefenses(src: Sources, hasVae: boolean): string[] {
  const df = src.pick("defenses");
  const defenseSpecs = df
    ? list(df.raw, "defenses", df.origin, splitDefenseList).map((d, i) =>
        str(d, "defenses", df.origin === src.fileOrigin ? { file: `${src.configFile} (defenses[${i}])` } : df.origin),
      )
    : splitDefenseList(hasVae ? DEFAULTS.defensesWithVae : DEFAULTS.defensesWithoutVae);
  return checkDefenses(defenseSpecs, hasVae, df ? where("defenses", df.origin) : "defenses");
}

function resolveAttacks(src: Sources): AttackChoice[] {
  const at = src.pick("attacks");
  const attackItems = at ? list(at.raw, "attacks", at.origin) : DEFAULTS.attacks.split(",");
  if (attackItems.length === 0) fail("at least one attack", at ? where("attacks", at.origin) : "attacks", at?.raw);
  return distinctNames(
    attackItems.map((item, i) =>
      at && at.origin === src.fileOrigin
        ? parseAttackEntry(item, `attacks[${i}] in ${src.configFile}`)
        : parseAttackSpec(String(item)),
    ),
  );
}

function resolveMode(src: Sources): EvaluateMode {
  const md = src.pick("mode");
  const mode = md ? str(md.raw, "mode", md.origin) : DEFAULTS.mode;
  if (!(EVALUATE_MODES as readonly string[]).includes(mode)) {
    fail(`one of ${EVALUATE_MODES.map((m) => JSON.stringify(m)).join(", ")}`, where("mode", md!.origin), mode);
  }
  return mode as EvaluateMode;
}

/** The modes a config runs, in report order. */
export function modesOf(mode: EvaluateMode): AttackMode[] {
  return mode === "both" ? ["gray-box", "adaptive"] : [mode];
}
