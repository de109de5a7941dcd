/**
 * Picture grids like the paper's Figure 1: rows of images (original, adversarial, each defense's
 * reconstruction) with a caption under each. Pixels are laid out in JS (integer nearest-neighbour
 * upscaling keeps MNIST's pixels crisp); captions go on as one SVG overlay composited by sharp.
 */
import sharp from "sharp";
import { writeFileAtomic } from "../io/atomic.js";
import { checkInt, fail } from "../core/validate.js";
// A grid's cells are eval's data (the large-image experiment makes them); the report lays them out.
export type { GridCell, GridImage } from "../eval/results.js";
import type { GridCell, GridImage, GridSample } from "../eval/results.js";

/**
 * The rows of a sweep's picture grid: original (with its true label, or only
 * the clean prediction where labels are agreement with it), adversarial, then
 * each of `defenses` (names in the sample), with predictions as class names.
 */
export function sweepGridCells(
  g: GridSample,
  classNames: readonly string[],
  defenses: readonly string[],
  options: { trueLabels?: boolean } = {},
): GridCell[][] {
  const [c, h, w] = g.shape;
  const img = (data: Float32Array): GridImage => ({ width: w, height: h, channels: c as 1 | 3, data });
  const original = (o: GridSample["original"][number]) =>
    options.trueLabels === false
      ? `original\nclean pred ${classNames[o.prediction]}`
      : `original\ntrue ${classNames[o.label]}, pred ${classNames[o.prediction]}`;
  return g.original.map((o, i) => [
    { image: img(o.data), caption: original(o) },
    {
      image: img(g.adversarial[i].data),
      caption: `${g.attack} eps ${g.epsilon}\npred ${classNames[g.adversarial[i].prediction]}`,
    },
    ...defenses.map((d) => ({
      image: img(g.defended[d][i].data),
      caption: `${d}\npred ${classNames[g.defended[d][i].prediction]}`,
    })),
  ]);
}

export interface GridOptions {
  /** Small images are upscaled by an integer factor until their longer side reaches this (default 96). */
  minSize?: number;
  /** Space around and between slots (default 8). */
  gap?: number;
  fontSize?: number;
  /** One label above each column, e.g. ["original", "adversarial", "VAE"]. */
  columnHeaders?: readonly string[];
  title?: string;
}

export interface GridLayout {
  width: number;
  height: number;
  columns: number;
  /** Size of every image slot; images are centred in it. */
  slotWidth: number;
  slotHeight: number;
  captionHeight: number;
  /** Height above the first row (title and column headers). */
  top: number;
  gap: number;
  lineHeight: number;
  fontSize: number;
}

function checkImage(image: GridImage, name: string): GridImage {
  checkInt(image.width, `${name}.width`, 1);
  checkInt(image.height, `${name}.height`, 1);
  if (image.channels !== 1 && image.channels !== 3) fail("1 or 3", `${name}.channels`, image.channels);
  const expected = image.width * image.height * image.channels;
  if (!(image.data instanceof Float32Array) || image.data.length !== expected) {
    fail(`Float32Array of length ${expected}`, `${name}.data`, image.data?.length);
  }
  return image;
}

export function upscaleFactor(image: GridImage, minSize: number): number {
  return Math.max(1, Math.ceil(minSize / Math.max(image.width, image.height)));
}

function linesOf(text: string | undefined): string[] {
  return text === undefined || text === "" ? [] : text.split("\n");
}

/** No canvas to measure with, so assume DejaVu Sans' average advance of about 0.6 em. */
function textWidth(text: string, fontSize: number): number {
  return Math.ceil(text.length * fontSize * 0.6) + 4;
}

export function gridLayout(cells: readonly (readonly GridCell[])[], options: GridOptions = {}): GridLayout {
  if (!Array.isArray(cells as unknown) || cells.length === 0 || cells.every((row) => row.length === 0)) {
    fail("non-empty array of rows of cells", "cells", cells);
  }
  const minSize = checkInt(options.minSize ?? 96, "minSize", 1, 4096);
  const gap = checkInt(options.gap ?? 8, "gap", 0, 1000);
  const fontSize = checkInt(options.fontSize ?? 12, "fontSize", 4, 200);
  const lineHeight = Math.ceil(fontSize * 1.3);
  const columns = Math.max(...cells.map((row) => row.length));
  const headers = options.columnHeaders ?? [];
  if (headers.length > columns) fail(`at most ${columns} column headers`, "columnHeaders", headers);

  let slotWidth = 1;
  let slotHeight = 1;
  let captionLines = 0;
  cells.forEach((row, r) =>
    row.forEach((cell, c) => {
      const lines = linesOf(cell.caption);
      captionLines = Math.max(captionLines, lines.length);
      for (const line of lines) slotWidth = Math.max(slotWidth, textWidth(line, fontSize));
      if (cell.image === null) return;
      const image = checkImage(cell.image, `cells[${r}][${c}].image`);
      const k = upscaleFactor(image, minSize);
      slotWidth = Math.max(slotWidth, image.width * k);
      slotHeight = Math.max(slotHeight, image.height * k);
    }),
  );
  for (const h of headers) slotWidth = Math.max(slotWidth, textWidth(h, fontSize));

  const captionHeight = captionLines > 0 ? captionLines * lineHeight + 4 : 0;
  const titleHeight = options.title ? Math.ceil(fontSize * 1.5) + gap : 0;
  const headerHeight = headers.length > 0 ? lineHeight + 4 : 0;
  const top = titleHeight + headerHeight;
  return {
    width: columns * slotWidth + (columns + 1) * gap,
    height: top + cells.length * (slotHeight + captionHeight) + (cells.length + 1) * gap,
    columns,
    slotWidth,
    slotHeight,
    captionHeight,
    top,
    gap,
    lineHeight,
    fontSize,
  };
}

/** Paint one CHW float image into an RGB byte canvas, each pixel a k x k block. */
function paint(canvas: Uint8Array, canvasWidth: number, image: GridImage, left: number, top: number, k: number): void {
  const { width, height, channels, data } = image;
  const plane = width * height;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const rgb = [0, 1, 2].map((ch) => {
        const v = data[(channels === 1 ? 0 : ch) * plane + y * width + x];
        if (Number.isNaN(v)) fail("pixel values without NaN", "image.data", v);
        return Math.round(Math.min(1, Math.max(0, v)) * 255);
      });
      for (let dy = 0; dy < k; dy++) {
        let o = ((top + y * k + dy) * canvasWidth + left + x * k) * 3;
        for (let dx = 0; dx < k; dx++, o += 3) canvas.set(rgb, o);
      }
    }
  }
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function svgText(x: number, baseline: number, text: string, fontSize: number, bold = false): string {
  const weight = bold ? ' font-weight="bold"' : "";
  return `<text x="${x}" y="${baseline}" font-size="${fontSize}"${weight} text-anchor="middle">${escapeXml(text)}</text>`;
}

export async function renderImageGrid(
  cells: readonly (readonly GridCell[])[],
  options: GridOptions = {},
): Promise<Buffer> {
  const L = gridLayout(cells, options);
  const minSize = options.minSize ?? 96;
  const canvas = new Uint8Array(L.width * L.height * 3).fill(255);
  const texts: string[] = [];
  // Text baselines sit about a quarter of the line above its bottom, leaving room for descenders.
  const descent = Math.round(L.fontSize * 0.3);
  const slotX = (c: number) => L.gap + c * (L.slotWidth + L.gap);

  if (options.title)
    texts.push(svgText(L.width / 2, L.gap + L.fontSize * 1.2, options.title, Math.round(L.fontSize * 1.2), true));
  (options.columnHeaders ?? []).forEach((h, c) => {
    texts.push(svgText(slotX(c) + L.slotWidth / 2, L.top - descent - 2, h, L.fontSize, true));
  });
  cells.forEach((row, r) => {
    const y0 = L.top + L.gap + r * (L.slotHeight + L.captionHeight + L.gap);
    row.forEach((cell, c) => {
      const x0 = slotX(c);
      if (cell.image) {
        const k = upscaleFactor(cell.image, minSize);
        const left = x0 + Math.floor((L.slotWidth - cell.image.width * k) / 2);
        const top = y0 + Math.floor((L.slotHeight - cell.image.height * k) / 2);
        paint(canvas, L.width, cell.image, left, top, k);
      }
      linesOf(cell.caption).forEach((line, i) => {
        const baseline = y0 + L.slotHeight + 2 + (i + 1) * L.lineHeight - descent;
        texts.push(svgText(x0 + L.slotWidth / 2, baseline, line, L.fontSize));
      });
    });
  });

  let img = sharp(canvas, { raw: { width: L.width, height: L.height, channels: 3 } });
  if (texts.length > 0) {
    const overlay =
      `<svg xmlns="http://www.w3.org/2000/svg" width="${L.width}" height="${L.height}">` +
      `<g font-family="DejaVu Sans, sans-serif" fill="black">${texts.join("")}</g></svg>`;
    img = img.composite([{ input: Buffer.from(overlay), top: 0, left: 0 }]);
  }
  return img.png().toBuffer();
}

export async function writeImageGrid(
  path: string,
  cells: readonly (readonly GridCell[])[],
  options: GridOptions = {},
): Promise<void> {
  writeFileAtomic(path, await renderImageGrid(cells, options));
}
