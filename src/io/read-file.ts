/** Reading a whole file with an error that names it, in the caller's error class. */
import { readFileSync } from "node:fs";

/**
 * Read `path`, turning a file-system failure into `makeError(message)` so that
 * checkpoint code raises CheckpointError and data code raises DataError.
 */
export function readFileOr(path: string, makeError: (message: string, cause: unknown) => Error): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const message =
      code === "ENOENT"
        ? "file not found"
        : code === "EISDIR"
          ? "is a folder, not a file"
          : `cannot read the file (${code ?? (e as Error).message})`;
    throw makeError(message, e);
  }
}
