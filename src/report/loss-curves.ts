/**
 * Training curves: one line per model and kind (the epoch's training mean, the
 * fixed monitor set after the epoch) of a loss term against the epoch, as an
 * SVG and a PNG (vega-lite, rendered headless like the accuracy plots).
 */
import type { TopLevelSpec } from "vega-lite";
import { writeFileAtomic } from "../io/atomic.js";
import { fail } from "../core/validate.js";
import { rasteriseSvg, renderVegaLiteSvg } from "./plot.js";

export interface LossPoint {
  /** Which model ("VAE 16x16"). */
  model: string;
  /** Which measurement ("training", "monitor"). */
  kind: string;
  epoch: number;
  value: number;
}

export function lossCurveSpec(points: readonly LossPoint[], title: string, yTitle: string): TopLevelSpec {
  if (!Array.isArray(points) || points.length === 0) fail("non-empty array of loss points", "points", points);
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title,
    width: 460,
    height: 300,
    background: "white",
    data: { values: points.map((p) => ({ ...p })) },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "epoch", type: "quantitative", title: "epoch", axis: { tickMinStep: 1 } },
      y: { field: "value", type: "quantitative", title: yTitle, scale: { zero: false, type: "log" } },
      color: { field: "model", type: "nominal", title: "model" },
      strokeDash: { field: "kind", type: "nominal", title: "measured on" },
    },
  };
}

/** Writes `${pathWithoutExt}.svg` and `.png` atomically; returns the PNG's path. */
export async function writeLossCurvePlot(
  pathWithoutExt: string,
  points: readonly LossPoint[],
  title: string,
  yTitle: string,
): Promise<string> {
  const svg = await renderVegaLiteSvg(lossCurveSpec(points, title, yTitle));
  writeFileAtomic(`${pathWithoutExt}.svg`, svg);
  writeFileAtomic(`${pathWithoutExt}.png`, await rasteriseSvg(svg, 2));
  return `${pathWithoutExt}.png`;
}
