/** WordNet-id lists and class-name files: parsing and the errors that name the file and line. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataError } from "../../src/core/errors.js";
import { labelMapFromWnids, loadClassNames, loadWnidsLabelMap, parseWnids } from "../../src/models/label-map.js";

test("wnids: one id per line, trailing blank lines ignored; bad lines and duplicates named", () => {
  assert.deepEqual(parseWnids("n01440764\nn01443537\r\n\n", "w.txt"), ["n01440764", "n01443537"]);
  assert.throws(
    () => parseWnids("n01440764\ngoldfish\n", "w.txt"),
    /w\.txt: line 2 is "goldfish"; expected a WordNet id/,
  );
  assert.throws(
    () => parseWnids("n01440764\nn01440764\n", "w.txt"),
    /w\.txt: WordNet id n01440764 appears on lines 1 and 2/,
  );
  assert.throws(
    () => labelMapFromWnids(["n01440764"], "w.txt"),
    /w\.txt: lists 1 WordNet ids; an ImageNet classifier has 1000/,
  );
});

test("files: a wnids list and a class-name file with the wrong number of lines", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-labels-"));
  try {
    const ids = Array.from({ length: 1000 }, (_, i) => `n${String(1000000 + ((i * 37) % 1000)).padStart(8, "0")}`);
    writeFileSync(join(dir, "wnids.txt"), ids.join("\n") + "\n");
    const map = loadWnidsLabelMap(join(dir, "wnids.txt"));
    assert.equal(map.inputClasses, 1000);
    assert.equal(new Set(map.source).size, 1001);
    writeFileSync(join(dir, "names.txt"), "background\ntench\ngoldfish\n");
    assert.deepEqual(loadClassNames(join(dir, "names.txt"), 3), ["background", "tench", "goldfish"]);
    assert.throws(
      () => loadClassNames(join(dir, "names.txt"), 1001),
      (e: unknown) =>
        e instanceof DataError &&
        /names\.txt: has 3 lines but the classifier has 1001 classes/.test((e as Error).message),
    );
    assert.throws(() => loadWnidsLabelMap(join(dir, "missing.txt")), /missing\.txt: file not found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
