/**
 * Label maps: which output of a classifier is which class of a data set.
 *
 * The NIPS 2017 development set labels images with the 1001-class index of
 * Google's ImageNet networks (0 = background, 1..1000 = the 1000 WordNet ids
 * in sorted order). MobileNetV2 (TFLite) outputs exactly that. Darknet's
 * classifiers output 1000 classes in Darknet's own order, given by its
 * `imagenet.shortnames` / wnids list: output i is the WordNet id on line i+1.
 */
import { DataError } from "../core/errors.js";
import { readFileOr } from "../io/read-file.js";

/**
 * For each output j of the mapped classifier, the index of the wrapped
 * model's output it takes, or -1 for a class the model does not have (the
 * 1001-class index's "background"), which gets a constant, very low logit.
 */
export interface LabelMap {
  /** Short description for reports ("darknet wnids -> ImageNet 1001"). */
  name: string;
  source: Int32Array;
  /** How many outputs the wrapped model must have. */
  inputClasses: number;
}

const WNID = /^n\d{8}$/;

/** Parse a WordNet-id list (one id per line, the model's output order); errors name the file and line. */
export function parseWnids(text: string, file: string): string[] {
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1].trim() === "") lines.pop();
  const seen = new Map<string, number>();
  return lines.map((raw, i) => {
    const id = raw.trim();
    if (!WNID.test(id)) {
      throw new DataError(file, `line ${i + 1} is ${JSON.stringify(raw)}; expected a WordNet id like n01440764`);
    }
    const prev = seen.get(id);
    if (prev !== undefined) throw new DataError(file, `WordNet id ${id} appears on lines ${prev} and ${i + 1}`);
    seen.set(id, i + 1);
    return id;
  });
}

/**
 * Map a model whose output i is `wnids[i]` to the ImageNet index: the sorted
 * position of each id (1000 classes), shifted by one after a background class
 * when `background` is true (the 1001-class index that NIPS 2017's TrueLabel uses).
 */
export function labelMapFromWnids(wnids: readonly string[], file: string, background = true): LabelMap {
  if (wnids.length !== 1000) {
    throw new DataError(file, `lists ${wnids.length} WordNet ids; an ImageNet classifier has 1000`);
  }
  const sorted = [...wnids].sort();
  const modelIndex = new Map(wnids.map((w, i) => [w, i]));
  const shift = background ? 1 : 0;
  const source = new Int32Array(1000 + shift).fill(-1);
  sorted.forEach((w, std) => {
    source[std + shift] = modelIndex.get(w)!;
  });
  return {
    name: `${file} order -> ImageNet ${background ? "1001 (0 = background)" : "1000"}`,
    source,
    inputClasses: 1000,
  };
}

/** The label map of a Darknet ImageNet classifier, from its wnids file (e.g. darknet-imagenet-wnids.txt). */
export function loadWnidsLabelMap(file: string, background = true): LabelMap {
  const text = readFileOr(file, (m, cause) => new DataError(file, m, { cause })).toString("utf8");
  return labelMapFromWnids(parseWnids(text, file), file, background);
}

/** Class names, one per line; the count must equal the model's outputs. */
export function loadClassNames(file: string, expected: number): string[] {
  const text = readFileOr(file, (m, cause) => new DataError(file, m, { cause })).toString("utf8");
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1].trim() === "") lines.pop();
  if (lines.length !== expected) {
    throw new DataError(
      file,
      `has ${lines.length} lines but the classifier has ${expected} classes (one name per line)`,
    );
  }
  return lines.map((l) => l.trim());
}
