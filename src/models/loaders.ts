/**
 * Loading classifier and purifier checkpoints by file name, with the checks a
 * command needs (the right kind of model, the right image shape). Separate
 * from purifier.ts because the checkpoint loader imports the model registry,
 * which imports the model classes.
 */
import { existsSync } from "node:fs";
import { CheckpointError } from "../core/errors.js";
import { loadCheckpoint } from "./checkpoint.js";
import type { Module } from "../nn/module.js";
import type { ImageClassifier } from "./classifiers.js";
import { ConvPurifier, type Purifier } from "./purifier.js";
import { ConvVae } from "./vae.js";

/** The architectures a purifier checkpoint may hold. */
export const PURIFIER_ARCHS: readonly string[] = [ConvVae.arch, ConvPurifier.arch];

/** Load a purifier checkpoint (a ConvVae or a ConvPurifier); anything else is a CheckpointError naming the file. */
export function loadPurifier(file: string): Purifier {
  if (!existsSync(file)) throw new CheckpointError(file, "no such checkpoint file");
  const ck = loadCheckpoint(file);
  if (!PURIFIER_ARCHS.includes(ck.arch)) {
    ck.model.dispose();
    throw new CheckpointError(
      file,
      `holds a '${ck.arch}' model but a purifier (${PURIFIER_ARCHS.join(" or ")}) is needed here`,
    );
  }
  return ck.model as Purifier;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Load a classifier checkpoint for images of `inputShape` ([C, H, W]) and
 * `numClasses` classes. A purifier's checkpoint, or a classifier of another
 * data set (another image shape or class count), is a CheckpointError.
 */
export function loadClassifierFor(
  file: string,
  expect: { inputShape: readonly number[]; numClasses?: number; dataset?: string },
): Module & ImageClassifier {
  if (!existsSync(file)) throw new CheckpointError(file, "no such checkpoint file");
  const ck = loadCheckpoint(file);
  const model = ck.model as Module & Partial<ImageClassifier>;
  const what = expect.dataset ? `${expect.dataset} images` : "the images";
  let problem: string | undefined;
  if (PURIFIER_ARCHS.includes(ck.arch) || !Array.isArray(model.inputShape) || typeof model.numClasses !== "number") {
    problem = `holds a '${ck.arch}' model, not a classifier`;
  } else if (!sameShape(model.inputShape, expect.inputShape)) {
    problem = `holds a '${ck.arch}' classifier of images [${model.inputShape.join(", ")}] but ${what} are [${expect.inputShape.join(", ")}]`;
  } else if (expect.numClasses !== undefined && model.numClasses !== expect.numClasses) {
    problem = `holds a '${ck.arch}' classifier of ${model.numClasses} classes but ${what} have ${expect.numClasses}`;
  }
  if (problem !== undefined) {
    model.dispose();
    throw new CheckpointError(file, problem);
  }
  return model as Module & ImageClassifier;
}

/** A purifier checkpoint for images of `inputShape`; another shape is a CheckpointError. */
export function loadPurifierFor(file: string, inputShape: readonly number[], dataset?: string): Purifier {
  const p = loadPurifier(file);
  if (!sameShape(p.inputShape, inputShape)) {
    p.dispose();
    throw new CheckpointError(
      file,
      `the purifier reconstructs images [${p.inputShape.join(", ")}] but ${dataset ? `${dataset} images` : "the images"} are [${inputShape.join(", ")}]`,
    );
  }
  return p;
}
