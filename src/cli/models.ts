/** `vaeguard models ...`: pretrained classifiers from outside (nsfwjs' TF.js networks). */
import { checkWritableDir } from "../io/preflight.js";
import type { Command } from "commander";
import { runAction, parseListArg } from "./common.js";
import { NSFWJS_MODELS, extractNsfwjsModels, findNsfwjsPackage, type NsfwjsModelName } from "../models/tfjs-nsfwjs.js";
import { DEFAULT_MODELS_DIR } from "../eval/reproduce-imagenet.js";
import { UsageError } from "./common.js";

interface ImportOpts {
  out: string;
  models?: string[];
  json?: boolean;
}

export function register(program: Command): void {
  const models = program.command("models").description("pretrained classifiers from outside: import and list");
  models
    .command("import-nsfwjs")
    .description(
      "turn the networks inside the npm package nsfwjs (Inception V3 299x299, MobileNetV2 224x224; 5 classes) into plain TF.js folders (model.json + .bin shards)",
    )
    .option("--out <dir>", "folder for the models, one sub-folder per model", DEFAULT_MODELS_DIR)
    .option(
      "--models <list>",
      `comma-separated: ${Object.keys(NSFWJS_MODELS).join(", ")} (default: all that the package ships)`,
      parseListArg(String),
    )
    .option("--json", "print what was written as JSON")
    .action((opts: ImportOpts) =>
      runAction(() => {
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
        const inception = written.find((m) => m.name === "inception_v3");
        if (inception) console.log(`Use it with: vaeguard reproduce-imagenet --model ${inception.modelJson}`);
      }),
    );
}
