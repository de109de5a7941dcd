/** Architectures by name, so a checkpoint can rebuild the model it holds. */
import { VaeguardError } from "../core/errors.js";
import type { Module } from "../nn/module.js";
import { Cifar10Cnn, MnistCnn } from "./classifiers.js";
import { ConvVae, type ConvVaeConfig } from "./vae.js";
import { Mlp, type MlpConfig } from "./mlp.js";
import { ConvPurifier, type ConvPurifierConfig } from "./purifier.js";

type Factory = (config: Record<string, unknown>) => Module;

const FACTORIES: Record<string, Factory> = {
  [MnistCnn.arch]: () => new MnistCnn(),
  [Cifar10Cnn.arch]: () => new Cifar10Cnn(),
  [ConvVae.arch]: (config) => new ConvVae(config as unknown as ConvVaeConfig),
  [Mlp.arch]: (config) => new Mlp(config as unknown as MlpConfig),
  [ConvPurifier.arch]: (config) => new ConvPurifier(config as unknown as ConvPurifierConfig),
};

export function architectures(): string[] {
  return Object.keys(FACTORIES);
}

export function buildModel(arch: string, config: Record<string, unknown>): Module {
  const f = FACTORIES[arch];
  if (!f) throw new VaeguardError(`Unknown architecture '${arch}' (known: ${architectures().join(", ")})`);
  return f(config);
}

/** The architecture name and configuration of a model built by this package. */
export function describeModel(model: Module): { arch: string; config: Record<string, unknown> } {
  const ctor = model.constructor as unknown as { arch?: string };
  const withConfig = model as unknown as { config?: () => Record<string, unknown> };
  if (!ctor.arch || typeof withConfig.config !== "function") {
    throw new VaeguardError(
      `${model.constructor.name} is not a registered architecture and cannot be checkpointed by name`,
    );
  }
  return { arch: ctor.arch, config: withConfig.config() };
}
