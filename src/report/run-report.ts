/**
 * The report step of the evaluation pipeline (src/eval/pipeline.ts): write the
 * report folder of an evaluate or reproduce run from its draft.
 */
import { readdirSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import type { ReportDraft } from "../eval/pipeline.js";
import { reportSoftwareVersions, writeReportBundle, type BundlePaths } from "./bundle.js";
import { sweepGridCells } from "./grid.js";

/** Plots of an earlier run in the same folder (another mode or attack list) would pass for this run's. */
function removeStalePlots(out: string, current: string[]): void {
  const keep = new Set(current.map((p) => basename(p).replace(/\.png$/, "")));
  for (const f of readdirSync(out)) {
    const m = /^(plot-.+)\.(png|svg)$/.exec(f);
    if (m && !keep.has(m[1])) rmSync(join(out, f), { force: true });
  }
}

export async function writeRunReport(dir: string, draft: ReportDraft): Promise<BundlePaths> {
  const { grid, removeStalePlots: removeStale, metadata, ...rest } = draft;
  const paths = await writeReportBundle(dir, {
    ...rest,
    metadata: { ...metadata, versions: { ...reportSoftwareVersions(), ...metadata.versions } },
    grid: grid
      ? { cells: sweepGridCells(grid.sample, grid.classNames, grid.defenses), caption: grid.caption }
      : undefined,
  });
  if (removeStale) removeStalePlots(dir, paths.plots);
  return paths;
}
