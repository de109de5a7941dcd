/**
 * The test sets an evaluation can run on, by name: the small-image data sets
 * of the recipes (MNIST, Fashion-MNIST, CIFAR-10) and the evaluation half of
 * the NIPS 2017 development images (299x299, true 1001-class labels). One
 * registry, so the pipeline, the sweep's setup and a queue worker load the
 * same images by the same name, whichever experiment asked for them.
 */
import { dispose } from "../core/engine.js";
import { datasetSize, takeFirst, type ImageDataset } from "../data/index.js";
import { loadImageFolderEntries } from "../data/image-folder.js";
import { NIPS2017_SIZE, indexNips2017 } from "../data/nips2017.js";
import { DataError } from "../core/errors.js";
import { RECIPES, type SmallDataset } from "./recipes.js";

export type DatasetName = SmallDataset | "nips2017";

export interface TestSet {
  title: string;
  /**
   * The first `limit` test images (all when undefined) and the size of the whole split.
   * `cacheDir`: where a loader may keep decoded data; it never changes the images.
   */
  load(
    dataDir: string | undefined,
    limit: number | undefined,
    cacheDir?: string,
  ): Promise<{ test: ImageDataset; total: number }>;
  labelSource: string;
  labelSourceOf?: (test: ImageDataset) => string;
}

/** A small data set's test split, cut to its first `limit` images. */
function smallTestSet(name: SmallDataset): TestSet {
  const recipe = RECIPES[name];
  return {
    title: recipe.title,
    labelSource: recipe.labelSource,
    labelSourceOf: recipe.labelSourceOf,
    async load(dataDir, limit, cacheDir) {
      const full = await recipe.load("test", dataDir, cacheDir);
      const total = datasetSize(full);
      const n = limit === undefined ? total : Math.min(limit, total);
      if (n === total) return { test: full, total };
      try {
        return { test: takeFirst(full, n), total };
      } finally {
        dispose([full.images, full.labels]);
      }
    },
  };
}

/**
 * The evaluation half of a folder in the NIPS 2017 layout (data/nips2017.ts):
 * only the first `limit` images are decoded (500 of them are half a gigabyte).
 */
const NIPS2017_TEST_SET: TestSet = {
  title: "NIPS 2017",
  labelSource: "true labels (TrueLabel)",
  async load(dataDir, limit) {
    if (dataDir === undefined) throw new DataError("nips2017", "needs its folder (dev_dataset.csv, images/)");
    const split = indexNips2017(dataDir);
    const entries = limit === undefined ? split.evaluation : split.evaluation.slice(0, limit);
    const data = await loadImageFolderEntries(split.index, entries, { size: NIPS2017_SIZE, exactSize: true });
    dispose(data.targets ?? null);
    const test: ImageDataset = {
      images: data.images,
      labels: data.labels,
      classNames: [],
      name: "nips2017",
      split: "test",
      source: `${split.index.root}, evaluation half (${split.rule}), first ${entries.length} of ${split.evaluation.length}`,
    };
    return { test, total: split.evaluation.length };
  },
};

export const TEST_SETS: Readonly<Record<DatasetName, TestSet>> = {
  mnist: smallTestSet("mnist"),
  "fashion-mnist": smallTestSet("fashion-mnist"),
  cifar10: smallTestSet("cifar10"),
  nips2017: NIPS2017_TEST_SET,
};
