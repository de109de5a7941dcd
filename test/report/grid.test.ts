import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import sharp from "sharp";
import { gridLayout, renderImageGrid, sweepGridCells, writeImageGrid, type GridImage } from "../../src/report/grid.js";
import type { GridSample } from "../../src/eval/results.js";

const dir = mkdtempSync(join(tmpdir(), "vaeguard-grid-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function grey(width: number, height: number, value: (x: number, y: number) => number): GridImage {
  const data = new Float32Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = value(x, y);
  return { width, height, channels: 1, data };
}

async function pixels(png: Buffer) {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number) => [
    ...data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3),
  ];
  return { info, at, data };
}

describe("renderImageGrid", () => {
  const black = grey(28, 28, () => 0);
  const white = grey(28, 28, () => 1);
  const digit = grey(28, 28, (x, y) => (x > 10 && x < 18 && y > 4 && y < 24 ? 1 : 0));
  const cells = [
    [
      { image: digit, caption: "pred 7" },
      { image: black, caption: "pred 3\neps 0.1" },
    ],
    [
      { image: white, caption: "pred 7\nVAE" },
      { image: digit, caption: "pred 7\nJPEG 23" },
    ],
  ];

  it("lays MNIST-sized images out at 4x with room for two caption lines", async () => {
    // 28 px -> x4 = 112 px slots; 2 caption lines of 16 px + 4; gaps of 8 around and between.
    const layout = gridLayout(cells);
    assert.deepEqual([layout.slotWidth, layout.slotHeight, layout.captionHeight, layout.top], [112, 112, 36, 0]);
    const png = await renderImageGrid(cells);
    const meta = await sharp(png).metadata();
    assert.equal(meta.format, "png");
    assert.equal(meta.width, 2 * 112 + 3 * 8);
    assert.equal(meta.height, 2 * (112 + 36) + 3 * 8);
  });

  it("paints each image in its slot, nearest-neighbour upscaled", async () => {
    const { at } = await pixels(await renderImageGrid(cells));
    const slot = (c: number, r: number, x: number, y: number) => at(8 + c * 120 + x, 8 + r * 156 + y);
    assert.deepEqual(slot(1, 0, 56, 56), [0, 0, 0], "black image");
    assert.deepEqual(slot(0, 1, 56, 56), [255, 255, 255], "white image");
    assert.notDeepEqual(slot(1, 0, 56, 56), slot(0, 1, 56, 56));
    // Pixel (11, 5) of the digit is white and (10, 5) black: x4 blocks start exactly at 44 and end at 43.
    assert.deepEqual(slot(0, 0, 44, 20), [255, 255, 255]);
    assert.deepEqual(slot(0, 0, 47, 23), [255, 255, 255]);
    assert.deepEqual(slot(0, 0, 43, 20), [0, 0, 0]);
    assert.deepEqual(slot(0, 0, 44, 19), [0, 0, 0]);
  });

  it("keeps RGB channels in CHW order", async () => {
    const red: GridImage = { width: 1, height: 1, channels: 3, data: new Float32Array([1, 0, 0.5]) };
    const { at } = await pixels(await renderImageGrid([[{ image: red }]], { minSize: 10 }));
    assert.deepEqual(at(8 + 5, 8 + 5), [255, 0, 128]);
  });

  it("draws captions, column headers and a title as text", async () => {
    const plain = [[{ image: black }, { image: black }]];
    const captioned = [
      [
        { image: black, caption: "pred 3" },
        { image: black, caption: "pred 8" },
      ],
    ];
    const headers = { columnHeaders: ["original", "adversarial"], title: "Figure 1" };
    const a = await pixels(await renderImageGrid(captioned));
    const b = await pixels(
      await renderImageGrid([
        [
          { image: black, caption: " " },
          { image: black, caption: " " },
        ],
      ]),
    );
    assert.deepEqual([a.info.width, a.info.height], [b.info.width, b.info.height]);
    let dark = 0;
    for (let y = 8 + 112; y < a.info.height; y++)
      for (let x = 0; x < a.info.width; x++) if (a.at(x, y)[0] < 128) dark++;
    assert.ok(dark > 30, `caption text leaves ink (${dark} dark pixels)`);
    assert.ok(
      b.data.subarray(b.info.channels * b.info.width * (8 + 112)).every((v) => v === 255),
      "blank captions stay white",
    );
    const withHeaders = gridLayout(plain, headers);
    assert.ok(withHeaders.top > 0);
    const meta = await sharp(await renderImageGrid(plain, headers)).metadata();
    assert.equal(meta.height, withHeaders.height);
    assert.equal(meta.height, gridLayout(plain).height + withHeaders.top);
  });

  it("widens slots for long captions and leaves null cells empty", async () => {
    const layout = gridLayout([[{ image: black, caption: "a very long caption for one image" }], [{ image: null }]]);
    assert.ok(layout.slotWidth > 112);
    assert.equal(layout.columns, 1);
  });

  it("rejects malformed images with the standard message", async () => {
    const bad: GridImage = { width: 2, height: 2, channels: 1, data: new Float32Array(3) };
    await assert.rejects(renderImageGrid([[{ image: bad }]]), {
      name: "ArgumentError",
      message: "Expected Float32Array of length 4 for cells[0][0].image.data but received 3",
    });
    await assert.rejects(renderImageGrid([[{ image: { ...bad, channels: 2 as 1 } }]]), /Expected 1 or 3/);
    await assert.rejects(renderImageGrid([]), /non-empty array of rows of cells/);
  });
});

describe("writeImageGrid", () => {
  it("writes a PNG file", async () => {
    const path = join(dir, "grid.png");
    await writeImageGrid(path, [[{ image: grey(32, 32, () => 0.5), caption: "cat" }]]);
    const meta = await sharp(path).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["png", 96 + 16, 96 + 16 + 20]);
  });
});

describe("sweepGridCells", () => {
  const px = (v: number) => Float32Array.from([v, v, v, v]);
  const sample: GridSample = {
    epsilon: 0.1,
    attack: "FGSM",
    shape: [1, 2, 2],
    original: [{ data: px(0.5), label: 1, prediction: 1 }],
    adversarial: [{ data: px(0.6), prediction: 0 }],
    defended: { "No defense": [{ data: px(0.6), prediction: 0 }], VAE: [{ data: px(0.4), prediction: 1 }] },
  };
  const names = ["zero", "one"];

  it("one row per image: original, adversarial, then the chosen defenses, captions with class names", () => {
    const rows = sweepGridCells(sample, names, ["VAE"]);
    assert.equal(rows.length, 1);
    assert.deepEqual(
      rows[0].map((c) => c.caption),
      ["original\ntrue one, pred one", "FGSM eps 0.1\npred zero", "VAE\npred one"],
    );
    assert.deepEqual(rows[0][2].image, { width: 2, height: 2, channels: 1, data: px(0.4) });
  });

  it("without true labels the original shows only the clean prediction", () => {
    const rows = sweepGridCells(sample, names, ["No defense", "VAE"], { trueLabels: false });
    assert.equal(rows[0][0].caption, "original\nclean pred one");
    assert.equal(rows[0].length, 4);
  });
});
