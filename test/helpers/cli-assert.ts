/** The command-line tests' check of bad input: exit code 2 and one clear line. */
import assert from "node:assert/strict";
import type { SpawnSyncReturns } from "node:child_process";

/** Exit code 2, a stderr line matching `pattern`, and no stack trace. */
export function assertUsageError(r: SpawnSyncReturns<string>, pattern: RegExp): void {
  assert.equal(r.status, 2, r.stderr);
  assert.ok(
    r.stderr
      .trim()
      .split("\n")
      .some((l) => pattern.test(l)),
    r.stderr,
  );
  assert.ok(!/at .*\.js:\d+/.test(r.stderr), `no stack trace: ${r.stderr}`);
}
