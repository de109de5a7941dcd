/**
 * Accuracy against perturbation size, as in the paper's Figures 2 and 3: top-1 accuracy (y, 0..1)
 * against average relative L2 difference (x), one line with markers per defense. Several attacks
 * (or modes) in the rows become side-by-side panels. Built as a vega-lite spec, rendered headless by
 * vega to SVG, and rasterised by sharp (librsvg), which needs a system font for the labels.
 */
import sharp from "sharp";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { writeFileAtomic } from "../io/atomic.js";
import { checkInt, checkNumber, fail } from "../core/validate.js";
import { checkRows, groupLabel, groupRows, resolveDefenses, type ResultRow } from "./types.js";

export interface PlotOptions {
  title: string;
  /** Lines and legend order; default: every defense, in first-seen order. */
  defenses?: readonly string[];
  /** Size of one panel's plotting area in SVG units (default 420 x 300). */
  width?: number;
  height?: number;
  /** PNG pixels per SVG unit (default 2, for sharp text in documents). */
  scale?: number;
  xTitle?: string;
  yTitle?: string;
}

export interface RenderedPlot {
  svg: string;
  png: Buffer;
}

interface Datum {
  panel: string;
  defense: string;
  relL2: number;
  accuracy: number;
  lo?: number;
  hi?: number;
}

function checkTitle(options: PlotOptions): string {
  if (typeof options?.title !== "string" || options.title.trim() === "") {
    fail("non-empty string", "title", options?.title);
  }
  return options.title;
}

export function accuracyPlotSpec(rows: readonly ResultRow[], options: PlotOptions): TopLevelSpec {
  checkRows(rows);
  const title = checkTitle(options);
  const defenses = resolveDefenses(rows, options.defenses);
  const width = checkInt(options.width ?? 420, "width", 50, 4000);
  const height = checkInt(options.height ?? 300, "height", 50, 4000);
  const groups = groupRows(rows);
  const panels = groups.map(groupLabel);

  const values: Datum[] = [];
  for (const group of groups) {
    for (const row of group.rows) {
      for (const defense of defenses) {
        const accuracy = row.accuracy[defense];
        if (accuracy === undefined) continue;
        const std = row.std?.[defense];
        const datum: Datum = { panel: groupLabel(group), defense, relL2: row.relL2, accuracy };
        if (std !== undefined)
          Object.assign(datum, { lo: Math.max(0, accuracy - std), hi: Math.min(1, accuracy + std) });
        values.push(datum);
      }
    }
  }

  // Same field, title and domain on color and shape, so vega-lite merges them into one legend.
  const legend = { field: "defense", type: "nominal", title: "Defense", scale: { domain: defenses } } as const;
  const x = {
    field: "relL2",
    type: "quantitative",
    title: options.xTitle ?? "Average relative L2 difference",
    scale: { zero: true },
  } as const;
  const y = {
    field: "accuracy",
    type: "quantitative",
    title: options.yTitle ?? "Top-1 accuracy",
    scale: { domain: [0, 1] },
  } as const;
  const layer = [
    { mark: { type: "line", strokeWidth: 2 }, encoding: { x, y, color: legend } },
    ...(values.some((v) => v.lo !== undefined)
      ? [
          {
            transform: [{ filter: "isValid(datum.lo)" }],
            mark: { type: "rule" },
            encoding: { x, y: { field: "lo", type: "quantitative" }, y2: { field: "hi" }, color: legend },
          },
        ]
      : []),
    { mark: { type: "point", filled: true, size: 60, opacity: 1 }, encoding: { x, y, color: legend, shape: legend } },
  ];
  const config = { background: "white", font: "DejaVu Sans, sans-serif" };
  if (groups.length === 1) {
    return { title, width, height, data: { values }, layer, config } as unknown as TopLevelSpec;
  }
  // Attacks differ in their L2 range (FGSM vs I-FGSM at one epsilon), so each panel has its own x scale.
  return {
    title: { text: title, anchor: "middle" },
    data: { values },
    facet: { column: { field: "panel", type: "nominal", sort: panels, header: { title: null, labelFontSize: 13 } } },
    spec: { width, height, layer },
    resolve: { scale: { x: "independent" } },
    config,
  } as unknown as TopLevelSpec;
}

/** SVG from a vega-lite spec, without a browser or canvas. */
export async function renderVegaLiteSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function rasteriseSvg(svg: string, scale = 2): Promise<Buffer> {
  checkNumber(scale, "scale", 0.1, 16);
  return sharp(Buffer.from(svg), { density: 72 * scale })
    .png()
    .toBuffer();
}

export async function renderAccuracyPlot(rows: readonly ResultRow[], options: PlotOptions): Promise<RenderedPlot> {
  const svg = await renderVegaLiteSvg(accuracyPlotSpec(rows, options));
  return { svg, png: await rasteriseSvg(svg, options.scale ?? 2) };
}

/** Writes `${pathWithoutExt}.svg` and `.png`, each atomically; returns both paths. */
export async function writeAccuracyPlot(
  pathWithoutExt: string,
  rows: readonly ResultRow[],
  options: PlotOptions,
): Promise<{ svgPath: string; pngPath: string }> {
  const { svg, png } = await renderAccuracyPlot(rows, options);
  const svgPath = `${pathWithoutExt}.svg`;
  const pngPath = `${pathWithoutExt}.png`;
  writeFileAtomic(svgPath, svg);
  writeFileAtomic(pngPath, png);
  return { svgPath, pngPath };
}

/**
 * Whether librsvg finds a font: without one, text silently vanishes from every PNG. Renders one
 * glyph and looks for ink. (Debian: `apt-get install fonts-dejavu-core`.)
 */
export async function canRenderText(): Promise<boolean> {
  const svg =
    '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="40" height="40" fill="white"/>' +
    '<text x="4" y="32" font-family="DejaVu Sans, sans-serif" font-size="32" fill="black">M</text></svg>';
  const { data } = await sharp(Buffer.from(svg)).greyscale().raw().toBuffer({ resolveWithObject: true });
  return data.some((v) => v < 128);
}
