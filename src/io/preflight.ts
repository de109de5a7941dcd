/**
 * Checks made before any work starts: an output folder is created and probed
 * with a real write, an output file's folder likewise, an input file opened.
 * A run that would fail at its last step (writing the report after an hour of
 * training) fails in its first second instead, with one line.
 */
import { closeSync, mkdirSync, openSync, readSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname, parse, resolve } from "node:path";
import { PathError } from "../core/errors.js";

const REASONS: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOTDIR: "a part of the path is a file, not a folder",
  ENOENT: "no such file or folder",
  ENOSPC: "no space left on the device",
  EISDIR: "is a folder, not a file",
  EEXIST: "exists and is not a folder",
  ELOOP: "too many symbolic links",
  ENAMETOOLONG: "name too long",
  EDQUOT: "disk quota exceeded",
};

/** "permission denied (EACCES)" from a Node system error. */
export function reason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === undefined) return String((e as Error)?.message ?? e);
  return `${REASONS[code] ?? "system error"} (${code})`;
}

/**
 * mkdir -p, one component at a time. Node 20's recursive mkdirSync loops
 * forever on some paths (`/proc/x`); this fails on the first component that
 * cannot be made.
 */
export function makeDirs(dir: string): void {
  const full = resolve(dir);
  const missing: string[] = [];
  let cur = full;
  while (true) {
    let st;
    try {
      st = statSync(cur);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      missing.push(cur);
      if (cur === parse(cur).root) break;
      cur = dirname(cur);
      continue;
    }
    if (!st.isDirectory()) throw new PathError(cur, "is a file, not a folder");
    break;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || !statSync(d).isDirectory()) throw e;
    }
  }
}

/** Create `dir` when missing and prove that a file can be written in it. */
export function checkWritableDir(dir: string, what: string): string {
  const full = resolve(dir);
  try {
    makeDirs(full);
    const probe = resolve(full, `.vaeguard-probe.${process.pid}.tmp`);
    const fd = openSync(probe, "w");
    try {
      writeSync(fd, "probe");
    } finally {
      closeSync(fd);
      rmSync(probe, { force: true });
    }
  } catch (e) {
    if (e instanceof PathError)
      throw new PathError(e.path, `cannot write ${what} here: ${e.message.slice(e.path.length + 2)}`);
    throw new PathError(full, `cannot write ${what} here: ${reason(e)}`, { cause: e });
  }
  return full;
}

/** The folder of `file` is writable, and `file`, when it exists, is a regular file. */
export function checkWritableFile(file: string, what: string): string {
  const full = resolve(file);
  checkWritableDir(dirname(full), what);
  let isFile = true;
  try {
    isFile = statSync(full).isFile();
  } catch {
    // does not exist yet: fine
  }
  if (!isFile) throw new PathError(full, `cannot write ${what} here: it exists and is not a regular file`);
  return full;
}

/** Open `file` and read its first byte: it exists, is a regular file and is readable. */
export function checkReadableFile(file: string, what: string): string {
  const full = resolve(file);
  try {
    if (!statSync(full).isFile()) throw new PathError(full, `cannot read ${what}: it is not a regular file`);
    const fd = openSync(full, "r");
    try {
      readSync(fd, Buffer.alloc(1), 0, 1, 0);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if (e instanceof PathError) throw e;
    throw new PathError(full, `cannot read ${what}: ${reason(e)}`, { cause: e });
  }
  return full;
}
