/**
 * The real pretrained networks inside the npm package nsfwjs (5 classes:
 * Drawing, Hentai, Neutral, Porn, Sexy) as plain TF.js model folders.
 *
 * nsfwjs ships each model as JavaScript modules: `model.min.js` exports the
 * model.json object and each `group1-shardKofN.min.js` exports one weight
 * shard as a base64 string. They are evaluated here in an empty VM context
 * (no require, no file system), so only the data they define is taken.
 *
 * nsfwjs feeds its networks pixel values / 255, that is images in [0, 1]:
 * the "unit" input scaling of the TF.js importer.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { runInNewContext } from "node:vm";
import { writeFileAtomic } from "../io/atomic.js";
import { CheckpointError } from "../core/errors.js";
import { fail } from "../core/validate.js";

/** Where `vaeguard models import-nsfwjs` puts the nsfwjs models by default. */
export const DEFAULT_NSFWJS_DIR = "runs/models/nsfwjs";

export const NSFWJS_CLASSES = ["Drawing", "Hentai", "Neutral", "Porn", "Sexy"] as const;

/** The models nsfwjs 4.x ships, and the input size its loader uses for each. */
export const NSFWJS_MODELS = {
  mobilenet_v2: { size: 224 },
  mobilenet_v2_mid: { size: 224 },
  inception_v3: { size: 299 },
} as const;

export type NsfwjsModelName = keyof typeof NSFWJS_MODELS;

export interface ExtractedModel {
  name: NsfwjsModelName;
  /** Folder holding model.json and the .bin shards. */
  dir: string;
  modelJson: string;
  /** "layers-model" (importable) or "graph-model" (mobilenet_v2_mid; not importable as layers). */
  format: string;
  inputSize: number;
  shards: string[];
  weightBytes: number;
}

export interface ExtractOptions {
  /** The nsfwjs package folder (default: resolved from this project's node_modules). */
  packageDir?: string;
  /** Which models (default: all that the package holds). */
  models?: NsfwjsModelName[];
}

/** The nsfwjs package folder, found through Node's module resolution. */
export function findNsfwjsPackage(): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve("nsfwjs");
  } catch (e) {
    throw new CheckpointError("nsfwjs", "the npm package nsfwjs is not installed (it is a devDependency)", {
      cause: e,
    });
  }
  let dir = dirname(entry);
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "nsfwjs") return dir;
      } catch {
        // keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new CheckpointError(entry, "could not find the nsfwjs package folder above this file");
    dir = up;
  }
}

/** Evaluate one UMD bundle of nsfwjs in an empty context and return what it exports. */
function evalBundle(file: string): unknown {
  let code: string;
  try {
    code = readFileSync(file, "utf8");
  } catch (e) {
    throw new CheckpointError(file, "cannot read the nsfwjs model bundle", { cause: e });
  }
  const sandbox: { module: { exports: unknown }; exports: unknown } = { module: { exports: {} }, exports: {} };
  sandbox.exports = sandbox.module.exports;
  try {
    runInNewContext(code, sandbox, { filename: file, timeout: 60_000 });
  } catch (e) {
    throw new CheckpointError(file, `evaluating the bundle failed: ${(e as Error).message}`, { cause: e });
  }
  return sandbox.module.exports;
}

/**
 * Turn the models inside nsfwjs into plain TF.js folders under `outDir`:
 * `outDir/<model>/model.json` plus `group1-shardKofN.bin`. Shards are written
 * first and model.json last, each atomically, so a model.json that exists
 * always has complete shards beside it. The model.json gains
 * userDefinedMetadata.vaeguard (source, classes, input size, input scaling).
 */
export function extractNsfwjsModels(outDir: string, options: ExtractOptions = {}): ExtractedModel[] {
  if (typeof outDir !== "string" || outDir === "") fail("a folder path", "outDir", outDir);
  const pkgDir = options.packageDir ?? findNsfwjsPackage();
  let version = "unknown";
  try {
    version =
      (JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as { version?: string }).version ?? version;
  } catch {
    // version stays unknown
  }
  const modelsDir = join(pkgDir, "dist", "models");
  const available = existsSync(modelsDir)
    ? readdirSync(modelsDir).filter((n) => n in NSFWJS_MODELS && statSync(join(modelsDir, n)).isDirectory())
    : [];
  const wanted = options.models ?? (available as NsfwjsModelName[]);
  const out: ExtractedModel[] = [];
  for (const name of wanted) {
    if (!(name in NSFWJS_MODELS)) fail(`one of ${Object.keys(NSFWJS_MODELS).join(", ")}`, "models", name);
    const src = join(modelsDir, name);
    const modelFile = join(src, "model.min.js");
    if (!existsSync(modelFile)) throw new CheckpointError(modelFile, `nsfwjs ${version} does not ship model '${name}'`);
    const json = evalBundle(modelFile) as {
      format?: string;
      modelTopology?: unknown;
      weightsManifest?: { paths: string[]; weights: unknown[] }[];
      userDefinedMetadata?: Record<string, unknown>;
    };
    if (typeof json !== "object" || json === null || !json.modelTopology || !Array.isArray(json.weightsManifest)) {
      throw new CheckpointError(modelFile, "the bundle does not export a TF.js model.json object");
    }
    const dest = resolve(outDir, name);
    const shards: string[] = [];
    let weightBytes = 0;
    const manifest = json.weightsManifest.map((group) => ({
      ...group,
      paths: group.paths.map((p) => {
        if (!/^[\w.-]+$/.test(p)) throw new CheckpointError(modelFile, `unexpected shard name '${p}'`);
        const bundle = join(src, `${p}.min.js`);
        const b64 = evalBundle(bundle);
        if (typeof b64 !== "string") throw new CheckpointError(bundle, "the bundle does not export a base64 string");
        const bytes = Buffer.from(b64, "base64");
        const file = `${p}.bin`;
        writeFileAtomic(join(dest, file), bytes);
        shards.push(file);
        weightBytes += bytes.byteLength;
        return file;
      }),
    }));
    const format = json.format ?? "layers-model";
    const inputSize = NSFWJS_MODELS[name].size;
    const modelJson = {
      ...json,
      format,
      weightsManifest: manifest,
      userDefinedMetadata: {
        ...(json.userDefinedMetadata ?? {}),
        vaeguard: {
          source: `npm nsfwjs@${version}, dist/models/${name}`,
          classes: [...NSFWJS_CLASSES],
          inputSize,
          inputScaling: "unit",
          note: "nsfwjs feeds the network RGB pixel values / 255 (images in [0, 1]), resized to inputSize",
        },
      },
    };
    const modelJsonPath = join(dest, "model.json");
    writeFileAtomic(modelJsonPath, JSON.stringify(modelJson));
    out.push({ name, dir: dest, modelJson: modelJsonPath, format, inputSize, shards, weightBytes });
  }
  return out;
}
