import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import sharp from "sharp";
import {
  accuracyPlotSpec,
  canRenderText,
  rasteriseSvg,
  renderAccuracyPlot,
  writeAccuracyPlot,
} from "../../src/report/plot.js";
import { TABLE4_LIKE } from "./fixtures.js";

const dir = mkdtempSync(join(tmpdir(), "vaeguard-plot-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function svgSize(svg: string): [number, number] {
  const m = /^<svg[^>]* width="(\d+)" height="(\d+)"/.exec(svg);
  assert.ok(m, "SVG root with width and height");
  return [Number(m[1]), Number(m[2])];
}

function textContents(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
}

async function differingBytes(a: Buffer, b: Buffer): Promise<number> {
  const [ra, rb] = await Promise.all([a, b].map((p) => sharp(p).raw().toBuffer()));
  assert.equal(ra.length, rb.length);
  let n = 0;
  for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) n++;
  return n;
}

describe("renderAccuracyPlot", () => {
  const options = { title: "FGSM attack on MNIST", defenses: ["No Def", "JPEG 23", "VAE"] };

  it("draws valid SVG with the title, axis titles and every defense in the legend", async () => {
    const { svg } = await renderAccuracyPlot(TABLE4_LIKE, options);
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>$/);
    const texts = textContents(svg);
    for (const t of [
      options.title,
      "Top-1 accuracy",
      "Average relative L2 difference",
      "Defense",
      ...options.defenses,
    ]) {
      assert.ok(texts.includes(t), `text "${t}" in the SVG`);
    }
    // One line per defense, one marker per (row, defense), and color and shape merged into one legend.
    assert.equal(svg.match(/aria-roledescription="line mark"/g)?.length, 3);
    assert.equal(svg.match(/aria-roledescription="point"/g)?.length, 15);
    assert.equal(svg.match(/aria-roledescription="legend"/g)?.length, 1);
    assert.match(
      svg,
      /legend titled 'Defense' for shape, fill color and stroke color with 3 values: No Def, JPEG 23, VAE/,
    );
  });

  it("rasterises at the requested scale, with the text visible", async () => {
    const { svg, png } = await renderAccuracyPlot(TABLE4_LIKE, { ...options, width: 300, height: 200, scale: 1.5 });
    const [w, h] = svgSize(svg);
    const meta = await sharp(png).metadata();
    assert.equal(meta.format, "png");
    assert.equal(meta.width, Math.round(w * 1.5));
    assert.equal(meta.height, Math.round(h * 1.5));
    // Without a usable font librsvg drops every label silently: compare with a text-free copy.
    const bare = await rasteriseSvg(svg.replace(/<text[^>]*>[^<]*<\/text>/g, ""), 1.5);
    assert.ok((await differingBytes(png, bare)) > 2000, "labels leave ink in the PNG");
    assert.equal(await canRenderText(), true);
  });

  it("draws one panel per attack and error bars for a randomized defense", async () => {
    const rows = [
      ...TABLE4_LIKE.map((r) => ({ ...r, std: { VAE: 0.01 } })),
      ...TABLE4_LIKE.map((r) => ({ ...r, attack: "I-FGSM", relL2: r.relL2 * 0.7 })),
    ];
    const spec = accuracyPlotSpec(rows, { title: "MNIST" }) as { facet?: unknown; spec?: { layer: unknown[] } };
    assert.ok(spec.facet);
    assert.equal(spec.spec?.layer.length, 3);
    const texts = textContents((await renderAccuracyPlot(rows, { title: "MNIST" })).svg);
    assert.ok(texts.includes("FGSM (gray-box)") && texts.includes("I-FGSM (gray-box)"));
  });

  it("rejects a missing title and unknown defenses", async () => {
    await assert.rejects(renderAccuracyPlot(TABLE4_LIKE, { title: "" }), {
      message: 'Expected non-empty string for title but received ""',
    });
    await assert.rejects(renderAccuracyPlot(TABLE4_LIKE, { title: "t", defenses: ["JPEG 10"] }), /for defenses/);
  });
});

describe("writeAccuracyPlot", () => {
  it("writes the SVG and the PNG beside each other", async () => {
    const { svgPath, pngPath } = await writeAccuracyPlot(join(dir, "fgsm"), TABLE4_LIKE, { title: "FGSM" });
    assert.equal(svgPath, join(dir, "fgsm.svg"));
    assert.match(readFileSync(svgPath, "utf8"), /^<svg/);
    assert.deepEqual([...readFileSync(pngPath).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  });
});
