import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../examples/defend-your-classifier.js";

test("the README's library example trains, attacks and defends", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-example-"));
  try {
    const rows = await main(1000, 100, dir);
    assert.equal(rows.length, 2);
    const [clean, attacked] = rows;
    assert.equal(clean.relL2, 0);
    assert.ok(attacked.relL2 > 0.1, `FGSM at eps 0.1 should change the images (rel-L2 ${attacked.relL2})`);
    assert.ok(clean.accuracy["No defense"] > 0.7, `classifier learned something: ${clean.accuracy["No defense"]}`);
    assert.ok(attacked.accuracy["No defense"] < clean.accuracy["No defense"], "the attack lowers undefended accuracy");
    assert.ok("VAE" in attacked.accuracy);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
