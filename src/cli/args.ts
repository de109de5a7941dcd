/**
 * Parsers for commander option values: each checks with validate.ts's one
 * message template and turns a bad value into commander's usage error (exit 2).
 */
import { InvalidArgumentError } from "commander";
import { checkInt, checkNumber } from "../core/validate.js";
import { checkThreads } from "../core/threads.js";

/** Re-throw validate.ts's message (one template everywhere) as commander's usage error. */
function asUsage<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

export function parseIntArg(name: string, min?: number, max?: number) {
  return (v: string): number => asUsage(() => checkInt(/^-?\d+$/.test(v.trim()) ? Number(v) : v, name, min, max));
}

/** --threads: at most a few per core (core/threads.ts), with the bound explained in the message. */
export function parseThreadsArg() {
  return (v: string): number => asUsage(() => checkThreads(/^-?\d+$/.test(v.trim()) ? Number(v) : v, "--threads"));
}

export function parseNumberArg(name: string, min?: number, max?: number) {
  return (v: string): number =>
    asUsage(() => checkNumber(v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : v, name, min, max));
}

export function parseListArg<T>(parse: (s: string) => T) {
  return (v: string): T[] =>
    v
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
      .map(parse);
}
