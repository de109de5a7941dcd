/**
 * `vaeguard data fetch`: the only place vaeguard downloads anything. It fetches
 * a data set's official archive, verifies its published checksum, and extracts
 * it atomically (into a temporary folder, then one rename). On a machine
 * without internet access it says so plainly and explains how to place the
 * files by hand.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { DataError, VaeguardError } from "../core/errors.js";
import { downloadFile } from "../io/download.js";

export interface RemoteDataset {
  name: string;
  url: string;
  md5: string;
  /** Folder inside the archive that holds the files. */
  folder: string;
  files: string[];
}

export const REMOTE_DATASETS: Record<string, RemoteDataset> = {
  cifar10: {
    name: "CIFAR-10 (binary version)",
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    folder: "cifar-10-batches-bin",
    files: [
      "data_batch_1.bin",
      "data_batch_2.bin",
      "data_batch_3.bin",
      "data_batch_4.bin",
      "data_batch_5.bin",
      "test_batch.bin",
    ],
  },
};

export function md5File(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const h = createHash("md5");
    createReadStream(path)
      .on("data", (c) => h.update(c))
      .on("end", () => resolvePromise(h.digest("hex")))
      .on("error", reject);
  });
}

function manualHelp(ds: RemoteDataset, target: string): string {
  return (
    `Download ${ds.url} on a machine with internet access, copy it here, and run ` +
    `\`vaeguard data fetch ${Object.keys(REMOTE_DATASETS).find((k) => REMOTE_DATASETS[k] === ds)} --archive <file>\` ` +
    `(it checks the MD5 ${ds.md5} and extracts into ${target}), or extract it yourself and pass --data-dir <folder with ${ds.files[0]} ...>.`
  );
}

export interface FetchOptions {
  /** Data folder; the data set lands in <dataRoot>/<folder>. */
  dataRoot: string;
  /** Use this already-downloaded archive instead of the network. */
  archive?: string;
  onProgress?: (received: number, total: number | undefined) => void;
  /** Seconds to wait for the server to answer. */
  timeoutSeconds?: number;
}

/** Download (or take), verify and extract a data set. Returns the folder with its files. */
export async function fetchDataset(key: string, o: FetchOptions): Promise<string> {
  const ds = REMOTE_DATASETS[key];
  if (!ds)
    throw new VaeguardError(
      `Expected one of ${Object.keys(REMOTE_DATASETS).join(", ")} for dataset but received ${JSON.stringify(key)}`,
    );
  const target = join(o.dataRoot, ds.folder);
  if (ds.files.every((f) => existsSync(join(target, f)))) return target;
  mkdirSync(o.dataRoot, { recursive: true });
  const work = mkdtempSync(join(o.dataRoot, `.fetch-${key}-`));
  try {
    let archive = o.archive;
    if (!archive) {
      archive = join(work, "archive.tar.gz");
      await downloadFile(ds.url, archive, {
        timeoutSeconds: o.timeoutSeconds,
        onProgress: o.onProgress,
        help: manualHelp(ds, target),
      });
    } else if (!existsSync(archive)) {
      throw new DataError(archive, "no such archive file");
    }
    const sum = await md5File(archive);
    if (sum !== ds.md5) {
      throw new DataError(
        archive,
        `MD5 ${sum} does not match the published ${ds.md5}: the download is damaged or it is another file. ${manualHelp(ds, target)}`,
      );
    }
    const out = join(work, "extract");
    mkdirSync(out);
    const tar = spawnSync("tar", ["-xzf", archive, "-C", out], { encoding: "utf8" });
    if (tar.status !== 0)
      throw new DataError(archive, `could not be extracted: ${tar.stderr.trim() || tar.error?.message}`);
    const extracted = join(out, ds.folder);
    for (const f of ds.files)
      if (!existsSync(join(extracted, f))) throw new DataError(archive, `does not contain ${ds.folder}/${f}`);
    rmSync(target, { recursive: true, force: true });
    renameSync(extracted, target);
    return target;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
