/**
 * Step 1 of the NIPS 2017 experiment: index the images, split them into the
 * evaluation and training halves (src/data/nips2017.ts), and load either half
 * at 299x299 (an image of any other size is an error, not resized).
 */
import { dispose } from "../../core/engine.js";
import { type ImageFolderEntry, loadImageFolderEntries } from "../../data/image-folder.js";
import { NIPS2017_SIZE, indexNips2017, type Nips2017Split } from "../../data/nips2017.js";
import { PatchSource } from "../../data/patches.js";
import type { Tensor } from "../../core/tensor.js";

export function splitImages(folder: string): Nips2017Split {
  return indexNips2017(folder);
}

/** The training half as 8-bit patch source (the float tensor is freed at once). */
export async function loadTrainingPatches(split: Nips2017Split): Promise<PatchSource> {
  const data = await loadImageFolderEntries(split.index, split.training, {
    size: NIPS2017_SIZE,
    exactSize: true,
  });
  try {
    return new PatchSource(data.images);
  } finally {
    dispose([data.images, data.labels, data.targets]);
  }
}

/** Evaluation images [N, 3, 299, 299] float32 in [0, 1], in the order of `entries`; the caller disposes them. */
export async function loadEvaluationImages(
  split: Nips2017Split,
  entries: readonly ImageFolderEntry[],
): Promise<Tensor> {
  const data = await loadImageFolderEntries(split.index, entries, { size: NIPS2017_SIZE, exactSize: true });
  dispose([data.labels, data.targets]);
  return data.images;
}
