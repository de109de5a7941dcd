/**
 * The NIPS 2017 split: a fixed rule on the sorted ImageIds that puts every
 * image in exactly one half, does not depend on the CSV's order, and is
 * checked on indexing (labels in 0..1000).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { DataError } from "../../src/core/errors.js";
import { indexNips2017, splitNips2017, NIPS2017_SPLIT_RULE } from "../../src/data/nips2017.js";
import type { ImageFolderEntry } from "../../src/data/image-folder.js";
import { loadImageFolderEntries } from "../../src/data/image-folder.js";

const entry = (id: string): ImageFolderEntry => ({ id, file: `/x/${id}.png`, label: 1 });

describe("splitNips2017", () => {
  test("even positions of the sorted ids evaluate, odd positions train", () => {
    const ids = ["d4", "a1", "c3", "b2", "e5"];
    const { evaluation, training } = splitNips2017(ids.map(entry));
    assert.deepEqual(
      evaluation.map((e) => e.id),
      ["a1", "c3", "e5"],
    );
    assert.deepEqual(
      training.map((e) => e.id),
      ["b2", "d4"],
    );
  });

  test("the halves are disjoint, cover everything, and do not depend on the input order", () => {
    const ids = Array.from({ length: 101 }, (_, i) => ((i * 2654435761) >>> 0).toString(16).padStart(8, "0"));
    const a = splitNips2017(ids.map(entry));
    const b = splitNips2017([...ids].reverse().map(entry));
    assert.deepEqual(a, b);
    const ev = new Set(a.evaluation.map((e) => e.id));
    assert.ok(a.training.every((e) => !ev.has(e.id)));
    assert.equal(a.evaluation.length + a.training.length, 101);
    assert.equal(a.evaluation.length, 51);
  });
});

describe("indexNips2017", () => {
  let dir: string;
  const png = (file: string, size: number) =>
    sharp({ create: { width: size, height: size, channels: 3, background: { r: 10, g: 200, b: 90 } } })
      .png()
      .toFile(file);
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "vaeguard-nips-"));
    mkdirSync(join(dir, "good", "images"), { recursive: true });
    mkdirSync(join(dir, "badlabel", "images"), { recursive: true });
    mkdirSync(join(dir, "badsize", "images"), { recursive: true });
    for (const id of ["aa", "bb", "cc", "dd"]) {
      await png(join(dir, "good", "images", `${id}.png`), 299);
      await png(join(dir, "badlabel", "images", `${id}.png`), 299);
      await png(join(dir, "badsize", "images", `${id}.png`), id === "cc" ? 300 : 299);
    }
    const csv = (labels: number[]) =>
      ["ImageId,URL,TrueLabel,TargetClass", ...["aa", "bb", "cc", "dd"].map((id, i) => `${id},u,${labels[i]},5`)].join(
        "\n",
      );
    writeFileSync(join(dir, "good", "dev_dataset.csv"), csv([1, 2, 3, 1000]));
    writeFileSync(join(dir, "badlabel", "dev_dataset.csv"), csv([1, 2, 1001, 4]));
    writeFileSync(join(dir, "badsize", "dev_dataset.csv"), csv([1, 2, 3, 4]));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("splits the folder and names the rule", () => {
    const s = indexNips2017(join(dir, "good"));
    assert.equal(s.rule, NIPS2017_SPLIT_RULE);
    assert.deepEqual(
      s.evaluation.map((e) => [e.id, e.label]),
      [
        ["aa", 1],
        ["cc", 3],
      ],
    );
    assert.deepEqual(
      s.training.map((e) => e.id),
      ["bb", "dd"],
    );
    assert.match(s.description, /2 evaluation, 2 training/);
  });

  test("a label outside the 1001 classes is an error naming the CSV and the image", () => {
    assert.throws(
      () => indexNips2017(join(dir, "badlabel")),
      (e: unknown) => e instanceof DataError && /dev_dataset\.csv: TrueLabel 1001 of image cc/.test(e.message),
    );
  });

  test("an image of another size is an error naming the file, not a silent resize", async () => {
    const s = indexNips2017(join(dir, "badsize"));
    await assert.rejects(
      loadImageFolderEntries(s.index, s.index.entries, { size: 299, exactSize: true }),
      (e: unknown) => e instanceof DataError && /cc\.png: is 300x300 pixels; expected 299x299/.test(e.message),
    );
  });

  test("a CSV without TrueLabel is an error naming the missing column", () => {
    writeFileSync(join(dir, "good", "dev_dataset.csv"), "ImageId,URL\naa,u\nbb,u\ncc,u\ndd,u\n");
    assert.throws(
      () => indexNips2017(join(dir, "good")),
      (e: unknown) => e instanceof DataError && /has no column 'TrueLabel'/.test(e.message),
    );
  });
});
