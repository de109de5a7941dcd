/**
 * extractNsfwjsModels: the real nsfwjs MobileNetV2 becomes a plain TF.js
 * folder that the importer loads (the heavy numerical comparison with TF.js
 * is scripts/verify-tfjs-import.mjs); the graph-model variant is named as such.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { noGrad } from "../../src/core/engine.js";
import { CheckpointError } from "../../src/core/errors.js";
import { rand } from "../../src/core/tensor.js";
import { loadTfjsLayersModel } from "../../src/models/tfjs.js";
import { NSFWJS_CLASSES, extractNsfwjsModels } from "../../src/models/tfjs-nsfwjs.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "vaeguard-nsfwjs-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("extractNsfwjsModels", () => {
  test("MobileNetV2: model.json + .bin shards that the importer loads", () => {
    const [m] = extractNsfwjsModels(dir, { models: ["mobilenet_v2"] });
    assert.equal(m.name, "mobilenet_v2");
    assert.equal(m.format, "layers-model");
    assert.equal(m.inputSize, 224);
    assert.deepEqual(m.shards, ["group1-shard1of1.bin"]);
    assert.equal(statSync(join(m.dir, "group1-shard1of1.bin")).size, m.weightBytes);
    const json = JSON.parse(readFileSync(m.modelJson, "utf8")) as {
      weightsManifest: { paths: string[] }[];
      userDefinedMetadata: { vaeguard: { classes: string[]; inputScaling: string } };
    };
    assert.deepEqual(json.weightsManifest[0].paths, ["group1-shard1of1.bin"]);
    assert.deepEqual(json.userDefinedMetadata.vaeguard.classes, [...NSFWJS_CLASSES]);
    assert.equal(json.userDefinedMetadata.vaeguard.inputScaling, "unit");

    const model = loadTfjsLayersModel(m.dir);
    try {
      assert.deepEqual(model.inputShape, [3, 224, 224]);
      assert.equal(model.numClasses, 5);
      assert.equal(model.endsWithSoftmax, true);
      assert.equal(model.outputsLogits, true);
      const x = rand([1, 3, 224, 224]);
      const y = noGrad(() => model.forward(x));
      assert.deepEqual(y.shape, [1, 5]);
      assert.ok(y.toArray().every(Number.isFinite));
      x.dispose();
      y.dispose();
    } finally {
      model.dispose();
    }
  });

  test("the graph-model variant is extracted and then refused by the layers importer", () => {
    const [m] = extractNsfwjsModels(dir, { models: ["mobilenet_v2_mid"] });
    assert.equal(m.format, "graph-model");
    assert.ok(existsSync(m.modelJson));
    assert.throws(
      () => loadTfjsLayersModel(m.dir),
      (e: unknown) => e instanceof CheckpointError && /is a TF\.js graph model/.test((e as Error).message),
    );
  });
});
