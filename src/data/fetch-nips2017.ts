/**
 * `vaeguard data fetch nips2017`: the NIPS 2017 adversarial-competition
 * development set (1,000 PNGs at 299x299 and dev_dataset.csv) for users with
 * internet access.
 *
 * The competition published dev_dataset.csv (cleverhans,
 * examples/nips17_adversarial_competition/dataset) with Flickr URLs and crop
 * boxes, and the cropped 299x299 PNGs as a Kaggle download that needs an
 * account. The PNGs are fetched from a public research repository that
 * committed that Kaggle set unchanged (dataset/images, dataset/dev_dataset.csv),
 * pinned to one commit, file by file. The CSV is checked by its SHA-256; the
 * images by one digest over all of them: the SHA-256 of the lines
 * "<sha256 of the file>  images/<ImageId>.png", sorted by path. Both were
 * computed from the copy this project was developed with.
 *
 * Files go to a temporary folder inside the data root and are renamed into
 * place only when everything matches.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DataError } from "../core/errors.js";
import { downloadFile } from "../io/download.js";
import { parseCsv } from "./image-folder.js";

export const NIPS2017_REMOTE = {
  name: "NIPS 2017 adversarial competition development set",
  repository: "dongyp13/Translation-Invariant-Attacks",
  commit: "6555251ccae73d155e5cd58d6f92ff1fdfae5072",
  csvSha256: "3aa0a23f075efc85f8893de78ba89b3c2bc54e1622a3541d0f203ac691d257fd",
  imagesDigest: "5ed0efde28b324d5fbac4deae2f3bd1b36907aad4b02cbdc8f23ebe81305587c",
  images: 1000,
  folder: "nips2017-dev",
};

const base = () => `https://raw.githubusercontent.com/${NIPS2017_REMOTE.repository}/${NIPS2017_REMOTE.commit}/dataset/`;

/** SHA-256 over "<sha>  <path>\n" lines sorted by path: one number for a whole set of files. */
export function manifestDigest(files: readonly { path: string; sha256: string }[]): string {
  const lines = [...files]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((f) => `${f.sha256}  ${f.path}\n`)
    .join("");
  return createHash("sha256").update(lines).digest("hex");
}

export interface Nips2017FetchOptions {
  /** The set lands in <dataRoot>/nips2017-dev. */
  dataRoot: string;
  timeoutSeconds?: number;
  /** Files at once (default 8). */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

const MARKER = ".vaeguard-complete";

/** Download and verify the set unless it is already in place; returns its folder. */
export async function fetchNips2017(o: Nips2017FetchOptions): Promise<string> {
  const target = join(o.dataRoot, NIPS2017_REMOTE.folder);
  if (existsSync(join(target, MARKER))) return target;
  const help =
    `Copy the set by hand instead: dev_dataset.csv and images/<ImageId>.png from ${base()} ` +
    `(or the competition's Kaggle download) into ${target}.`;
  mkdirSync(o.dataRoot, { recursive: true });
  const work = mkdtempSync(join(o.dataRoot, ".fetch-nips2017-"));
  try {
    const csv = join(work, "dev_dataset.csv");
    await downloadFile(`${base()}dev_dataset.csv`, csv, {
      sha256: NIPS2017_REMOTE.csvSha256,
      timeoutSeconds: o.timeoutSeconds,
      help,
    });
    const rows = parseCsv(readFileSync(csv, "utf8"));
    const idCol = rows[0].fields.indexOf("ImageId");
    const ids = rows.slice(1).map((r) => r.fields[idCol]);
    if (ids.length !== NIPS2017_REMOTE.images || ids.some((id) => !/^[0-9a-f]{16}$/.test(id))) {
      throw new DataError(csv, `does not list ${NIPS2017_REMOTE.images} hexadecimal ImageIds`);
    }
    const files: { path: string; sha256: string }[] = [];
    let next = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= ids.length) return;
        const path = `images/${ids[i]}.png`;
        const sha256 = await downloadFile(`${base()}${path}`, join(work, path), {
          timeoutSeconds: o.timeoutSeconds,
          help,
        });
        files.push({ path, sha256 });
        o.onProgress?.(files.length, ids.length);
      }
    };
    await Promise.all(Array.from({ length: o.concurrency ?? 8 }, worker));
    const digest = manifestDigest(files);
    if (digest !== NIPS2017_REMOTE.imagesDigest) {
      throw new DataError(
        `${base()}images/`,
        `the ${files.length} images do not match the expected digest (${digest} instead of ${NIPS2017_REMOTE.imagesDigest}): some are damaged or different. ${help}`,
      );
    }
    writeFileSync(join(work, MARKER), `${NIPS2017_REMOTE.repository}@${NIPS2017_REMOTE.commit}\n`);
    rmSync(target, { recursive: true, force: true });
    renameSync(work, target);
    return target;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
