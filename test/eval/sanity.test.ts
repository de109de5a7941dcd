import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { AttackMode, ResultRow } from "../../src/report/types.js";
import {
  attackKind,
  checkBlackBox,
  checkDecay,
  checkRandomized,
  renderFindings,
  renderModeComparison,
  sanityChecks,
} from "../../src/eval/sanity.js";

function row(attack: string, mode: AttackMode, epsilon: number, accuracy: Record<string, number>): ResultRow {
  return { attack, mode, epsilon, relL2: epsilon * 2, accuracy };
}

/** PGD in adaptive mode: the undefended model falls to 0, "Masked" stays high. */
const ADAPTIVE_PGD = [
  row("PGD(40)", "adaptive", 0, { None: 0.99, Masked: 0.95, VAE: 0.9 }),
  row("PGD(40)", "adaptive", 0.1, { None: 0.2, Masked: 0.9, VAE: 0.5 }),
  row("PGD(40)", "adaptive", 0.3, { None: 0.0, Masked: 0.6, VAE: 0.45 }),
];

describe("attackKind", () => {
  test("infers the kind from the names attacks give themselves, or takes it from the map", () => {
    assert.equal(attackKind("PGD(40)x2"), "pgd");
    assert.equal(attackKind("PGD-L2(100), EOT 10"), "pgd-l2");
    assert.equal(attackKind("I-FGSM(10)"), "ifgsm");
    assert.equal(attackKind("FGSM"), "fgsm");
    assert.equal(attackKind("Square(1000)"), "square");
    assert.equal(attackKind("Mine"), undefined);
    assert.equal(attackKind("Mine", { Mine: "pgd" }), "pgd");
  });
});

describe("checkDecay (a)", () => {
  test("flags a defense above half its clean accuracy at the largest epsilon, and only that one", () => {
    const findings = checkDecay(ADAPTIVE_PGD);
    const warnings = findings.filter((f) => f.level === "warning");
    assert.deepEqual(
      warnings.map((f) => f.defense),
      ["Masked"],
    );
    assert.equal(warnings[0].epsilon, 0.3);
    assert.match(warnings[0].message, /PGD\(40\) \(adaptive\), Masked: accuracy 0\.600 at the largest epsilon 0\.3/);
    assert.match(warnings[0].message, /gradient may be masked or epsilon too small/);
    // VAE: 0.45 <= 0.5 * 0.9, a pass; None falls to zero.
    assert.deepEqual(
      findings.filter((f) => f.level === "info").map((f) => f.defense),
      ["None", "VAE"],
    );
  });

  test("the ratio is adjustable; the largest epsilon is found whatever the row order", () => {
    const shuffled = [ADAPTIVE_PGD[2], ADAPTIVE_PGD[0], ADAPTIVE_PGD[1]];
    const strict = checkDecay(shuffled, { ratio: 0.4 }).filter((f) => f.level === "warning");
    assert.deepEqual(
      strict.map((f) => f.defense),
      ["Masked", "VAE"],
    );
  });

  test("does not apply to gray-box rows, to FGSM or to the Square Attack", () => {
    const rows = [
      ...ADAPTIVE_PGD.map((r) => ({ ...r, mode: "gray-box" as const })),
      ...ADAPTIVE_PGD.map((r) => ({ ...r, attack: "FGSM" })),
      ...ADAPTIVE_PGD.map((r) => ({ ...r, attack: "Square(1000)" })),
    ];
    assert.deepEqual(checkDecay(rows), []);
  });

  test("without an epsilon-0 row it says the check could not run instead of guessing", () => {
    const f = checkDecay(ADAPTIVE_PGD.slice(1));
    assert.ok(f.every((x) => x.level === "info"));
    assert.match(f[0].message, /no epsilon-0 row/);
  });

  test("names with an EOT suffix and an explicit kind map", () => {
    const rows = ADAPTIVE_PGD.map((r) => ({ ...r, attack: "Strong" }));
    assert.deepEqual(checkDecay(rows), []);
    const warned = checkDecay(rows, { kinds: { Strong: "pgd" } }).filter((x) => x.level === "warning");
    assert.equal(warned.length, 1);
  });
});

describe("checkBlackBox (b)", () => {
  const rows = [
    row("FGSM", "adaptive", 0.1, { None: 0.3, JPEG: 0.8, VAE: 0.7 }),
    row("PGD(40)", "adaptive", 0.1, { None: 0.05, JPEG: 0.75, VAE: 0.6 }),
    row("Square(1000)", "adaptive", 0.1, { None: 0.2, JPEG: 0.4, VAE: 0.6 }),
    row("FGSM", "gray-box", 0.1, { None: 0.3, JPEG: 0.8, VAE: 0.7 }),
    row("Square(1000)", "gray-box", 0.1, { None: 0.4, JPEG: 0.85, VAE: 0.75 }),
    row("Square(1000)", "adaptive", 0, { None: 0.99, JPEG: 0.99, VAE: 0.9 }),
    row("PGD(40)", "adaptive", 0, { None: 0.99, JPEG: 0.99, VAE: 0.9 }),
  ];

  test("flags a defense where Square beats the best gradient attack, in that mode and epsilon only", () => {
    const f = checkBlackBox(rows);
    assert.equal(f.length, 1);
    assert.equal(f[0].defense, "JPEG");
    assert.equal(f[0].mode, "adaptive");
    assert.equal(f[0].epsilon, 0.1);
    assert.equal(f[0].attack, "Square(1000)");
    assert.match(
      f[0].message,
      /Square\(1000\) leaves accuracy 0\.400, lower than the best gradient attack PGD\(40\) \(0\.750\)/,
    );
    assert.match(f[0].message, /the gradient is masked for JPEG/);
  });

  test("a tie is not flagged; a margin absorbs small differences", () => {
    assert.ok(!checkBlackBox(rows).some((f) => f.defense === "VAE"));
    assert.deepEqual(checkBlackBox(rows, { margin: 0.4 }), []);
  });

  test("PGD-L2 is another norm and is not compared with the L-inf Square Attack", () => {
    const l2 = [row("PGD-L2(40)", "adaptive", 0.1, { None: 0.9 }), row("Square(1000)", "adaptive", 0.1, { None: 0.1 })];
    assert.deepEqual(checkBlackBox(l2), []);
  });
});

describe("checkRandomized (c)", () => {
  const rows = [row("FGSM", "adaptive", 0.1, { None: 0.3, VAE: 0.7 })];

  test("states the number of passes and the EOT samples of each randomized defense present", () => {
    const f = checkRandomized(rows, { randomized: ["VAE", "Absent"], passes: 5, eot: 10 });
    assert.equal(f.length, 1);
    assert.equal(f[0].level, "info");
    assert.match(f[0].message, /VAE is randomized: its accuracies are means over 5 forward passes/);
    assert.match(f[0].message, /10 EOT sample/);
  });

  test("warns when a randomized defense was scored on one pass", () => {
    const [f] = checkRandomized(rows, { randomized: ["VAE"], passes: 1 });
    assert.equal(f.level, "warning");
    assert.match(f.message, /single forward pass/);
  });
});

test("sanityChecks puts warnings first and renderFindings marks them", () => {
  const f = sanityChecks(ADAPTIVE_PGD, { randomized: ["VAE"], passes: 3 });
  assert.equal(f[0].level, "warning");
  assert.ok(f.slice(1).every((x) => x.level === "info"));
  const md = renderFindings(f);
  assert.match(md, /^- \*\*Warning:\*\* PGD\(40\)/);
  assert.match(md, /means over 3 forward passes/);
  assert.equal(renderFindings([]), "No sanity check applied to these rows.");
});

describe("renderModeComparison", () => {
  const rows = [
    row("PGD(40)", "gray-box", 0, { None: 0.99, VAE: 0.98 }),
    row("PGD(40)", "gray-box", 0.1, { None: 0.01, VAE: 0.9 }),
    row("PGD(40), EOT 10", "adaptive", 0, { None: 0.99, VAE: 0.97 }),
    row("PGD(40), EOT 10", "adaptive", 0.1, { None: 0.01, VAE: 0.12 }),
  ];

  test("one line per defense, cells gray-box / adaptive per epsilon", () => {
    const md = renderModeComparison(rows, [{ grayBox: "PGD(40)", adaptive: "PGD(40), EOT 10" }]);
    const lines = md.split("\n");
    assert.match(lines[0], /\*\*PGD\(40\)\*\* \(adaptive: PGD\(40\), EOT 10\): top-1 accuracy, gray-box \/ adaptive/);
    assert.ok(lines.includes("| Defense | ε=0 | ε=0.1 |"));
    assert.ok(lines.includes("| VAE | 0.980 / 0.970 | 0.900 / 0.120 |"));
    assert.ok(lines.includes("| None | 0.990 / 0.990 | 0.010 / 0.010 |"));
  });

  test("default pairs are attacks with the same name in both modes; nothing when one mode is missing", () => {
    const same = rows.map((r) => ({ ...r, attack: "FGSM" }));
    assert.match(renderModeComparison(same), /\*\*FGSM\*\*: top-1/);
    assert.equal(renderModeComparison(rows), "");
    assert.equal(renderModeComparison(rows.filter((r) => r.mode === "gray-box")), "");
  });
});
