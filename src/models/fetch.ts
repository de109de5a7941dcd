/**
 * `vaeguard models fetch <name>`: pretrained classifiers for users with
 * internet access, each file from a pinned published location and checked by
 * its SHA-256 before it is put in place (src/io/download.ts).
 *
 * mobilenet-v2: MobileNetV2 1.0/224, uint8-quantised TFLite, 1001 classes
 * (index 0 = background, the NIPS 2017 TrueLabel index), with its label list,
 * from Google Coral's public test-data repository (Apache 2.0).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ArgumentError, DataError } from "../core/errors.js";
import { downloadFile, sha256File } from "../io/download.js";

export interface RemoteModel {
  name: string;
  folder: string;
  /** The file to pass as --model. */
  model: string;
  files: { name: string; url: string; sha256: string }[];
}

const CORAL = "https://raw.githubusercontent.com/google-coral/test_data/c21de4450f88a20ac5968628d375787745932a5a";

export const REMOTE_MODELS: Record<string, RemoteModel> = {
  "mobilenet-v2": {
    name: "MobileNetV2 1.0/224, uint8-quantised TFLite, 1001 ImageNet classes",
    folder: "mobilenet-v2-tflite",
    model: "mobilenet_v2_1.0_224_quant.tflite",
    files: [
      {
        name: "mobilenet_v2_1.0_224_quant.tflite",
        url: `${CORAL}/mobilenet_v2_1.0_224_quant.tflite`,
        sha256: "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
      },
      {
        name: "imagenet_labels.txt",
        url: `${CORAL}/imagenet_labels.txt`,
        sha256: "b8aaeb5630c62626a7d124a05c0e14230a7ffdd2136a31d0190a4fb71c1d82f1",
      },
    ],
  },
};

export interface ModelFetchOptions {
  /** The model lands in <modelsRoot>/<folder>. */
  modelsRoot: string;
  timeoutSeconds?: number;
  onProgress?: (file: string, received: number, total: number | undefined) => void;
}

/** Download and verify a model's files (those already in place are kept); returns the model file's path. */
export async function fetchModel(key: string, o: ModelFetchOptions): Promise<string> {
  const m = REMOTE_MODELS[key];
  if (!m) {
    throw new ArgumentError(
      `Expected one of ${Object.keys(REMOTE_MODELS).join(", ")} for model but received ${JSON.stringify(key)}`,
    );
  }
  const dir = join(o.modelsRoot, m.folder);
  for (const f of m.files) {
    const target = join(dir, f.name);
    if (existsSync(target)) {
      const sum = await sha256File(target);
      if (sum !== f.sha256) {
        throw new DataError(
          target,
          `SHA-256 ${sum} does not match the published ${f.sha256}; delete it and fetch again`,
        );
      }
      continue;
    }
    await downloadFile(f.url, target, {
      sha256: f.sha256,
      timeoutSeconds: o.timeoutSeconds,
      onProgress: (r, t) => o.onProgress?.(f.name, r, t),
      help: `Download ${f.url} on a machine with internet access and put it at ${target} (SHA-256 ${f.sha256}).`,
    });
  }
  return join(dir, m.model);
}
