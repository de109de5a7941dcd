/** Atomic writes: the target holds the old or the new content, never a part; no temporary file stays behind. */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFileAtomic, writeJsonAtomic } from "../../src/io/atomic.js";

const dir = mkdtempSync(join(tmpdir(), "vaeguard-atomic-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("writeFileAtomic", () => {
  test("writes text, bytes or chunks, creating missing folders, and replaces a file whole", () => {
    const file = join(dir, "a", "b", "out.txt");
    writeFileAtomic(file, "first");
    assert.equal(readFileSync(file, "utf8"), "first");
    writeFileAtomic(file, new Uint8Array([104, 105]));
    assert.equal(readFileSync(file, "utf8"), "hi");
    const big = new Uint8Array(3 * 1024 * 1024).fill(7);
    writeFileAtomic(file, [new Uint8Array([1, 2]), big, new Uint8Array([3])]);
    const back = readFileSync(file);
    assert.equal(back.length, big.length + 3);
    assert.deepEqual([back[0], back[1], back[2], back[back.length - 1]], [1, 2, 7, 3]);
    assert.deepEqual(readdirSync(join(dir, "a", "b")), ["out.txt"], "no temporary file left");
  });

  test("a failed write leaves the old content and no temporary file", () => {
    const folder = join(dir, "fail");
    mkdirSync(folder);
    // The target is a non-empty folder: the rename at the end fails after the data was written.
    const target = join(folder, "taken");
    mkdirSync(target);
    writeFileSync(join(target, "inside"), "old");
    assert.throws(() => writeFileAtomic(target, "new"), /EISDIR|ENOTEMPTY|EEXIST|EPERM/);
    assert.deepEqual(readdirSync(folder), ["taken"]);
    assert.equal(readFileSync(join(target, "inside"), "utf8"), "old");
    // A failure while writing the data: the temporary file is removed too.
    const file = join(folder, "data.bin");
    writeFileAtomic(file, "old");
    const failing = {
      get byteLength(): number {
        throw new Error("injected write failure");
      },
    } as unknown as Uint8Array;
    assert.throws(() => writeFileAtomic(file, [new Uint8Array([1]), failing]), /injected write failure/);
    assert.equal(readFileSync(file, "utf8"), "old");
    assert.deepEqual(readdirSync(folder).sort(), ["data.bin", "taken"]);
  });
});

describe("writeJsonAtomic", () => {
  test("pretty-printed JSON with a final newline", () => {
    const file = join(dir, "v.json");
    writeJsonAtomic(file, { a: [1, 2], b: "x" });
    const text = readFileSync(file, "utf8");
    assert.equal(text, '{\n  "a": [\n    1,\n    2\n  ],\n  "b": "x"\n}\n');
    assert.deepEqual(JSON.parse(text), { a: [1, 2], b: "x" });
  });
});
