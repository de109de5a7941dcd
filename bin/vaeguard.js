#!/usr/bin/env node
// Loading can fail before the CLI's own error handling exists (the addon not
// built, libtorch missing): one line, exit code 1, the stack only with --debug.
import("../dist/src/cli/main.js").catch((e) => {
  process.stderr.write(`vaeguard: error: ${String(e?.message ?? e).split("\n")[0]}\n`);
  if (process.argv.includes("--debug") && e?.stack) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
