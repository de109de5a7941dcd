/**
 * Step 3 of the NIPS 2017 experiment: the classifier, at the data set's
 * resolution and in its label index. Images stay 299x299 (attacked and
 * defended at that size, as in the paper); a model with another input size
 * resizes inside the differentiable model (ResizedClassifier). Its outputs
 * must be the 1001-class index of TrueLabel: MobileNetV2 (TFLite) has it; a
 * 1000-class model in another order (Darknet) is mapped through its WordNet-id
 * list, found beside the model (`*wnids.txt`) or given with --class-order.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { CheckpointError } from "../../core/errors.js";
import { NIPS2017_SIZE } from "../../data/nips2017.js";
import { loadClassifierFile, type LoadedClassifier } from "../../models/load-classifier.js";
import type { ClassifierLoading } from "../evaluation.js";

/** Classes of the NIPS 2017 labels (TrueLabel): 0 = background, 1..1000 = sorted WordNet ids. */
export const NIPS2017_CLASSES = 1001;

/** The only `*wnids.txt` in the model's folder, if there is exactly one. */
export function findClassOrder(model: string): string | undefined {
  const path = resolve(model);
  const dir = existsSync(path) && statSync(path).isDirectory() ? path : dirname(path);
  if (!existsSync(dir)) return undefined;
  const found = readdirSync(dir).filter((n) => /wnids\.txt$/i.test(n));
  return found.length === 1 ? join(dir, found[0]) : undefined;
}

/** A `*labels*.txt` beside the model with one name per line for the 1001 classes (MobileNetV2's imagenet_labels.txt). */
export function findClassNames(model: string): string | undefined {
  const path = resolve(model);
  const dir = existsSync(path) && statSync(path).isDirectory() ? path : dirname(path);
  if (!existsSync(dir)) return undefined;
  for (const n of readdirSync(dir)
    .filter((f) => /labels.*\.txt$/i.test(f))
    .sort()) {
    const lines = readFileSync(join(dir, n), "utf8").split(/\r?\n/);
    while (lines.length > 0 && lines[lines.length - 1].trim() === "") lines.pop();
    if (lines.length === NIPS2017_CLASSES) return join(dir, n);
  }
  return undefined;
}

export interface ImagenetClassifier extends LoadedClassifier {
  /** The WordNet-id list that mapped the outputs, if any. */
  classOrder?: string;
}

/** How `model` is read for the NIPS 2017 images: at 299x299, its outputs mapped to the 1001-class index. */
export function imagenetLoading(model: string, classOrder?: string): ClassifierLoading {
  const order = classOrder ? resolve(classOrder) : findClassOrder(model);
  const names = findClassNames(model);
  return { imageSize: NIPS2017_SIZE, ...(order ? { wnidsFile: order } : {}), ...(names ? { labelsFile: names } : {}) };
}

/** Load `model` for 299x299 images with outputs in the NIPS 2017 label index; errors name the file. */
export function loadImagenetClassifier(model: string, classOrder?: string): ImagenetClassifier {
  const loading = imagenetLoading(model, classOrder);
  const order = loading.wnidsFile;
  const loaded = loadClassifierFile(model, loading);
  const n = loaded.classifier.numClasses;
  if (n !== NIPS2017_CLASSES) {
    loaded.classifier.dispose?.();
    throw new CheckpointError(
      loaded.path,
      `has ${n} outputs but the NIPS 2017 labels index ${NIPS2017_CLASSES} classes (0 = background)` +
        (n === 1000 && !order ? "; pass --class-order with its WordNet ids in output order" : ""),
    );
  }
  return { ...loaded, ...(order ? { classOrder: order, description: loaded.description } : {}) };
}

/** A short name of the model for tables ("mobilenet_v2_1.0_224_quant.tflite", "darknet-tiny"). */
export function modelName(loaded: Pick<LoadedClassifier, "path">): string {
  const b = basename(loaded.path);
  return b === "model.json" ? basename(dirname(loaded.path)) : b;
}
