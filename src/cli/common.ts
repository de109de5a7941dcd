/** Shared CLI plumbing: error handling, output, progress bars (argument parsers are in args.ts). */
import { Command } from "commander";
import cliProgress from "cli-progress";
import { VaeguardError, exitCodeOf } from "../core/errors.js";
import type { Progress, ProgressFactory } from "../core/progress.js";

/** A usage or input error: one clear line, exit code 2. */
export class UsageError extends VaeguardError {}

/** --debug anywhere on the command line (a program-wide option, see main.ts). */
export function debugRequested(argv: readonly string[] = process.argv): boolean {
  return argv.includes("--debug");
}

/**
 * The one line (or, with --debug, the stack trace) for an error, and its exit
 * code: 2 for what the user can fix, 1 for internal failures (errors.ts).
 */
export function reportError(e: unknown, debug = debugRequested()): 1 | 2 {
  const code = exitCodeOf(e);
  const err = e instanceof Error ? e : new Error(String(e));
  const firstLine = (s: string) => s.split("\n")[0];
  if (code === 2) {
    process.stderr.write(`vaeguard: error: ${firstLine(err.message)}\n`);
  } else {
    process.stderr.write(
      `vaeguard: internal error: ${err.name}: ${firstLine(err.message)}` +
        (debug ? "" : " (run again with --debug for the stack trace)") +
        "\n",
    );
  }
  if (debug && err.stack) process.stderr.write(err.stack + "\n");
  return code;
}

/** Run a command body; every error becomes one line on stderr and exit code 2 or 1. */
export async function runAction(fn: () => Promise<void> | void): Promise<void> {
  try {
    await fn();
  } catch (e) {
    process.exitCode = reportError(e);
  }
}

export type { Progress } from "../core/progress.js";

/** One bar's line: label, bar, count, rate, ETA and the custom fields. */
function barFormat(label: string, unit: string): string {
  return `${label} [{bar}] {percentage}% {value}/{total} ${unit} | {rate} ${unit}/s | ETA {eta_formatted} {info}`;
}

/** The rate since `t0` and the custom fields, as a bar's payload. */
function barPayload(done: number, t0: number, fields: Record<string, number | string>): { rate: string; info: string } {
  const rate = done / Math.max((Date.now() - t0) / 1000, 1e-3);
  const info = Object.entries(fields)
    .map(([k, v]) => `${k} ${typeof v === "number" ? v.toFixed(4) : v}`)
    .join(" ");
  return { rate: rate.toFixed(0), info };
}

/**
 * A progress bar (bar, rate, ETA and custom fields) on a terminal; plain
 * periodic lines otherwise, so logs stay readable.
 */
export function progress(label: string, total: number, unit = "it", quiet = false): Progress {
  if (quiet) return { update() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: barFormat(label, unit),
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    const t0 = Date.now();
    bar.start(total, 0, { rate: "0", info: "" });
    return {
      update(done, fields = {}) {
        bar.update(done, barPayload(done, t0, fields));
      },
      stop() {
        bar.stop();
      },
    };
  }
  const t0 = Date.now();
  let last = 0;
  return {
    update(done, fields = {}) {
      const now = Date.now();
      if (now - last < 10000 && done < total) return;
      last = now;
      const el = (now - t0) / 1000;
      const rate = done / Math.max(el, 1e-3);
      const eta = rate > 0 ? (total - done) / rate : 0;
      const info = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === "number" ? v.toFixed(4) : v}`)
        .join(" ");
      process.stderr.write(
        `${label}: ${done}/${total} ${unit} (${((100 * done) / total).toFixed(0)}%), ${rate.toFixed(0)} ${unit}/s, ETA ${eta.toFixed(0)} s ${info}\n`,
      );
    },
    stop() {},
  };
}

/** Progress bars (or plain lines off a terminal) for training and evaluation, none when quiet. */
export function progressBars(quiet = false): ProgressFactory {
  return (label, total, unit) => progress(label, total, unit, quiet);
}

/**
 * Output for jobs side by side (reproduce --jobs): on a terminal, one line per
 * bar, stacked (cli-progress's MultiBar), with log lines printed above the
 * stack; off a terminal (or quiet), the plain lines of `progress`, each of
 * which starts with its bar's label ("classifier epoch 2/4", "vae epoch 5/8").
 */
export function concurrentOutput(quiet = false): { progress: ProgressFactory; log: (line: string) => void } {
  const plain = (line: string) => void process.stderr.write(line + "\n");
  if (quiet || !process.stderr.isTTY) return { progress: progressBars(quiet), log: plain };
  let multi: cliProgress.MultiBar | undefined;
  let running = 0;
  const log = (line: string) => (multi ? multi.log(line + "\n") : plain(line));
  const progress: ProgressFactory = (label, total, unit) => {
    multi ??= new cliProgress.MultiBar(
      { stream: process.stderr, hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    const format = barFormat(label, unit);
    const bar = multi.create(total, 0, { rate: "0", info: "" }, { format });
    running++;
    const t0 = Date.now();
    let stopped = false;
    return {
      update(done, fields = {}) {
        bar.update(done, barPayload(done, t0, fields));
      },
      stop() {
        if (stopped) return;
        stopped = true;
        bar.stop();
        // The stack is drawn until its last bar stops; the next bar starts a new one below.
        if (--running === 0) {
          multi?.stop();
          multi = undefined;
        }
      },
    };
  };
  return { progress, log };
}

// Kept here too for the commands that import them from the CLI plumbing.
export { blasLibrary, softwareVersions } from "../core/versions.js";

export type { Command };
