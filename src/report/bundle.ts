/**
 * One call that writes a whole report folder: results.json and results.csv (for machines), one
 * accuracy plot per attack and mode, an optional picture grid, and report.md linking them all.
 */
import { join } from "node:path";
import sharp from "sharp";
import { version as vegaVersion } from "vega";
import { version as vegaLiteVersion } from "vega-lite";
import { writeFileAtomic, writeJsonAtomic } from "../io/atomic.js";
import { writeImageGrid, type GridCell, type GridOptions } from "./grid.js";
import { writeMarkdownReport, type ReportImage, type ReportInput } from "./markdown.js";
import { writeAccuracyPlot, type PlotOptions } from "./plot.js";
import { renderCsv } from "./table.js";
import { checkMetadata, checkRows, groupLabel, groupRows, slug, type EvaluationResult } from "./types.js";

export interface BundleInput extends Omit<ReportInput, "plots" | "grid"> {
  plotOptions?: Omit<PlotOptions, "title" | "defenses">;
  grid?: { cells: readonly (readonly GridCell[])[]; options?: GridOptions; caption?: string };
}

export interface BundlePaths {
  report: string;
  json: string;
  csv: string;
  /** PNG paths; an SVG lies beside each. */
  plots: string[];
  grid?: string;
}

/** Versions of the libraries that drew the report; callers add the engine's and their own. */
export function reportSoftwareVersions(): Record<string, string> {
  return {
    node: process.versions.node,
    vega: vegaVersion,
    "vega-lite": vegaLiteVersion,
    sharp: sharp.versions.sharp ?? "unknown",
    libvips: sharp.versions.vips,
  };
}

export async function writeReportBundle(dir: string, input: BundleInput): Promise<BundlePaths> {
  checkMetadata(input.metadata);
  checkRows(input.rows);
  const result: EvaluationResult = { metadata: input.metadata, rows: [...input.rows] };
  const paths: BundlePaths = {
    report: join(dir, "report.md"),
    json: join(dir, "results.json"),
    csv: join(dir, "results.csv"),
    plots: [],
  };
  writeJsonAtomic(paths.json, result);
  writeFileAtomic(paths.csv, renderCsv(input.rows, { defenses: input.defenses, includeAttack: true }));

  const plots: ReportImage[] = [];
  for (const g of groupRows(input.rows)) {
    const name = `plot-${slug(groupLabel(g))}`;
    const defenses = input.defenses?.filter((d) => g.rows.some((r) => r.accuracy[d] !== undefined));
    const title = `${groupLabel(g)} on ${input.metadata.dataset}`;
    const { pngPath } = await writeAccuracyPlot(join(dir, name), g.rows, {
      ...input.plotOptions,
      title,
      defenses: defenses && defenses.length > 0 ? defenses : undefined,
    });
    paths.plots.push(pngPath);
    plots.push({
      path: `${name}.png`,
      caption: `Top-1 accuracy against average relative L2 difference: ${title}.`,
      attack: g.attack,
      mode: g.mode,
    });
  }

  let grid: ReportImage | undefined;
  if (input.grid) {
    paths.grid = join(dir, "grid.png");
    await writeImageGrid(paths.grid, input.grid.cells, input.grid.options);
    grid = { path: "grid.png", caption: input.grid.caption };
  }
  writeMarkdownReport(paths.report, { ...input, plots, grid });
  return paths;
}
