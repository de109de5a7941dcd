import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PAPER_TABLE_4 } from "../../src/eval/paper.js";
import {
  csvField,
  formatEpsilon,
  matchByRelL2,
  renderCsv,
  renderMarkdownTable,
  renderPaperComparison,
  renderTextTable,
} from "../../src/report/table.js";
import type { ResultRow } from "../../src/report/types.js";
import { ROWS, TABLE4_LIKE } from "./fixtures.js";

const row = (relL2: number, epsilon = relL2): ResultRow => ({
  attack: "FGSM",
  mode: "gray-box",
  epsilon,
  relL2,
  accuracy: { "No Def": 0.5 },
});

describe("renderTextTable", () => {
  it("right-aligns columns under a dashed rule", () => {
    assert.equal(
      renderTextTable(ROWS),
      [
        "epsilon  rel-L2  No Def            VAE",
        "-------  ------  ------  -------------",
        "      0   0.000   0.990          0.987",
        "    0.1   0.257   0.408  0.845 ± 0.004",
        "",
      ].join("\n"),
    );
  });

  it("follows the given defense order and digits", () => {
    const text = renderTextTable(ROWS, { defenses: ["VAE", "No Def"], digits: 2 });
    assert.equal(text.split("\n")[0], "epsilon  rel-L2          VAE  No Def");
    assert.equal(text.split("\n")[3], "    0.1    0.26  0.84 ± 0.00    0.41");
  });
});

describe("renderMarkdownTable", () => {
  it("renders exact Markdown", () => {
    assert.equal(
      renderMarkdownTable(ROWS),
      [
        "| epsilon | rel-L2 | No Def | VAE |",
        "| ---: | ---: | ---: | ---: |",
        "| 0 | 0.000 | 0.990 | 0.987 |",
        "| 0.1 | 0.257 | 0.408 | 0.845 ± 0.004 |",
        "",
      ].join("\n"),
    );
  });

  it("escapes pipes and marks missing values", () => {
    const rows: ResultRow[] = [
      { ...ROWS[0], accuracy: { "a|b": 0.5 } },
      { ...ROWS[1], accuracy: { VAE: 0.25 }, std: undefined },
    ];
    const lines = renderMarkdownTable(rows).split("\n");
    assert.equal(lines[0], "| epsilon | rel-L2 | a\\|b | VAE |");
    assert.equal(lines[2], "| 0 | 0.000 | 0.500 | - |");
    assert.equal(lines[3], "| 0.1 | 0.257 | - | 0.250 |");
  });

  it("rejects unknown defenses and invalid rows with the standard message", () => {
    assert.throws(() => renderMarkdownTable(ROWS, { defenses: ["JPEG"] }), {
      name: "ArgumentError",
      message: 'Expected one of "No Def", "VAE" for defenses but received "JPEG"',
    });
    assert.throws(() => renderMarkdownTable([{ ...ROWS[0], accuracy: { VAE: 1.2 } }]), {
      message: 'Expected number between 0 and 1 for rows[0].accuracy["VAE"] but received 1.2',
    });
    assert.throws(() => renderMarkdownTable([]), /Expected non-empty array of result rows for rows/);
  });
});

describe("renderCsv", () => {
  it("writes full precision, std columns last, CRLF line ends", () => {
    assert.equal(
      renderCsv(ROWS),
      "epsilon,rel-L2,No Def,VAE,VAE std\r\n0,0,0.99,0.987,\r\n0.1,0.2571,0.408,0.845,0.0042\r\n",
    );
  });

  it("quotes commas, quotes and line breaks (RFC 4180)", () => {
    const rows: ResultRow[] = [
      { attack: 'PGD "strong"', mode: "adaptive", epsilon: 0.3, relL2: 0.5, accuracy: { "JPEG, q=23": 0.1 } },
    ];
    assert.equal(
      renderCsv(rows, { includeAttack: true }),
      'attack,mode,epsilon,rel-L2,"JPEG, q=23"\r\n"PGD ""strong""",adaptive,0.3,0.5,0.1\r\n',
    );
    assert.equal(csvField("a\nb"), '"a\nb"');
    assert.equal(csvField("plain"), "plain");
    assert.equal(csvField(undefined), "");
  });
});

describe("formatEpsilon", () => {
  it("keeps short epsilons short and rounds long ones to 4 significant digits", () => {
    assert.equal(formatEpsilon(0.1), "0.1");
    assert.equal(formatEpsilon(8 / 255), "0.03137");
    assert.equal(formatEpsilon(0), "0");
  });
});

describe("matchByRelL2", () => {
  it("matches each paper row to our nearest rel-L2", () => {
    const ours = [row(0), row(0.05), row(0.12), row(0.3)];
    const m = matchByRelL2(ours, PAPER_TABLE_4.rows.slice(0, 3).concat(PAPER_TABLE_4.rows[5]));
    assert.deepEqual(
      m.map((x) => x.ours?.relL2),
      [0, 0.05, 0.12, 0.3],
    );
    assert.ok(Math.abs(m[3].distance - 0.043) < 1e-12);
  });

  it("leaves rows beyond maxDistance unmatched and breaks ties towards the earlier row", () => {
    const m = matchByRelL2(
      [row(0.1), row(0.2)],
      [
        { relL2: 0.15, accuracy: {} },
        { relL2: 0.5, accuracy: {} },
      ],
      0.1,
    );
    assert.equal(m[0].ours?.relL2, 0.1);
    assert.equal(m[1].ours, undefined);
  });
});

describe("renderPaperComparison", () => {
  it("puts ours beside the paper's Table 4, matched by rel-L2", () => {
    const lines = renderPaperComparison(TABLE4_LIKE, PAPER_TABLE_4).split("\n");
    assert.equal(
      lines[0],
      "| paper rel-L2 | ours rel-L2 | ours epsilon | No Def paper | No Def ours | JPEG 23 paper | JPEG 23 ours | VAE paper | VAE ours |",
    );
    assert.equal(lines[2], "| 0.011 | 0.012 | 0.02 | 0.988 | 0.988 | 0.988 | 0.988 | 0.987 | 0.987 |");
    assert.equal(lines[7], "| 0.257 | 0.180 | 0.15 | 0.408 | 0.780 | 0.505 | 0.850 | 0.845 | 0.930 |");
    assert.equal(lines.length, 2 + 6 + 1);
  });

  it("maps differently named defenses and honours maxDistance", () => {
    const ours = TABLE4_LIKE.map((r) => ({ ...r, accuracy: { none: r.accuracy["No Def"], vae: r.accuracy.VAE } }));
    const md = renderPaperComparison(ours, PAPER_TABLE_4, {
      pairs: [{ paper: "VAE", ours: "vae", label: "VAE (ours: vae)" }],
      maxDistance: 0.01,
    });
    const lines = md.split("\n");
    assert.equal(
      lines[0],
      "| paper rel-L2 | ours rel-L2 | ours epsilon | VAE (ours: vae) paper | VAE (ours: vae) ours |",
    );
    assert.equal(lines[7], "| 0.257 | - | - | 0.845 | - |");
    assert.throws(() => renderPaperComparison(ours, PAPER_TABLE_4), /at least one defense shared with the paper/);
  });

  it("refuses rows from several attacks", () => {
    const mixed = [...TABLE4_LIKE, { ...TABLE4_LIKE[1], attack: "I-FGSM" }];
    assert.throws(() => renderPaperComparison(mixed, PAPER_TABLE_4), /rows of a single attack and mode for ours/);
  });
});
