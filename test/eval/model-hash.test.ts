/**
 * Models are named by content hash in a sweep's setup (a queue worker refuses
 * a file whose hash is not the one the job names): a TF.js model's hash must
 * cover the weight files its model.json lists, not only the JSON.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileSha256 } from "../../src/eval/evaluation.js";

const dir = mkdtempSync(join(tmpdir(), "vaeguard-hash-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("a TF.js model.json is hashed with its weight files; other files by their bytes alone", () => {
  const json = join(dir, "model.json");
  writeFileSync(
    json,
    JSON.stringify({ format: "layers-model", weightsManifest: [{ paths: ["a.bin", "b.bin"], weights: [] }] }),
  );
  writeFileSync(join(dir, "a.bin"), Buffer.from([1, 2, 3]));
  writeFileSync(join(dir, "b.bin"), Buffer.from([4, 5]));
  const first = fileSha256(json);
  writeFileSync(join(dir, "b.bin"), Buffer.from([4, 6]));
  assert.notEqual(fileSha256(json), first, "other weights, same model.json: another hash");
  writeFileSync(join(dir, "b.bin"), Buffer.from([4, 5]));
  assert.equal(fileSha256(json), first);

  // Not a TF.js manifest (no weightsManifest, or not JSON): the file's own sha256.
  const plain = join(dir, "config.json");
  writeFileSync(plain, "{}");
  assert.equal(fileSha256(plain), "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
});
