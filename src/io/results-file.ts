/** Reading back the resumable results file of an evaluation (written with writeJsonAtomic). */
import { existsSync, readFileSync } from "node:fs";
import { VaeguardError } from "../core/errors.js";

/**
 * The parsed JSON of a resumable results file, or undefined when there is none yet. A file
 * that is not JSON stops the run with one line rather than being overwritten.
 */
export function readResultsJson(path: string): unknown {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw new VaeguardError(`${path}: the results file is not valid JSON; delete it or pass --restart`);
  }
}
