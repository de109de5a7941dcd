/**
 * Results files of vaeguard versions before the shared pipeline: per image,
 * format "vaeguard-imagenet/1" (evaluation.json and its shard files). Their
 * numbers came from per-batch seeds the cells no longer use, so they cannot be
 * resumed as cells; they are refused with one line, or removed by --restart.
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { VaeguardError } from "../../core/errors.js";

const OLD_FILE = /^evaluation(\.shard\d+-of-\d+)?\.json$/;

export function oldResultsFiles(outDir: string): string[] {
  if (!existsSync(outDir)) return [];
  return readdirSync(outDir)
    .filter((f) => OLD_FILE.test(f))
    .sort()
    .map((f) => join(outDir, f));
}

/** Throw when `outDir` holds old results (restart: delete them instead). */
export function refuseOldResults(outDir: string, restart: boolean): void {
  const old = oldResultsFiles(outDir);
  if (old.length === 0) return;
  if (restart) {
    for (const f of old) rmSync(f, { force: true });
    return;
  }
  throw new VaeguardError(
    `${old[0]}: per-image results of an earlier vaeguard (format vaeguard-imagenet/1), which this version cannot resume; ` +
      "delete it (and any evaluation.shard*.json beside it), pass --restart, or use another --out",
  );
}
