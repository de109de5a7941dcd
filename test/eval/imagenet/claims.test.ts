/**
 * The paper's claims about Tables 6 and 7, checked on synthetic results where
 * the answer is known, with the paired sign test behind every comparison.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { checkClaims, cleanAcceptance, signTestP } from "../../../src/eval/imagenet/claims.js";
import type { ResultRow } from "../../../src/eval/results.js";

describe("signTestP", () => {
  test("exact two-sided binomial tail", () => {
    assert.equal(signTestP(0, 0), 1);
    assert.ok(Math.abs(signTestP(0, 5) - 2 / 32) < 1e-12);
    assert.ok(Math.abs(signTestP(5, 5) - 2 / 32) < 1e-12);
    assert.equal(signTestP(5, 10), 1);
    // P(X <= 1) for n = 10: 11/1024, two-sided.
    assert.ok(Math.abs(signTestP(1, 10) - 22 / 1024) < 1e-12);
  });
});

const columns = [
  "No defense",
  "JPEG 10",
  "JPEG 23",
  "VAE 16x16 s16",
  "VAE 32x32 s32",
  "VAE 64x64 s32",
  "VAE 64x64 s64",
  "Ensemble",
];
/** Table points as (attack, epsilon); the clean point heads both tables. */
const points = [
  { attack: "clean", epsilon: 0 },
  { attack: "fgsm", epsilon: 0.005 },
  { attack: "fgsm", epsilon: 0.09 },
  { attack: "ifgsm", epsilon: 0.005 },
  { attack: "ifgsm", epsilon: 0.09 },
];
const keyOf = (p: { attack: string; epsilon: number }) => (p.attack === "clean" ? "clean" : `${p.attack}@${p.epsilon}`);

/**
 * Ten images, all labelled 1; `right[c]` = how many of them (the first ones)
 * column c gets right at that point: the rows (FGSM then I-FGSM, each from
 * the clean point) and each row's per-image predictions, as the sweep gives them.
 */
function table(byPoint: Record<string, number[]>, l2: Record<string, number>) {
  const rows: ResultRow[] = [];
  const predictions: Record<string, number[]>[] = [];
  for (const [attack, title] of [
    ["fgsm", "FGSM"],
    ["ifgsm", "I-FGSM"],
  ]) {
    for (const p of points.filter((q) => q.attack === "clean" || q.attack === attack)) {
      const right = byPoint[keyOf(p)];
      rows.push({
        attack: title,
        mode: "gray-box",
        epsilon: p.epsilon,
        relL2: l2[keyOf(p)],
        accuracy: Object.fromEntries(columns.map((c, j) => [c, right[j] / 10])),
      });
      predictions.push(
        Object.fromEntries(columns.map((c, j) => [c, Array.from({ length: 10 }, (_, i) => (i < right[j] ? 1 : 0))])),
      );
    }
  }
  return { rows, predictions };
}

describe("checkClaims", () => {
  const labels = Array(10).fill(1);
  const l2 = { clean: 0, "fgsm@0.005": 0.01, "fgsm@0.09": 0.17, "ifgsm@0.005": 0.01, "ifgsm@0.09": 0.07 };

  test("all three claims hold where the data says so", () => {
    const r = table(
      {
        //            none JPEG10 JPEG23 V16 V32 V64/32 V64/64 Ens
        clean: [10, 8, 10, 9, 9, 9, 9, 10],
        "fgsm@0.005": [2, 7, 9, 6, 6, 6, 6, 8],
        "fgsm@0.09": [1, 6, 3, 4, 4, 5, 6, 5],
        "ifgsm@0.005": [1, 7, 9, 6, 6, 6, 6, 8],
        "ifgsm@0.09": [0, 6, 3, 4, 4, 6, 5, 5],
      },
      l2,
    );
    const { rows, predictions } = r;
    assert.deepEqual(
      rows.map((x) => `${x.attack}@${x.epsilon}`),
      ["FGSM@0", "FGSM@0.005", "FGSM@0.09", "I-FGSM@0", "I-FGSM@0.005", "I-FGSM@0.09"],
    );
    assert.equal(rows[1].accuracy["JPEG 23"], 0.9);
    assert.ok(Math.abs(rows[2].relL2 - 0.17) < 1e-12);
    const claims = checkClaims({ rows, predictions, labels });
    assert.deepEqual(
      claims.map((c) => [c.id, c.outcome]),
      [
        ["a", "reproduced"],
        ["b", "reproduced"],
        ["c", "reproduced"],
      ],
    );
    // (c) looks only at small I-FGSM perturbations (rel-L2 <= 0.03): one point here.
    assert.equal(claims[2].verdicts.length, 1);
    assert.match(
      claims[0].verdicts[0].evidence,
      /JPEG 23 0\.900 vs Ensemble 0\.800 \(right under JPEG 23 only: 1 images, under Ensemble only: 0; sign test p = 1\.000\)/,
    );
  });

  test("claims that the data contradicts are reported as not reproduced", () => {
    const r = table(
      {
        clean: [10, 8, 10, 9, 9, 9, 9, 10],
        "fgsm@0.005": [2, 9, 7, 6, 6, 6, 6, 8],
        "fgsm@0.09": [1, 6, 3, 7, 4, 5, 6, 5],
        "ifgsm@0.005": [1, 9, 7, 6, 8, 6, 6, 7],
        "ifgsm@0.09": [0, 6, 3, 7, 4, 6, 5, 5],
      },
      l2,
    );
    const claims = checkClaims({ ...r, labels });
    assert.deepEqual(
      claims.map((c) => c.outcome),
      ["not reproduced", "not reproduced", "not reproduced"],
    );
  });

  test("clean acceptance: each single VAE column against 0.85 of the undefended accuracy", () => {
    const r = table(
      {
        clean: [10, 8, 10, 9, 8, 9, 9, 10],
        "fgsm@0.005": [2, 9, 7, 6, 6, 6, 6, 8],
        "fgsm@0.09": [1, 6, 3, 7, 4, 5, 6, 5],
        "ifgsm@0.005": [1, 9, 7, 6, 8, 6, 6, 7],
        "ifgsm@0.09": [0, 6, 3, 7, 4, 6, 5, 5],
      },
      l2,
    );
    const { undefended, checks } = cleanAcceptance(r.rows);
    assert.equal(undefended, 1);
    assert.deepEqual(
      checks.map((c) => [c.column, c.passes]),
      [
        ["VAE 16x16 s16", true],
        ["VAE 32x32 s32", false],
        ["VAE 64x64 s32", true],
        ["VAE 64x64 s64", true],
      ],
    );
  });
});
