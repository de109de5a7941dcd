/** The report folder: JSON and CSV for machines, one plot per attack and mode, the grid, report.md linking them. */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { ArgumentError } from "../../src/core/errors.js";
import { reportSoftwareVersions, writeReportBundle } from "../../src/report/bundle.js";
import type { ResultRow } from "../../src/report/types.js";
import { METADATA, ROWS } from "./fixtures.js";

const dir = mkdtempSync(join(tmpdir(), "vaeguard-bundle-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const ADAPTIVE: ResultRow[] = ROWS.map((r) => ({ ...r, mode: "adaptive" }));
const pixel = (v: number) => ({ width: 2, height: 2, channels: 1 as const, data: new Float32Array(4).fill(v) });

describe("writeReportBundle", () => {
  test("writes every part and links them from report.md", async () => {
    const out = join(dir, "full");
    const paths = await writeReportBundle(out, {
      title: "Bundle test",
      metadata: METADATA,
      rows: [...ROWS, ...ADAPTIVE],
      defenses: ["No Def", "VAE"],
      grid: { cells: [[{ image: pixel(0.2), caption: "original" }, { image: pixel(0.8) }]], caption: "two images" },
      notes: "A note.",
    });
    assert.deepEqual(paths.plots.map((p) => p.slice(out.length + 1)).sort(), [
      "plot-fgsm-adaptive.png",
      "plot-fgsm-gray-box.png",
    ]);
    const files = readdirSync(out).sort();
    assert.deepEqual(files, [
      "grid.png",
      "plot-fgsm-adaptive.png",
      "plot-fgsm-adaptive.svg",
      "plot-fgsm-gray-box.png",
      "plot-fgsm-gray-box.svg",
      "report.md",
      "results.csv",
      "results.json",
    ]);
    const json = JSON.parse(readFileSync(paths.json, "utf8"));
    assert.deepEqual(json.metadata, METADATA);
    assert.equal(json.rows.length, 4);
    const csv = readFileSync(paths.csv, "utf8").trim().split("\n");
    assert.equal(csv.length, 5, "header and one line per row");
    assert.match(csv[0], /No Def/);
    const md = readFileSync(paths.report, "utf8");
    for (const link of ["plot-fgsm-gray-box.png", "plot-fgsm-adaptive.png", "grid.png"]) {
      assert.ok(md.includes(`](${link})`), `report.md links ${link}`);
    }
    assert.match(md, /# Bundle test/);
    assert.match(md, /A note\./);
    const meta = await sharp(paths.grid!).metadata();
    assert.equal(meta.format, "png");
  });

  test("invalid input is refused before anything is written", async () => {
    const out = join(dir, "bad");
    await assert.rejects(
      writeReportBundle(out, { title: "x", metadata: { ...METADATA, seed: 1.5 }, rows: ROWS }),
      (e: unknown) => e instanceof ArgumentError && /metadata\.seed/.test(String(e)),
    );
    await assert.rejects(
      writeReportBundle(out, { title: "x", metadata: METADATA, rows: [] }),
      (e: unknown) => e instanceof ArgumentError && /non-empty array of result rows/.test(String(e)),
    );
    assert.equal(existsSync(out), false);
  });

  test("the report's library versions are named", () => {
    const v = reportSoftwareVersions();
    for (const k of ["node", "vega", "vega-lite", "sharp", "libvips"])
      assert.ok(typeof v[k] === "string" && v[k] !== "", k);
  });
});
