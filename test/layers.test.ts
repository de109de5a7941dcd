/**
 * Imports point one way: core <- nn/io/data/optim <- models <- attacks <- defenses
 * <- train <- eval <- report <- serve/queue <- cli (report may read eval's
 * result types). A module may import its own layer and the layers before it.
 * train/ sits above attacks and defenses because adversarial training of a
 * purifier (train/purifier.ts) attacks the purifier in front of a classifier.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const LAYERS: Record<string, number> = {
  "binding.ts": 0,
  core: 0,
  nn: 1,
  io: 1,
  data: 1,
  optim: 1,
  models: 2,
  attacks: 3,
  defenses: 4,
  train: 5,
  eval: 6,
  report: 7,
  serve: 8,
  queue: 8,
  cli: 9,
  "index.ts": 10,
};

/**
 * Known exceptions, to be removed, not added to: none left. Evaluate and the
 * reproductions write their reports in a step the command calls
 * (report/run-report.ts, report/imagenet.ts), so eval/ never reaches report/.
 */
const KNOWN: readonly string[] = [];

// Compiled, this file is dist/test/layers.test.js; the sources stay in src/.
const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return name.endsWith(".ts") ? [p] : [];
  });
}

function layerOf(rel: string): number {
  const top = rel.split("/")[0];
  const layer = LAYERS[top];
  assert.ok(layer !== undefined, `src/${top} has no layer: add it to LAYERS in test/layers.test.ts`);
  return layer;
}

test("every import in src/ points to the same or an earlier layer", () => {
  const backwards: string[] = [];
  let imports = 0;
  for (const file of sources(SRC)) {
    const rel = relative(SRC, file);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:import|export)\s[^;]*?\sfrom\s+"(\.{1,2}\/[^"]+)"/g)) {
      imports++;
      const target = normalize(join(dirname(rel), m[1])).replace(/\.js$/, ".ts");
      if (layerOf(target) > layerOf(rel)) backwards.push(`${rel} -> ${target}`);
    }
  }
  assert.ok(imports > 300, `only ${imports} imports found: is the pattern still right?`);
  assert.deepEqual(backwards.sort(), [...KNOWN].sort());
});
