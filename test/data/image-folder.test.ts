/**
 * Image folders (the NIPS 2017 CSV layout and one folder per class): sizes,
 * labels, centre crops, colour handling, and every kind of bad file reported
 * by name without reading outside the folder.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { DataError } from "../../src/core/errors.js";
import { memory } from "../../src/core/engine.js";
import { indexImageFolder, parseCsv, readImageFolder } from "../../src/data/image-folder.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "vaeguard-imgfolder-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** An RGB image whose pixel (x, y) is colour(x, y). */
async function image(file: string, w: number, h: number, colour: (x: number, y: number) => [number, number, number]) {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(colour(x, y), (y * w + x) * 3);
  const img = sharp(data, { raw: { width: w, height: h, channels: 3 } });
  await (file.endsWith(".png") ? img.png() : img.jpeg({ quality: 95 })).toFile(file);
}

const solid = (c: [number, number, number]) => (): [number, number, number] => c;

/** Three vertical bands, red | green | blue, each `band` pixels wide. */
const bands =
  (band: number) =>
  (x: number): [number, number, number] =>
    x < band ? [255, 0, 0] : x < 2 * band ? [0, 255, 0] : [0, 0, 255];

/** A NIPS-2017-style folder: dev_dataset.csv beside images/. */
async function nipsFolder(name: string): Promise<string> {
  const root = join(dir, name);
  mkdirSync(join(root, "images"), { recursive: true });
  await image(join(root, "images", "0a1b.png"), 30, 10, bands(10));
  await image(join(root, "images", "ff02.png"), 12, 12, solid([51, 102, 204]));
  await image(join(root, "images", "c3d4.jpg"), 16, 24, solid([128, 128, 128]));
  writeFileSync(
    join(root, "dev_dataset.csv"),
    "ImageId,URL,x1,y1,x2,y2,TrueLabel,TargetClass,Author\r\n" +
      '0a1b,https://example.org/a.jpg,0,0,1,1,306,157,"Doe, Jane"\r\n' +
      'ff02,https://example.org/b.jpg,0,0,1,1,1,1000,"Someone ""quoted"""\r\n' +
      "c3d4,https://example.org/c.jpg,0,0,1,1,512,12,X\r\n",
  );
  return root;
}

describe("parseCsv", () => {
  test("quotes, doubled quotes, commas and line breaks inside fields, CRLF", () => {
    const rows = parseCsv('\ufeffa,b\r\n"x, y","say ""hi"""\n"two\nlines",3\n\n');
    assert.deepEqual(
      rows.map((r) => r.fields),
      [
        ["a", "b"],
        ["x, y", 'say "hi"'],
        ["two\nlines", "3"],
      ],
    );
    assert.deepEqual(
      rows.map((r) => r.line),
      [1, 2, 3],
    );
  });
});

describe("readImageFolder: CSV layout", () => {
  test("reads images, labels, targets and ids; centre-crops the shorter side", async () => {
    const root = await nipsFolder("nips");
    const live = memory().numTensors;
    const d = await readImageFolder(root, { size: 10, kernel: "nearest" });
    try {
      assert.deepEqual(d.images.shape, [3, 3, 10, 10]);
      assert.equal(d.images.dtype, "float32");
      assert.equal(d.labels.dtype, "int64");
      assert.deepEqual(d.ids, ["0a1b", "ff02", "c3d4"]);
      assert.deepEqual(d.labels.toArray(), [306, 1, 512]);
      assert.deepEqual(d.targets?.toArray(), [157, 1000, 12]);
      assert.match(d.source, /CSV layout: 3 images in images\/, labels from column TrueLabel of dev_dataset\.csv/);
      assert.match(d.source, /centre-cropped to 10x10/);
      const v = d.images.toArray();
      const plane = 100;
      // 30x10 red|green|blue -> the centre 10x10 is pure green.
      assert.deepEqual([v[0], v[plane], v[2 * plane]], [0, 1, 0]);
      assert.ok(v.slice(0, 3 * plane).every((x, i) => x === (Math.floor(i / plane) === 1 ? 1 : 0)));
      // Solid colour survives resizing exactly.
      const o = 3 * plane;
      assert.deepEqual([v[o], v[o + plane], v[o + 2 * plane]], [51 / 255, 102 / 255, 204 / 255].map(Math.fround));
      assert.ok(v.every((x) => x >= 0 && x <= 1));
    } finally {
      d.images.dispose();
      d.labels.dispose();
      d.targets?.dispose();
    }
    assert.equal(memory().numTensors, live);
  });

  test("labelOffset, offset and limit", async () => {
    const root = join(dir, "nips");
    const d = await readImageFolder(root, { size: 4, labelOffset: -1, offset: 1, limit: 1 });
    assert.deepEqual(d.ids, ["ff02"]);
    assert.deepEqual(d.labels.toArray(), [0]);
    assert.deepEqual(d.targets?.toArray(), [999]);
    assert.deepEqual(d.images.shape, [1, 3, 4, 4]);
    d.images.dispose();
    d.labels.dispose();
    d.targets?.dispose();
  });

  test("the index keeps the other CSV columns", () => {
    const idx = indexImageFolder(join(dir, "nips"));
    assert.equal(idx.layout, "csv");
    assert.equal(idx.entries[0].extra?.Author, "Doe, Jane");
    assert.equal(idx.entries[1].extra?.Author, 'Someone "quoted"');
  });

  test("grayscale and transparent images become RGB (transparency on white)", async () => {
    const root = join(dir, "modes");
    mkdirSync(join(root, "images"), { recursive: true });
    await sharp(Buffer.alloc(36, 100), { raw: { width: 6, height: 6, channels: 1 } })
      .png()
      .toFile(join(root, "images", "gray.png"));
    await sharp({ create: { width: 6, height: 6, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
      .png()
      .toFile(join(root, "images", "clear.png"));
    writeFileSync(join(root, "images.csv"), "ImageId,TrueLabel\ngray,1\nclear,2\n");
    const d = await readImageFolder(root, { size: 6 });
    const v = d.images.toArray();
    const p = 36;
    assert.deepEqual([v[0], v[p], v[2 * p]], [100 / 255, 100 / 255, 100 / 255].map(Math.fround));
    assert.deepEqual([v[3 * p], v[4 * p], v[5 * p]], [1, 1, 1]);
    d.images.dispose();
    d.labels.dispose();
  });
});

describe("readImageFolder: class folders", () => {
  test("labels are the indices of the sorted folder names; nested files count", async () => {
    const root = join(dir, "classes");
    mkdirSync(join(root, "dog", "puppies"), { recursive: true });
    mkdirSync(join(root, "cat"), { recursive: true });
    await image(join(root, "dog", "b.jpg"), 8, 8, solid([0, 0, 255]));
    await image(join(root, "dog", "puppies", "c.png"), 8, 8, solid([0, 255, 0]));
    await image(join(root, "cat", "a.png"), 8, 8, solid([255, 0, 0]));
    writeFileSync(join(root, "cat", ".DS_Store"), "hidden files are passed over");
    const d = await readImageFolder(root, { size: 8 });
    assert.deepEqual(d.classes, ["cat", "dog"]);
    assert.deepEqual(d.ids, ["cat/a.png", "dog/b.jpg", "dog/puppies/c.png"]);
    assert.deepEqual(d.labels.toArray(), [0, 1, 1]);
    assert.match(d.source, /class-folders layout: 3 images in 2 classes/);
    d.images.dispose();
    d.labels.dispose();
  });
});

describe("bad files are reported by name", () => {
  const rejects = async (root: string, file: RegExp, message: RegExp, options = {}) => {
    await assert.rejects(readImageFolder(root, { size: 4, ...options }), (e: unknown) => {
      assert.ok(e instanceof DataError, `expected a DataError, got ${String(e)}`);
      assert.match(e.file, file);
      assert.match(e.message, message);
      return true;
    });
  };
  const fresh = async (name: string) => {
    const root = await nipsFolder(name);
    return root;
  };

  test("a file that is not an image", async () => {
    const root = await fresh("bad-ext");
    writeFileSync(join(root, "images", "notes.txt"), "hello");
    await rejects(root, /notes\.txt$/, /is not an image file/);
    const d = await readImageFolder(root, { size: 4, skipNonImages: true });
    assert.equal(d.ids.length, 3);
    d.images.dispose();
    d.labels.dispose();
    d.targets?.dispose();
    assert.deepEqual(indexImageFolder(root, { skipNonImages: true }).skipped, ["images/notes.txt"]);
  });

  test("a .png that is not a PNG", async () => {
    const root = await fresh("fake-png");
    writeFileSync(join(root, "images", "ff02.png"), "definitely not an image");
    await rejects(root, /ff02\.png$/, /is not a PNG or JPEG image/);
  });

  test("an image that cannot be decoded", async () => {
    const root = await fresh("truncated");
    const bytes = readFileSync(join(root, "images", "0a1b.png"));
    writeFileSync(join(root, "images", "0a1b.png"), bytes.subarray(0, 40));
    await rejects(root, /0a1b\.png$/, /cannot be decoded as an image/);
  });

  test("an image without a CSV row (missing label)", async () => {
    const root = await fresh("unlisted");
    await image(join(root, "images", "extra.png"), 4, 4, solid([1, 2, 3]));
    await rejects(root, /extra\.png$/, /has no row in .*missing label/);
    const idx = indexImageFolder(root, { ignoreUnlisted: true });
    assert.deepEqual(idx.skipped, ["images/extra.png"]);
  });

  test("a CSV row without a label names the image", async () => {
    const root = await fresh("no-label");
    writeFileSync(join(root, "dev_dataset.csv"), "ImageId,TrueLabel\n0a1b,3\nff02,\nc3d4,4\n");
    await rejects(root, /ff02\.png$/, /missing or non-integer label: TrueLabel is "" on line 3/);
  });

  test("a CSV row whose image is missing", async () => {
    const root = await fresh("missing-image");
    writeFileSync(join(root, "dev_dataset.csv"), "ImageId,TrueLabel\n0a1b,3\nff02,1\nc3d4,4\nabsent,5\n");
    await rejects(root, /dev_dataset\.csv$/, /line 5: no image file for ImageId 'absent'/);
  });

  test("a CSV without the needed columns", async () => {
    const root = await fresh("no-column");
    writeFileSync(join(root, "dev_dataset.csv"), "ImageId,Label\n0a1b,3\n");
    await rejects(root, /dev_dataset\.csv$/, /has no column 'TrueLabel'/);
  });

  test("CSV entries may not leave the images folder", async () => {
    const root = await fresh("escape-id");
    writeFileSync(join(dir, "secret.png"), readFileSync(join(root, "images", "ff02.png")));
    writeFileSync(join(root, "dev_dataset.csv"), "ImageId,TrueLabel\n../../secret.png,3\n");
    await rejects(root, /dev_dataset\.csv$/, /not a plain file name; entries may not leave the images folder/, {
      ignoreUnlisted: true,
    });
  });

  test("a symbolic link that leads outside the folder is refused; one inside is followed", async () => {
    const root = await fresh("links");
    symlinkSync(join(dir, "secret.png"), join(root, "images", "outside.png"));
    writeFileSync(join(root, "dev_dataset.csv"), "ImageId,TrueLabel\n0a1b,1\nff02,2\nc3d4,3\noutside,4\n");
    await rejects(root, /outside\.png$/, /leads outside the data folder/);
    rmSync(join(root, "images", "outside.png"));
    symlinkSync(join(root, "images", "ff02.png"), join(root, "images", "inside.png"));
    writeFileSync(join(root, "dev_dataset.csv"), "ImageId,TrueLabel\n0a1b,1\nff02,2\nc3d4,3\ninside,4\n");
    const d = await readImageFolder(root, { size: 4 });
    assert.deepEqual(d.ids, ["0a1b", "ff02", "c3d4", "inside"]);
    d.images.dispose();
    d.labels.dispose();
  });

  test("class folders: a stray file beside the class folders, and a linked folder", async () => {
    const root = join(dir, "classes-bad");
    mkdirSync(join(root, "a"), { recursive: true });
    await image(join(root, "a", "x.png"), 4, 4, solid([9, 9, 9]));
    writeFileSync(join(root, "README"), "hi");
    await rejects(root, /README$/, /outside any class folder/);
    rmSync(join(root, "README"));
    symlinkSync(join(root, "a"), join(root, "b"));
    await rejects(root, /b$/, /symbolic link to a folder/);
  });

  test("a missing folder", async () => {
    await rejects(join(dir, "nope"), /nope$/, /data folder not found/);
  });
});
