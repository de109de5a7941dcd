/**
 * The NIPS 2017 adversarial-competition development set (the paper's 1,000
 * large images, section 4): `dev_dataset.csv` (ImageId, TrueLabel, ...)
 * beside `images/<ImageId>.png`, 299x299 RGB. TrueLabel indexes the 1001
 * outputs of the competition's Inception V3, 0 being "background".
 *
 * The paper trained its patch VAEs on the same 1,000 images it evaluated.
 * vaeguard never does: the images are split once, by a fixed rule that needs
 * nothing but the ImageIds, into an evaluation half and a training half.
 *
 * Split rule ("sorted-id-parity"): sort the ImageIds as strings (code-unit
 * order); the images at even positions (0, 2, 4, ...) are the evaluation
 * half, those at odd positions the training half. The ImageIds are random
 * hex strings, so both halves are random samples of the set; with 1,000
 * images each half holds exactly 500. The rule does not depend on the CSV's
 * row order, so a re-ordered CSV gives the same split.
 */
import { DataError } from "../core/errors.js";
import { indexImageFolder, type ImageFolderEntry, type ImageFolderIndex } from "./image-folder.js";

export const NIPS2017_SPLIT_RULE = "sorted-id-parity";

export const NIPS2017_SPLIT_DESCRIPTION =
  "ImageIds sorted as strings; even positions (0, 2, 4, ...) evaluate, odd positions train the patch VAEs";

/** The images of the NIPS 2017 set are 299x299. */
export const NIPS2017_SIZE = 299;

export interface Nips2017Split {
  index: ImageFolderIndex;
  /** Evaluation half, in sorted-ImageId order. */
  evaluation: ImageFolderEntry[];
  /** Training half (patch VAEs), in sorted-ImageId order. */
  training: ImageFolderEntry[];
  rule: string;
  description: string;
}

/** Split entries by the rule above; the two halves never share an image. */
export function splitNips2017(entries: readonly ImageFolderEntry[]): {
  evaluation: ImageFolderEntry[];
  training: ImageFolderEntry[];
} {
  const sorted = [...entries].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return {
    evaluation: sorted.filter((_, i) => i % 2 === 0),
    training: sorted.filter((_, i) => i % 2 === 1),
  };
}

/**
 * Index a folder in the NIPS 2017 layout (its CSV must have ImageId and
 * TrueLabel columns) and split it. Labels stay as in the CSV (1001-class).
 */
export function indexNips2017(folder: string): Nips2017Split {
  const index = indexImageFolder(folder, { layout: "csv" });
  if (index.entries.length < 2) {
    throw new DataError(index.csv ?? index.root, `lists ${index.entries.length} image; the split needs at least 2`);
  }
  const bad = index.entries.find((e) => e.label < 0 || e.label > 1000);
  if (bad) {
    throw new DataError(
      index.csv ?? index.root,
      `TrueLabel ${bad.label} of image ${bad.id} is outside 0..1000 (the NIPS 2017 labels index 1001 classes)`,
    );
  }
  const { evaluation, training } = splitNips2017(index.entries);
  return {
    index,
    evaluation,
    training,
    rule: NIPS2017_SPLIT_RULE,
    description:
      `${index.entries.length} images of ${index.csv ?? index.root}, split by rule "${NIPS2017_SPLIT_RULE}" ` +
      `(${NIPS2017_SPLIT_DESCRIPTION}): ${evaluation.length} evaluation, ${training.length} training`,
  };
}
