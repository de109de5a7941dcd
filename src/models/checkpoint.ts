/**
 * Model checkpoints: safetensors files whose tensors are the model's state dict
 * (PyTorch names) and whose metadata records the architecture and its
 * configuration, so `loadModel` can rebuild the model. Optional optimizer state
 * and training progress make `--resume` exact. Writes are atomic.
 */
import { existsSync } from "node:fs";
import { CheckpointError } from "../core/errors.js";
import type { Tensor } from "../core/tensor.js";
import type { Module } from "../nn/module.js";
import type { Optimizer } from "../optim/optimizer.js";
import {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  readSafetensorsMetadata,
  saveSafetensors,
} from "../io/safetensors.js";
import { writeFileAtomic } from "../io/atomic.js";
import { readFileOr } from "../io/read-file.js";
import { architectures, buildModel, describeModel } from "./registry.js";
import { tidy } from "../core/engine.js";

export const CHECKPOINT_FORMAT = "vaeguard-checkpoint/1";

/** Names of the optimizer's tensors in a checkpoint start with this. */
const OPTIMIZER_PREFIX = "__optimizer__.";

export interface TrainingState {
  epoch: number;
  [key: string]: unknown;
}

export function saveCheckpoint(
  path: string,
  model: Module,
  extra: { optimizer?: Optimizer; training?: TrainingState; info?: Record<string, unknown> } = {},
): void {
  const { arch, config } = describeModel(model);
  const tensors = new Map<string, Tensor>(model.stateDict());
  const metadata: Record<string, string> = { format: CHECKPOINT_FORMAT, arch, config: JSON.stringify(config) };
  if (extra.optimizer) {
    const st = extra.optimizer.stateDict();
    for (const [k, t] of st.tensors) tensors.set(`${OPTIMIZER_PREFIX}${k}`, t);
    metadata.optimizer = JSON.stringify({ type: extra.optimizer.constructor.name, scalars: st.scalars });
  }
  if (extra.training) metadata.training = JSON.stringify(extra.training);
  if (extra.info) metadata.info = JSON.stringify(extra.info);
  saveSafetensors(path, tensors, metadata);
}

export interface LoadedCheckpoint<M extends Module = Module> {
  model: M;
  arch: string;
  config: Record<string, unknown>;
  training?: TrainingState;
  info?: Record<string, unknown>;
  /** The optimizer made by `options.optimizer`, with the saved state restored when there was one. */
  optimizer?: Optimizer;
}

function parseJson(path: string, what: string, text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new CheckpointError(path, `its '${what}' metadata is not valid JSON`);
  }
  if (typeof v !== "object" || v === null)
    throw new CheckpointError(path, `its '${what}' metadata is not a JSON object`);
  return v as Record<string, unknown>;
}

/** Refuses a safetensors file that is not a vaeguard checkpoint, naming it. */
function checkFormat(path: string, metadata: Record<string, string>): void {
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(
      path,
      `not a vaeguard checkpoint (metadata format is ${JSON.stringify(metadata.format ?? null)})`,
    );
  }
}

/**
 * Every tensor has the dtype the architecture gives it: a checkpoint whose
 * weights are declared int32 would otherwise be converted silently and score
 * as if nothing were wrong. Optimizer state is float32 like the parameters.
 */
function checkDtypes(path: string, arch: string, model: Module, tensors: Map<string, Tensor>): void {
  const own = model.stateDict();
  for (const [name, t] of tensors) {
    const expected = name.startsWith(OPTIMIZER_PREFIX) ? "float32" : own.get(name)?.dtype;
    if (expected !== undefined && t.dtype !== expected) {
      throw new CheckpointError(path, `tensor '${name}' is ${t.dtype} but architecture '${arch}' needs ${expected}`);
    }
  }
}

/** NaN or infinite weights make every prediction meaningless; name the first such tensor. */
function checkFinite(
  path: string,
  tensors: Map<string, Tensor>,
  mode: "refuse" | "warn",
  warn: (line: string) => void = (l) => process.stderr.write(l + "\n"),
): void {
  for (const [name, t] of tensors) {
    if (t.size === 0 || !t.dtype.startsWith("float")) continue;
    const largest = tidy(() => t.abs().max().item());
    if (Number.isFinite(largest)) continue;
    const what = `tensor '${name}' holds ${Number.isNaN(largest) ? "NaN" : "infinite"} values`;
    if (mode === "refuse") throw new CheckpointError(path, `${what}; the model would be meaningless`);
    warn(`vaeguard: warning: ${path}: ${what}`);
  }
}

/**
 * The training state a checkpoint was saved with (epoch, complete, history),
 * read from its header alone; undefined when it records none. Throws a
 * CheckpointError for a file that is not a readable safetensors file.
 */
export function readTrainingState(path: string): (TrainingState & { complete?: unknown }) | undefined {
  const text = readSafetensorsMetadata(path).training;
  return parseJson(path, "training", text) as (TrainingState & { complete?: unknown }) | undefined;
}

/**
 * Load a checkpoint and rebuild its model. With `expectArch`, a checkpoint of
 * another architecture is rejected with a message naming both.
 */
export function loadCheckpoint<M extends Module = Module>(
  path: string,
  options: {
    expectArch?: string;
    optimizer?: (model: M) => Optimizer;
    /** Weights that are NaN or infinite: refused (default), or loaded after a warning. */
    nonFinite?: "refuse" | "warn";
    warn?: (line: string) => void;
  } = {},
): LoadedCheckpoint<M> {
  if (!existsSync(path)) throw new CheckpointError(path, "no such checkpoint file");
  const { tensors, metadata } = loadSafetensors(path);
  try {
    checkFormat(path, metadata);
    const arch = metadata.arch;
    if (typeof arch !== "string" || !architectures().includes(arch)) {
      throw new CheckpointError(
        path,
        `its metadata names the architecture ${JSON.stringify(arch ?? null)}, which vaeguard does not know (known: ${architectures().join(", ")})`,
      );
    }
    if (options.expectArch && arch !== options.expectArch) {
      throw new CheckpointError(path, `holds a '${arch}' model but a '${options.expectArch}' model is needed here`);
    }
    const config = parseJson(path, "config", metadata.config) ?? {};
    let model: Module;
    try {
      model = buildModel(arch, config);
    } catch (e) {
      throw new CheckpointError(
        path,
        `its 'config' metadata does not describe a valid '${arch}' model (${(e as Error).message})`,
        { cause: e },
      );
    }
    const modelState = new Map([...tensors].filter(([k]) => !k.startsWith(OPTIMIZER_PREFIX)));
    try {
      checkDtypes(path, arch, model, tensors);
      checkFinite(path, tensors, options.nonFinite ?? "refuse", options.warn);
      model.loadStateDict(modelState, { source: path });
      return { ...restoreRest(path, model as M, tensors, metadata, options), model: model as M, arch, config };
    } catch (e) {
      // Nothing of a checkpoint that does not fit outlives the error.
      model.dispose();
      throw e;
    }
  } finally {
    // Model and optimizer copy what they need; the loaded tensors are freed here.
    for (const t of tensors.values()) t.dispose();
  }
}

/** Training progress, info and (when asked for) the optimizer with its saved state. */
function restoreRest<M extends Module>(
  path: string,
  model: M,
  tensors: Map<string, Tensor>,
  metadata: Record<string, string>,
  options: { optimizer?: (model: M) => Optimizer },
): Omit<LoadedCheckpoint<M>, "model" | "arch" | "config"> {
  const optState = new Map(
    [...tensors].filter(([k]) => k.startsWith(OPTIMIZER_PREFIX)).map(([k, t]) => [k.slice(OPTIMIZER_PREFIX.length), t]),
  );
  const optMeta = parseJson(path, "optimizer", metadata.optimizer);
  const training = parseJson(path, "training", metadata.training) as TrainingState | undefined;
  const info = parseJson(path, "info", metadata.info);
  if (!options.optimizer) return { training, info };
  const optimizer = options.optimizer(model);
  try {
    if (optMeta) {
      if (optMeta.type !== optimizer.constructor.name) {
        throw new CheckpointError(
          path,
          `optimizer state is for ${String(optMeta.type)}, not ${optimizer.constructor.name}`,
        );
      }
      optimizer.loadStateDict({ tensors: optState, scalars: optMeta.scalars as Record<string, number | number[]> });
    }
  } catch (e) {
    optimizer.dispose();
    throw e;
  }
  return { training, info, optimizer };
}

/**
 * Copy a checkpoint without its optimizer state: the model's tensors, its
 * architecture, training history and info, byte for byte, about a third of
 * the size for Adam. The copy evaluates exactly as the original but resumes
 * training with a fresh optimizer. Results pages commit such copies of their
 * classifiers, because retraining reproduces weights only on the same engine
 * version. Returns how many tensors were kept and dropped.
 */
export function stripOptimizerState(input: string, output: string): { kept: number; dropped: number } {
  const bytes = readFileOr(input, (message, cause) => new CheckpointError(input, message, { cause }));
  const { tensors, metadata } = decodeSafetensors(bytes, input);
  checkFormat(input, metadata);
  const kept = new Map([...tensors].filter(([name]) => !name.startsWith(OPTIMIZER_PREFIX)));
  const { optimizer: _optimizer, ...rest } = metadata;
  writeFileAtomic(output, encodeSafetensors(kept, rest));
  return { kept: kept.size, dropped: tensors.size - kept.size };
}
