/**
 * Downloads for the explicit fetch commands (the only code that uses the
 * network): one file to a path, streamed into a temporary file beside it and
 * renamed into place only after its SHA-256 (when given) matches, so a failed
 * or damaged download never leaves a half-written file. On a machine without
 * internet access the error is one line that names the URL.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, mkdirSync, renameSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DataError } from "../core/errors.js";

export interface DownloadOptions {
  /** Expected SHA-256 (hex) of the file; checked before the file is put in place. */
  sha256?: string;
  /** Seconds to wait for the server to answer (default 30). */
  timeoutSeconds?: number;
  onProgress?: (received: number, total: number | undefined) => void;
  /** Appended to every error message: what the user can do by hand. */
  help?: string;
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const h = createHash("sha256");
    createReadStream(path)
      .on("data", (c) => h.update(c))
      .on("end", () => resolvePromise(h.digest("hex")))
      .on("error", reject);
  });
}

/** Why a fetch() failed, in a few words (the system error code when there is one). */
export function networkFailure(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (e as Error).message;
}

/** Download `url` to `target` (atomically); returns the file's SHA-256. */
export async function downloadFile(url: string, target: string, o: DownloadOptions = {}): Promise<string> {
  const help = o.help ? ` ${o.help}` : "";
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout((o.timeoutSeconds ?? 30) * 1000) });
  } catch (e) {
    throw new DataError(
      url,
      `cannot be reached from this machine (${networkFailure(e)}); it may have no internet access.${help}`,
    );
  }
  if (!res.ok || !res.body) throw new DataError(url, `the server answered ${res.status} ${res.statusText}.${help}`);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.download`);
  try {
    const total = Number(res.headers.get("content-length")) || undefined;
    let received = 0;
    const body = Readable.fromWeb(res.body as import("node:stream/web").ReadableStream);
    body.on("data", (c: Buffer) => {
      received += c.length;
      o.onProgress?.(received, total);
    });
    try {
      await pipeline(body, createWriteStream(tmp));
    } catch (e) {
      throw new DataError(url, `the download broke off (${networkFailure(e)}).${help}`);
    }
    const sum = await sha256File(tmp);
    if (o.sha256 && sum !== o.sha256) {
      throw new DataError(
        url,
        `SHA-256 ${sum} does not match the expected ${o.sha256}: the file is damaged or another file.${help}`,
      );
    }
    renameSync(tmp, target);
    return sum;
  } finally {
    rmSync(tmp, { force: true });
  }
}
