/**
 * Atomic file writes: write a temporary file beside the target, fsync, rename.
 *
 * The temporary file is named `.<target name>.<pid>.<milliseconds>.tmp`. A
 * process killed during a write leaves it behind; the next write of the same
 * target (or removeOrphanedTemps) deletes those whose process is gone. Only
 * files of exactly this pattern, next to the target, are ever removed.
 */
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, basename, join } from "node:path";
import { makeDirs } from "./preflight.js";
import { PathError } from "../core/errors.js";

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
}

function processIsAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Remove temporary files of earlier, killed writes of `path`; returns the names removed. */
export function removeOrphanedTemps(path: string): string[] {
  const pattern = new RegExp(`^\\.${escapeRegExp(basename(path))}\\.(\\d+)\\.\\d+\\.tmp$`);
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = pattern.exec(name);
    if (m === null || processIsAlive(Number(m[1]))) continue;
    try {
      rmSync(join(dirname(path), name), { force: true });
      removed.push(name);
    } catch {
      // Not ours to remove after all (permissions): leave it.
    }
  }
  return removed;
}

export function writeFileAtomic(path: string, data: string | Uint8Array | Uint8Array[]): void {
  makeDirs(dirname(path));
  removeOrphanedTemps(path);
  const tmp = tempName(path);
  const fd = openSync(tmp, "w");
  try {
    const parts = Array.isArray(data) ? data : [typeof data === "string" ? Buffer.from(data, "utf8") : data];
    for (const p of parts) {
      let off = 0;
      while (off < p.byteLength) {
        const n = writeSync(fd, p, off, p.byteLength - off);
        // A special file that accepts nothing (under /proc) would otherwise loop forever.
        if (n <= 0) throw new PathError(path, "cannot write here: the file system accepted no bytes");
        off += n;
      }
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  // Persist the rename itself.
  try {
    const dfd = openSync(dirname(path), "r");
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // Some file systems do not allow fsync on directories; the data is already synced.
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}
