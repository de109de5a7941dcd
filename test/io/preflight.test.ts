import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeOrphanedTemps, writeFileAtomic } from "../../src/io/atomic.js";
import { checkReadableFile, checkWritableDir, checkWritableFile, makeDirs } from "../../src/io/preflight.js";
import { PathError } from "../../src/core/errors.js";

/** A pid that belonged to a process which has ended. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(r.stdout);
}

test("orphaned temporary files of killed writes are removed, and only those", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-atomic-"));
  try {
    const target = join(dir, "model.safetensors");
    const dead = deadPid();
    const orphan = `.model.safetensors.${dead}.1700000000000.tmp`;
    const live = `.model.safetensors.${process.pid}.1700000000001.tmp`; // a write of this very process
    const other = `.other.safetensors.${dead}.1700000000000.tmp`; // another target's
    const lookalike = `.model.safetensors.${dead}.tmp`; // not the pattern
    const user = "model.safetensors.tmp"; // the user's own file
    for (const n of [orphan, live, other, lookalike, user]) writeFileSync(join(dir, n), "x");
    writeFileAtomic(target, "new");
    assert.equal(readFileSync(target, "utf8"), "new");
    assert.deepEqual(readdirSync(dir).sort(), [live, other, lookalike, "model.safetensors", user].sort());
    assert.deepEqual(removeOrphanedTemps(join(dir, "other.safetensors")), [other]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("preflight: folders are made and probed, files checked, failures name the path in one line", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-preflight-"));
  try {
    const deep = join(dir, "a", "b", "c");
    assert.equal(checkWritableDir(deep, "the report"), deep);
    assert.deepEqual(readdirSync(deep), [], "the probe file is removed");
    const file = join(dir, "f");
    writeFileSync(file, "x");
    assert.equal(checkReadableFile(file, "the data"), file);
    assert.equal(checkWritableFile(join(dir, "new.safetensors"), "the checkpoint"), join(dir, "new.safetensors"));
    const bad: [() => unknown, RegExp][] = [
      [
        () => checkWritableDir(join(file, "x"), "the report"),
        /f\/x: cannot write the report here: a part of the path is a file, not a folder \(ENOTDIR\)$/,
      ],
      [
        () => checkWritableFile(dir, "the checkpoint"),
        /cannot write the checkpoint here: it exists and is not a regular file$/,
      ],
      [
        () => checkReadableFile(join(dir, "missing"), "the data"),
        /missing: cannot read the data: no such file or folder \(ENOENT\)$/,
      ],
      [() => checkReadableFile(dir, "the data"), /cannot read the data: it is not a regular file$/],
      // Node's own recursive mkdirSync loops forever here.
      [() => makeDirs("/proc/vaeguard-x/y"), /ENOENT/],
      [
        () => checkWritableDir("/sys/vaeguard-x", "the report"),
        /\/sys\/vaeguard-x: cannot write the report here: .* \((EPERM|EACCES|EROFS)\)$/,
      ],
    ];
    for (const [fn, message] of bad) assert.throws(fn, message);
    assert.throws(() => checkWritableDir(join(file, "x"), "r"), PathError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
