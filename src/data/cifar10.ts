/** CIFAR-10 from its official binary version (cifar-10-binary.tar.gz, extracted). */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ArgumentError, DataError } from "../core/errors.js";
import {
  CIFAR10_CLASSES,
  CIFAR10_IMAGE_BYTES,
  CIFAR10_TEST_FILES,
  CIFAR10_TRAIN_FILES,
  readCifarBatch,
} from "../io/cifar.js";
import { applyLimit, checkSplit, datasetFromBytes, type ImageDataset, type LoadOptions } from "./dataset.js";

/** The folder the archive extracts to; accepted below dataDir so either folder can be given. */
const ARCHIVE_FOLDER = "cifar-10-batches-bin";

function resolveDir(dataDir: string, first: string): string {
  const nested = join(dataDir, ARCHIVE_FOLDER);
  return !existsSync(join(dataDir, first)) && existsSync(join(nested, first)) ? nested : dataDir;
}

/**
 * CIFAR-10 (50000 train / 10000 test 32x32 colour images). `dataDir` is the
 * extracted `cifar-10-batches-bin` folder or the folder that contains it.
 */
export function loadCifar10(options: LoadOptions): ImageDataset {
  const split = checkSplit(options.split);
  if (typeof options.dataDir !== "string") {
    throw new ArgumentError(
      "loadCifar10 needs dataDir: the folder of the extracted cifar-10-binary.tar.gz (CIFAR-10 is not bundled; `vaeguard data fetch` downloads it)",
    );
  }
  const names = split === "train" ? CIFAR10_TRAIN_FILES : CIFAR10_TEST_FILES;
  const dir = resolveDir(options.dataDir, names[0]);
  const files = names.map((f) => join(dir, f));
  // Say everything that is missing at once, rather than one file per attempt.
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new DataError(
      missing[0],
      `CIFAR-10 ${split} file not found${missing.length > 1 ? ` (nor ${missing.slice(1).join(", ")})` : ""}; ` +
        `dataDir must hold the binary version (cifar-10-binary.tar.gz) extracted, or run \`vaeguard data fetch\``,
    );
  }

  // Read files in order only until the limit is reached.
  const pixels: Uint8Array[] = [];
  const labels: Uint8Array[] = [];
  let total = 0;
  const wanted = applyLimit(options.limit, Infinity);
  const used: string[] = [];
  for (const f of files) {
    const batch = readCifarBatch(f);
    pixels.push(batch.images);
    labels.push(batch.labels);
    used.push(f);
    total += batch.count;
    if (total >= wanted) break;
  }
  const keep = Math.min(total, wanted);
  const allPixels = Buffer.concat(pixels).subarray(0, keep * CIFAR10_IMAGE_BYTES);
  const allLabels = Buffer.concat(labels).subarray(0, keep);
  const note = keep < total || used.length < files.length ? ` (first ${keep})` : "";
  return datasetFromBytes({
    pixels: allPixels,
    labels: allLabels,
    shape: [keep, 3, 32, 32],
    classNames: CIFAR10_CLASSES,
    name: "cifar10",
    split,
    source: `CIFAR-10 binary: ${used.join(", ")}${note}`,
  });
}
