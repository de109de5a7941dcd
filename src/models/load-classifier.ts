/**
 * One loader for every classifier file a command takes (`--model`,
 * `--classifier`): a TFLite flatbuffer (.tflite), a TorchScript module (.pt),
 * a vaeguard checkpoint (.safetensors) or a TF.js Layers model (model.json or
 * its folder). Optionally wrapped so that it takes images of another size
 * (resized inside the model) and reports classes in a data set's index.
 */
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { ArgumentError, CheckpointError } from "../core/errors.js";
import { checkInt } from "../core/validate.js";
import type { ImageClassifier } from "./classifiers.js";
import { loadCheckpoint } from "./checkpoint.js";
import { PURIFIER_ARCHS } from "./loaders.js";
import { INPUT_SCALINGS, loadTfjsLayersModel, type InputScalingName } from "./tfjs.js";
import { loadTorchScriptClassifier } from "./torchscript.js";
import { loadTfliteModel } from "./tflite/model.js";
import { ResizedClassifier } from "./resized-classifier.js";
import { loadClassNames, loadWnidsLabelMap } from "./label-map.js";

export type ClassifierFormat = "tflite" | "torchscript" | "checkpoint" | "tfjs";

export interface ClassifierFileOptions {
  /**
   * Size of the images the classifier will be given (S: S x S). When it
   * differs from the model's own input, the model is wrapped in a
   * ResizedClassifier that resizes inside the differentiable model.
   */
  imageSize?: number;
  /**
   * A WordNet-id list in the model's output order (Darknet's wnids file):
   * outputs are reordered into the 1001-class ImageNet index (NIPS 2017 TrueLabel).
   */
  wnidsFile?: string;
  /** Keep only this central fraction of each image before the resize (ResizedClassifier.centralFraction). */
  centralFraction?: number;
  /** Class names, one per line (as many lines as the (mapped) classifier has outputs). */
  labelsFile?: string;
  /** TF.js: input scaling preset (default: the model.json's vaeguard metadata, else "unit"). */
  inputScaling?: InputScalingName;
  /** TorchScript: square input size (default 299), per-channel mean and std. */
  inputSize?: number;
  mean?: number[];
  std?: number[];
}

export interface LoadedClassifier {
  classifier: ImageClassifier & { dispose?: () => void };
  /** The file read (model.json for a TF.js folder). */
  path: string;
  format: ClassifierFormat;
  /** One line for reports. */
  description: string;
  /** A name per output (the index as text when no names are known). */
  classNames: string[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The format of a classifier file, by extension (a folder or .json is TF.js). */
export function classifierFormat(path: string): ClassifierFormat {
  if (/\.tflite$/i.test(path)) return "tflite";
  if (/\.(pt|pth|ptc|torchscript)$/i.test(path)) return "torchscript";
  if (/\.safetensors$/i.test(path)) return "checkpoint";
  return "tfjs";
}

function indices(n: number): string[] {
  return Array.from({ length: n }, (_, i) => String(i));
}

function loadBase(path: string, o: ClassifierFileOptions): LoadedClassifier {
  // A folder is a TF.js model (model.json beside its shards), whatever its name.
  const format = existsSync(path) && statSync(path).isDirectory() ? "tfjs" : classifierFormat(path);
  switch (format) {
    case "tflite":
      return loadTfliteBase(path);
    case "torchscript":
      return loadTorchScriptBase(path, o);
    case "checkpoint":
      return loadCheckpointBase(path);
    case "tfjs":
      return loadTfjsBase(path, o);
  }
}

function loadTfliteBase(path: string): LoadedClassifier {
  const m = loadTfliteModel(path);
  const [c, h, w] = m.inputShape;
  const s = m.summary;
  const q =
    s.inputTensor.scale === null
      ? ""
      : `, input ${s.inputTensor.type} scale ${s.inputTensor.scale} zero point ${s.inputTensor.zeroPoint}`;
  return {
    classifier: m,
    path,
    format: "tflite",
    description:
      `TFLite model ${path}: ${s.operators} operators, ${s.parameters} parameters (${s.quantized ? "quantised, run in float32" : "float"}), ` +
      `input ${c}x${h}x${w}${q}, ${m.numClasses} classes${s.endsWithSoftmax ? " (logits before its softmax)" : ""}`,
    classNames: indices(m.numClasses),
  };
}

/** A TorchScript file records no input size or normalisation, so both come from the options. */
function loadTorchScriptBase(path: string, o: ClassifierFileOptions): LoadedClassifier {
  const size = checkInt(o.inputSize ?? 299, "inputSize", 1);
  const classifier = loadTorchScriptClassifier(path, {
    inputShape: [3, size, size],
    mean: o.mean ?? 0,
    std: o.std ?? 1,
  });
  return {
    classifier,
    path,
    format: "torchscript",
    description: `TorchScript module ${path} (input 3x${size}x${size}, mean ${JSON.stringify(o.mean ?? 0)}, std ${JSON.stringify(o.std ?? 1)})`,
    classNames: indices(classifier.numClasses),
  };
}

function loadCheckpointBase(path: string): LoadedClassifier {
  const ck = loadCheckpoint(path);
  if (PURIFIER_ARCHS.includes(ck.arch)) {
    ck.model.dispose();
    throw new CheckpointError(path, `holds a '${ck.arch}' model but a classifier is needed`);
  }
  const classifier = ck.model as unknown as ImageClassifier & { dispose(): void };
  return {
    classifier,
    path,
    format: "checkpoint",
    description: `vaeguard checkpoint ${path} (${ck.arch})`,
    classNames: indices(classifier.numClasses),
  };
}

/**
 * A TF.js model, with class names and input scaling from its vaeguard metadata
 * when present. The scaling is only known once the model is loaded, so a model
 * that asks for another one is loaded a second time with it.
 */
function loadTfjsBase(path: string, o: ClassifierFileOptions): LoadedClassifier {
  const isDir = statSync(path).isDirectory();
  const file = isDir ? join(path, "model.json") : path;
  const probe = loadTfjsLayersModel(path, o.inputScaling ? { inputScaling: o.inputScaling } : {});
  const meta = isObject(probe.userDefinedMetadata?.vaeguard) ? probe.userDefinedMetadata.vaeguard : {};
  let classifier = probe;
  const metaScaling = typeof meta.inputScaling === "string" ? meta.inputScaling : undefined;
  if (!o.inputScaling && metaScaling && metaScaling !== "unit" && metaScaling in INPUT_SCALINGS) {
    probe.dispose();
    classifier = loadTfjsLayersModel(path, { inputScaling: metaScaling as InputScalingName });
  }
  const classes =
    Array.isArray(meta.classes) && meta.classes.length === classifier.numClasses
      ? (meta.classes as unknown[]).map(String)
      : indices(classifier.numClasses);
  const source = typeof meta.source === "string" ? ` from ${meta.source}` : "";
  const [c, h, w] = classifier.inputShape;
  const scaling = o.inputScaling ?? metaScaling ?? "unit";
  const named = classes.length <= 20 ? ` (${classes.join(", ")})` : "";
  return {
    classifier,
    path: file,
    format: "tfjs",
    description:
      `TF.js Layers model ${file}${source}: ${classifier.layers.length} layers, ` +
      `input ${c}x${h}x${w}, ${classifier.numClasses} classes${named}, input scaling "${scaling}"`,
    classNames: classes,
  };
}

/**
 * Load a classifier file of any supported format; see ClassifierFileOptions
 * for resizing, label maps and class names. Errors name the file.
 */
export function loadClassifierFile(file: string, options: ClassifierFileOptions = {}): LoadedClassifier {
  if (typeof file !== "string" || file === "")
    throw new ArgumentError("Expected a classifier file path but received none");
  const path = resolve(file);
  if (!existsSync(path)) throw new CheckpointError(path, "file not found");
  const base = loadBase(path, options);
  try {
    let { classifier, description, classNames } = base;
    const labelMap = options.wnidsFile ? loadWnidsLabelMap(resolve(options.wnidsFile)) : undefined;
    const size = options.imageSize === undefined ? undefined : checkInt(options.imageSize, "imageSize", 1);
    const [, h, w] = classifier.inputShape;
    const crop = options.centralFraction !== undefined && options.centralFraction !== 1;
    if (labelMap || crop || (size !== undefined && (size !== h || size !== w))) {
      const wrapped = new ResizedClassifier(classifier, {
        inputSize: size ?? [h, w],
        labelMap,
        centralFraction: options.centralFraction,
      });
      classifier = wrapped;
      if (size !== undefined && (size !== h || size !== w)) {
        description += `; takes ${size}x${size} images, resized to ${h}x${w} inside the model (bilinear)`;
      }
      if (crop) description += `; central ${+(100 * options.centralFraction!).toFixed(2)}% kept before the resize`;
      if (labelMap) {
        description += `; outputs reordered by ${labelMap.name}`;
        classNames = indices(wrapped.numClasses);
      }
    }
    if (options.labelsFile) classNames = loadClassNames(resolve(options.labelsFile), classifier.numClasses);
    return { ...base, classifier, description, classNames };
  } catch (e) {
    base.classifier.dispose?.();
    throw e;
  }
}
