/** `vaeguard models ...`: pretrained classifiers from outside (nsfwjs' TF.js networks, TFLite files). */
import type { Command } from "commander";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { loadTfliteModel, type TfliteSummary } from "../models/tflite/model.js";
import { writeFileAtomic } from "../io/atomic.js";
import { checkWritableDir } from "../io/preflight.js";
import { runAction } from "./common.js";
import { parseListArg } from "./args.js";
import { REMOTE_MODELS, fetchModel } from "../models/fetch.js";
import {
  DEFAULT_NSFWJS_DIR,
  NSFWJS_MODELS,
  extractNsfwjsModels,
  findNsfwjsPackage,
  type NsfwjsModelName,
} from "../models/tfjs-nsfwjs.js";
import { UsageError } from "./common.js";

interface ImportOpts {
  out: string;
  models?: string[];
  json?: boolean;
}

/** `models import-nsfwjs`: unknown model names are refused before the package is looked for. */
function importNsfwjs(opts: ImportOpts): void {
  for (const m of opts.models ?? []) {
    if (!(m in NSFWJS_MODELS)) {
      throw new UsageError(
        `Expected one of ${Object.keys(NSFWJS_MODELS).join(", ")} in --models but received ${JSON.stringify(m)}`,
      );
    }
  }
  const out = checkWritableDir(opts.out, "the models");
  const pkg = findNsfwjsPackage();
  const written = extractNsfwjsModels(out, {
    packageDir: pkg,
    models: opts.models as NsfwjsModelName[] | undefined,
  });
  if (opts.json) {
    console.log(JSON.stringify({ package: pkg, models: written }, null, 2));
    return;
  }
  console.log(`From ${pkg}:`);
  for (const m of written) {
    const note = m.format === "layers-model" ? "" : " (graph model: not importable as a Layers model)";
    console.log(
      `  ${m.name.padEnd(17)} ${m.modelJson}  ${m.inputSize}x${m.inputSize}, ${(m.weightBytes / 1e6).toFixed(1)} MB in ${m.shards.length} shard(s)${note}`,
    );
  }
}

/** `models import`: the file is fully loaded (and so checked) before any copy is written. */
function importTflite(file: string, opts: { out?: string; json?: boolean }): void {
  if (!/\.tflite$/i.test(file)) {
    throw new UsageError(
      `Expected a .tflite file for models import but received ${JSON.stringify(file)} (TF.js models from nsfwjs: models import-nsfwjs)`,
    );
  }
  const path = resolve(file);
  const model = loadTfliteModel(path);
  const summary = model.summary;
  model.dispose();
  let written: string | undefined;
  if (opts.out) {
    written = resolve(opts.out);
    writeFileAtomic(written, readFileSync(path));
  }
  if (opts.json) {
    console.log(JSON.stringify({ ...summary, written: written ?? null }, null, 2));
    return;
  }
  for (const line of describeTflite(summary)) console.log(line);
  if (written) console.log(`Written: ${written}`);
  console.log(`Use it with: vaeguard reproduce imagenet --model ${written ?? path}`);
}

async function fetchRemoteModel(name: string, opts: { out: string; timeout: string }): Promise<void> {
  if (!(name in REMOTE_MODELS)) {
    throw new UsageError(
      `Expected one of ${Object.keys(REMOTE_MODELS).join(", ")} for name but received ${JSON.stringify(name)}`,
    );
  }
  const model = await fetchModel(name, { modelsRoot: resolve(opts.out), timeoutSeconds: Number(opts.timeout) });
  console.log(`${REMOTE_MODELS[name].name}: ${model}`);
  console.log(`Use it with: vaeguard reproduce imagenet --model ${model}`);
}

function registerImportNsfwjs(models: Command): void {
  models
    .command("import-nsfwjs")
    .description(
      "turn the networks inside the npm package nsfwjs (Inception V3 299x299, MobileNetV2 224x224; 5 classes) into plain TF.js folders (model.json + .bin shards)",
    )
    .option("--out <dir>", "folder for the models, one sub-folder per model", DEFAULT_NSFWJS_DIR)
    .option(
      "--models <list>",
      `comma-separated: ${Object.keys(NSFWJS_MODELS).join(", ")} (default: all that the package ships)`,
      parseListArg(String),
    )
    .option("--json", "print what was written as JSON")
    .action((opts: ImportOpts) => runAction(() => importNsfwjs(opts)));
}

function registerImport(models: Command): void {
  models
    .command("import")
    .argument("<file>", "a TensorFlow Lite model (.tflite)")
    .description(
      "read a TFLite classifier, rebuild it as a differentiable model (uint8/int8 weights dequantised to float32) and print what it holds: ops, parameters, input and output; --out keeps a checked copy",
    )
    .option("--out <path>", "copy the checked file here (written atomically)")
    .option("--json", "print the summary as JSON")
    .action((file: string, opts: { out?: string; json?: boolean }) => runAction(() => importTflite(file, opts)));
}

function registerFetch(models: Command): void {
  models
    .command("fetch")
    .argument("<name>", `one of ${Object.keys(REMOTE_MODELS).join(", ")}`)
    .description(
      "download a pretrained classifier from its published location and check its SHA-256 (needs internet access)",
    )
    .option("--out <dir>", "where models are kept (one sub-folder per model)", "runs/models")
    .option("--timeout <seconds>", "seconds to wait for the server", "30")
    .action((name: string, opts: { out: string; timeout: string }) => runAction(() => fetchRemoteModel(name, opts)));
}

export function register(program: Command): void {
  const models = program.command("models").description("pretrained classifiers from outside: import and list");
  registerImportNsfwjs(models);
  registerImport(models);
  registerFetch(models);
}

/** The lines `models import` prints. */
export function describeTflite(s: TfliteSummary): string[] {
  const ops = Object.entries(s.opCounts)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  const i = s.inputTensor;
  const o = s.outputTensor;
  const q = i.scale === null ? "" : `, scale ${i.scale}, zero point ${i.zeroPoint}`;
  const { scale, offset } = s.inputScaling;
  return [
    `TFLite model ${s.source} (schema ${s.schemaVersion}${s.description ? `, "${s.description}"` : ""})`,
    `  operators:  ${s.operators} (${ops})`,
    `  parameters: ${s.parameters.toLocaleString("en-US")} (${s.quantized ? "quantised; dequantised to float32" : "float"})`,
    `  input:      '${i.name}' ${i.type} [${i.shape.join(", ")}]${q}; takes images x in [0, 1] as x * ${+scale.toPrecision(6)} ${offset < 0 ? "-" : "+"} ${+Math.abs(offset).toPrecision(6)}`,
    `  output:     '${o.name}' ${o.type} [${o.shape.join(", ")}]; ${s.numClasses} ${s.endsWithSoftmax ? "logits (taken before the final softmax)" : "outputs"}`,
  ];
}
