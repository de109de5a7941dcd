/** Untrained, seeded checkpoints of three kinds, for tests of what loads them and what refuses them. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed } from "../../src/core/engine.js";
import { saveCheckpoint } from "../../src/models/checkpoint.js";
import { Cifar10Cnn } from "../../src/models/classifiers.js";
import { Mlp } from "../../src/models/mlp.js";
import { ConvVae, VAE_PRESETS } from "../../src/models/vae.js";

export interface TinyCheckpoints {
  dir: string;
  /** An MNIST MLP classifier, the Table 2 MNIST VAE (not a classifier) and a CIFAR-10 CNN (another data set). */
  files: { mlp: string; vae: string; cifar: string };
}

/** Untrained checkpoints, seeded, in a new temporary folder whose name starts with `prefix`. */
export function writeTinyCheckpoints(prefix: string): TinyCheckpoints {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  manualSeed(0);
  const mlp = new Mlp({ inputShape: [1, 28, 28], hidden: [16], numClasses: 10 });
  const vae = new ConvVae(VAE_PRESETS.mnist);
  const cifar = new Cifar10Cnn();
  const files = {
    mlp: join(dir, "mlp.safetensors"),
    vae: join(dir, "vae.safetensors"),
    cifar: join(dir, "cifar.safetensors"),
  };
  saveCheckpoint(files.mlp, mlp);
  saveCheckpoint(files.vae, vae);
  saveCheckpoint(files.cifar, cifar);
  for (const m of [mlp, vae, cifar]) m.dispose();
  return { dir, files };
}
