import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkMetadata, checkRows, defensesOf, groupRows, slug } from "../../src/report/types.js";
import { METADATA, ROWS } from "./fixtures.js";

describe("report types", () => {
  it("groups rows by attack and mode in first-seen order", () => {
    const rows = [
      ROWS[0],
      { ...ROWS[0], attack: "I-FGSM" },
      ROWS[1],
      { ...ROWS[1], mode: "adaptive" as const, accuracy: { JPEG: 0.1 } },
    ];
    const groups = groupRows(rows);
    assert.deepEqual(
      groups.map((g) => [g.attack, g.mode, g.rows.length]),
      [
        ["FGSM", "gray-box", 2],
        ["I-FGSM", "gray-box", 1],
        ["FGSM", "adaptive", 1],
      ],
    );
    assert.deepEqual(defensesOf(rows), ["No Def", "VAE", "JPEG"]);
  });

  it("validates rows and metadata with messages naming the field", () => {
    assert.throws(() => checkRows([{ ...ROWS[0], mode: "white-box" as never }]), {
      message: 'Expected one of "gray-box", "adaptive" for rows[0].mode but received "white-box"',
    });
    assert.throws(() => checkRows([{ ...ROWS[0], relL2: -1 }]), /of at least 0 for rows\[0\]\.relL2/);
    assert.throws(() => checkRows([{ ...ROWS[1], std: { VAE: Number.NaN } }]), /rows\[0\]\.std\["VAE"\]/);
    assert.equal(checkMetadata(METADATA), METADATA);
    assert.throws(() => checkMetadata({ ...METADATA, samples: 1.5 }), {
      message: "Expected integer of at least 0 for metadata.samples but received 1.5",
    });
    assert.throws(() => checkMetadata({ ...METADATA, command: " " }), /non-empty string for metadata.command/);
  });

  it("makes file-name-safe slugs", () => {
    assert.equal(slug("I-FGSM (gray-box)"), "i-fgsm-gray-box");
    assert.equal(slug("???"), "x");
  });
});
