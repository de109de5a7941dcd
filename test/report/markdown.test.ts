import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import sharp from "sharp";
import { reportSoftwareVersions, writeReportBundle } from "../../src/report/bundle.js";
import { renderMarkdownReport, writeMarkdownReport, type ReportInput } from "../../src/report/markdown.js";
import { PAPER_TABLE_4 } from "../../src/eval/paper.js";
import { renderMarkdownTable } from "../../src/report/table.js";
import { METADATA, ROWS, TABLE4_LIKE } from "./fixtures.js";

const dir = mkdtempSync(join(tmpdir(), "vaeguard-md-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const ADAPTIVE = TABLE4_LIKE.slice(0, 2).map((r) => ({ ...r, attack: "PGD", mode: "adaptive" as const }));

const INPUT: ReportInput = {
  title: "VAE defense on MNIST",
  metadata: { ...METADATA, attackParams: { ...METADATA.attackParams, PGD: { steps: 40, eotSamples: 10 } } },
  rows: [...TABLE4_LIKE, ...ADAPTIVE],
  plots: [
    { path: join(dir, "plots", "fgsm gray-box.png"), caption: "FGSM plot", attack: "FGSM" },
    { path: "overview.png", caption: "Everything" },
  ],
  grid: { path: "grid.png", caption: "Original, adversarial, reconstructed" },
  notes: "The VAE was trained for 10 epochs.",
  paperComparisons: [{ paper: PAPER_TABLE_4, attack: "FGSM" }],
};

describe("renderMarkdownReport", () => {
  const md = renderMarkdownReport(INPUT, { baseDir: dir });

  it("states every metadata field in 'What this is'", () => {
    const head = md.slice(md.indexOf("## What this is"), md.indexOf("## FGSM"));
    const m = INPUT.metadata;
    for (const text of [
      `**Data set:** ${m.dataset}`,
      `**Label source:** ${m.labelSource}`,
      `**Images evaluated:** ${m.samples}`,
      `**Seed:** ${m.seed}`,
      `**Created:** ${m.createdAt}`,
      `**Paper reference:** ${m.paperReference}`,
      "```sh\n" + m.command + "\n```",
      "**FGSM**, gray-box; steps: 1; EOT samples: 1; epsilons: 0, 0.02, 0.05, 0.1, 0.15; parameters: norm=Linf, clip=[0, 1]",
      "**PGD**, adaptive; steps: 40; EOT samples: 10; epsilons: 0, 0.02; parameters: defaults",
      "**Mode:** gray-box (the attacker differentiates through the classifier only",
      "; adaptive (the attacker attacks the defended model",
      "| Software | Version |",
    ]) {
      assert.ok(head.includes(text), `"What this is" contains ${JSON.stringify(text)}`);
    }
    for (const [name, version] of Object.entries(m.versions)) assert.ok(head.includes(`| ${name} | ${version} |`));
  });

  it("has one section per attack and mode with its table and plots", () => {
    assert.ok(md.startsWith("# VAE defense on MNIST\n\n## What this is\n"));
    assert.ok(md.includes(`## FGSM (gray-box)\n\nTop-1 accuracy (${METADATA.labelSource}) on 1000 images.`));
    assert.ok(md.includes(renderMarkdownTable(TABLE4_LIKE)));
    assert.ok(md.includes(`## PGD (adaptive)`));
    assert.ok(!md.includes("standard deviation"), "± is explained only where a std is shown");
    assert.ok(md.includes(renderMarkdownTable(ADAPTIVE)));
    // Absolute paths become relative links, escaped for Markdown.
    const fgsm = md.slice(md.indexOf("## FGSM"), md.indexOf("## PGD"));
    assert.ok(fgsm.includes("![FGSM plot](plots/fgsm%20gray-box.png)\n\n*FGSM plot*"));
    assert.ok(md.includes("## Plots\n\n![Everything](overview.png)"));
    assert.ok(md.includes("## Example images\n\n![Original, adversarial, reconstructed](grid.png)"));
  });

  it("ends with the paper comparison and the notes", () => {
    const cmp = md.slice(md.indexOf("## Comparison with the paper"), md.indexOf("## Notes"));
    assert.ok(cmp.includes("Our FGSM (gray-box) sweep against Luo & Pfister 2018, Table 4 (FGSM attack on MNIST)."));
    assert.ok(cmp.includes("| 0.257 | 0.180 | 0.15 | 0.408 | 0.780 | 0.505 | 0.850 | 0.845 | 0.930 |"));
    assert.ok(md.endsWith("## Notes\n\nThe VAE was trained for 10 epochs.\n"));
  });

  it("says 'not recorded' rather than guessing missing attack parameters", () => {
    const text = renderMarkdownReport({ title: "t", metadata: { ...METADATA, attackParams: {} }, rows: ROWS });
    assert.ok(text.includes("**FGSM**, gray-box; steps: not recorded; EOT samples: not recorded;"));
    assert.ok(text.includes("parameters: not recorded"));
    assert.ok(!text.includes("## Notes") && !text.includes("## Comparison"));
    assert.ok(
      text.includes("images. rel-L2 is the average relative L2 difference between clean and attacked images. ± is"),
    );
  });

  it("fences commands holding backticks safely", () => {
    const text = renderMarkdownReport({ title: "t", metadata: { ...METADATA, command: "echo ```x```" }, rows: ROWS });
    assert.ok(text.includes("````sh\necho ```x```\n````"));
  });

  it("rejects incomplete metadata and unknown comparisons", () => {
    const { dataset: _omitted, ...noDataset } = METADATA;
    assert.throws(() => renderMarkdownReport({ ...INPUT, metadata: noDataset as typeof METADATA }), {
      message: "Expected non-empty string for metadata.dataset but received undefined",
    });
    assert.throws(
      () => renderMarkdownReport({ ...INPUT, paperComparisons: [{ paper: PAPER_TABLE_4, attack: "CW" }] }),
      /an attack and mode present in the rows/,
    );
  });
});

describe("writeMarkdownReport", () => {
  it("writes the report with links relative to its folder", () => {
    const path = join(dir, "out", "report.md");
    const text = writeMarkdownReport(path, INPUT);
    assert.equal(readFileSync(path, "utf8"), text);
    assert.ok(text.includes("](../plots/fgsm%20gray-box.png)"));
  });
});

describe("writeReportBundle", () => {
  it("writes JSON, CSV, one plot per sweep, the grid and the report", async () => {
    const out = join(dir, "bundle");
    const image = { width: 28, height: 28, channels: 1 as const, data: new Float32Array(28 * 28).fill(0.5) };
    const versions: Record<string, string> = { ...reportSoftwareVersions(), vaeguard: "0.1.0" };
    const metadata = { ...INPUT.metadata, versions };
    const paths = await writeReportBundle(out, {
      ...INPUT,
      metadata,
      grid: { cells: [[{ image, caption: "pred 7" }]], caption: "Examples" },
    });
    assert.deepEqual(readdirSync(out).sort(), [
      "grid.png",
      "plot-fgsm-gray-box.png",
      "plot-fgsm-gray-box.svg",
      "plot-pgd-adaptive.png",
      "plot-pgd-adaptive.svg",
      "report.md",
      "results.csv",
      "results.json",
    ]);
    assert.deepEqual(JSON.parse(readFileSync(paths.json, "utf8")), { metadata, rows: INPUT.rows });
    assert.ok(
      readFileSync(paths.csv, "utf8").startsWith("attack,mode,epsilon,rel-L2,No Def,JPEG 23,VAE\r\nFGSM,gray-box,0,"),
    );
    const report = readFileSync(paths.report, "utf8");
    assert.ok(
      report.includes(
        "![Top-1 accuracy against average relative L2 difference: PGD (adaptive) on MNIST test set.](plot-pgd-adaptive.png)",
      ),
    );
    assert.ok(report.includes("![Examples](grid.png)"));
    assert.ok(report.includes(`| vega-lite | ${versions["vega-lite"]} |`));
    assert.equal((await sharp(paths.plots[0]).metadata()).format, "png");
  });
});
