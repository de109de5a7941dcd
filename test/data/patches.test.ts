/**
 * Random training patches for the patch VAEs: deterministic from the seed,
 * always inside their image, equal to the image region they name (mirrored
 * when flipped), and packaged as an ImageDataset the trainer takes.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { memory } from "../../src/core/engine.js";
import { ShapeError } from "../../src/core/errors.js";
import { rand, tensor } from "../../src/core/tensor.js";
import { datasetSize } from "../../src/data/dataset.js";
import { batches } from "../../src/data/batches.js";
import { patchDataset, samplePatchPositions, samplePatches } from "../../src/data/patches.js";

describe("samplePatchPositions", () => {
  test("the same seed gives the same positions; another seed or patch size gives others", () => {
    const a = samplePatchPositions(5, 299, 299, { patchSize: 64, count: 200, seed: 7, flip: true });
    const b = samplePatchPositions(5, 299, 299, { patchSize: 64, count: 200, seed: 7, flip: true });
    const c = samplePatchPositions(5, 299, 299, { patchSize: 64, count: 200, seed: 8, flip: true });
    const d = samplePatchPositions(5, 299, 299, { patchSize: 32, count: 200, seed: 7, flip: true });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.notDeepEqual(a, d);
  });

  test("every patch lies inside its image, and positions cover the whole range", () => {
    for (const [h, w, p] of [
      [299, 299, 16],
      [40, 70, 32],
      [64, 64, 64],
    ]) {
      const pos = samplePatchPositions(3, h, w, { patchSize: p, count: 2000, seed: 1 });
      assert.equal(pos.length, 2000);
      for (const q of pos) {
        assert.ok(Number.isInteger(q.top) && q.top >= 0 && q.top + p <= h, `top ${q.top} for ${h}x${w}, p ${p}`);
        assert.ok(Number.isInteger(q.left) && q.left >= 0 && q.left + p <= w, `left ${q.left} for ${h}x${w}, p ${p}`);
        assert.ok(q.image >= 0 && q.image < 3);
        assert.equal(q.flipped, false);
      }
      assert.deepEqual([...new Set(pos.map((q) => q.image))].sort(), [0, 1, 2]);
      assert.equal(Math.max(...pos.map((q) => q.top)), h - p);
      assert.equal(Math.min(...pos.map((q) => q.left)), 0);
    }
    const flips = samplePatchPositions(2, 50, 50, { patchSize: 8, count: 1000, seed: 3, flip: true });
    const share = flips.filter((q) => q.flipped).length / flips.length;
    assert.ok(share > 0.4 && share < 0.6, `flipped share ${share}`);
  });

  test("invalid arguments are rejected with the argument's name", () => {
    assert.throws(() => samplePatchPositions(1, 10, 10, { patchSize: 16, count: 1 }), ShapeError);
    assert.throws(() => samplePatchPositions(1, 20, 20, { patchSize: 0, count: 1 }), /patchSize/);
    assert.throws(() => samplePatchPositions(1, 20, 20, { patchSize: 4, count: 0 }), /count/);
    assert.throws(() => samplePatchPositions(1, 20, 20, { patchSize: 4, count: 2, seed: -1 }), /seed/);
  });
});

describe("samplePatches", () => {
  test("each patch is the image region its position names, mirrored when flipped", () => {
    const [n, c, h, w] = [2, 3, 12, 17];
    const values = Float32Array.from({ length: n * c * h * w }, (_, i) => i);
    const images = tensor(values, [n, c, h, w]);
    const p = 5;
    const { patches, positions } = samplePatches(images, { patchSize: p, count: 40, seed: 11, flip: true });
    assert.deepEqual(patches.shape, [40, c, p, p]);
    const got = patches.dataSync() as Float32Array;
    assert.ok(positions.some((q) => q.flipped) && positions.some((q) => !q.flipped));
    positions.forEach((q, i) => {
      for (let ch = 0; ch < c; ch++)
        for (let r = 0; r < p; r++)
          for (let col = 0; col < p; col++) {
            const srcCol = q.flipped ? p - 1 - col : col;
            const want = values[((q.image * c + ch) * h + q.top + r) * w + q.left + srcCol];
            assert.equal(got[((i * c + ch) * p + r) * p + col], want);
          }
    });
    patches.dispose();
    images.dispose();
  });

  test("rejects non-image tensors", () => {
    const t = rand([3, 10, 10]);
    assert.throws(() => samplePatches(t, { patchSize: 4, count: 1 }), ShapeError);
    t.dispose();
  });
});

describe("patchDataset", () => {
  test("an ImageDataset of patches with zero labels that batches like any other, without leaks", () => {
    const before = memory().numTensors;
    const images = rand([3, 3, 40, 40]);
    const ds = patchDataset(images, { patchSize: 16, count: 50, seed: 2, source: "three noise images" });
    assert.equal(datasetSize(ds), 50);
    assert.deepEqual(ds.images.shape, [50, 3, 16, 16]);
    assert.equal(ds.labels.dtype, "int64");
    assert.ok(ds.labels.toArray().every((v) => v === 0));
    assert.deepEqual(ds.classNames, ["patch"]);
    assert.match(ds.source, /50 random 16x16 patches \(seed 2\) of three noise images/);
    const vals = ds.images.toArray();
    assert.ok(vals.every((v) => v >= 0 && v < 1));
    let seen = 0;
    for (const b of batches(ds, { batchSize: 16, shuffle: true, seed: 0 })) {
      seen += b.indices.length;
      b.x.dispose();
      b.y.dispose();
    }
    assert.equal(seen, 50);
    const again = patchDataset(images, { patchSize: 16, count: 50, seed: 2 });
    assert.deepEqual(again.images.toArray(), vals);
    for (const t of [ds.images, ds.labels, again.images, again.labels, images]) t.dispose();
    assert.equal(memory().numTensors, before);
  });
});

describe("PatchSource", () => {
  test("draws the same patches as samplePatches from 8-bit images, and frees nothing of the caller's", async () => {
    const { PatchSource } = await import("../../src/data/patches.js");
    const bytes = Float32Array.from({ length: 2 * 3 * 20 * 24 }, (_, i) => ((i * 37) % 256) / 255);
    const images = tensor(bytes, [2, 3, 20, 24]);
    const source = new PatchSource(images);
    const o = { patchSize: 8, count: 50, seed: 4, flip: true };
    const a = source.sample(o);
    const b = samplePatches(images, o);
    assert.deepEqual(a.positions, b.positions);
    const da = a.patches.dataSync() as Float32Array;
    const db = b.patches.dataSync() as Float32Array;
    assert.equal(da.length, 50 * 3 * 64);
    for (let i = 0; i < da.length; i++) assert.ok(Math.abs(da[i] - db[i]) < 1e-6, `value ${i}: ${da[i]} vs ${db[i]}`);
    const ds = source.dataset({ ...o, source: "two test images" });
    assert.equal(datasetSize(ds), 50);
    assert.match(ds.source, /50 random 8x8 patches \(seed 4, random horizontal flips\) of two test images/);
    for (const t of [a.patches, b.patches, ds.images, ds.labels, images]) t.dispose();
  });

  test("rejects what is not a batch of float images", async () => {
    const { PatchSource } = await import("../../src/data/patches.js");
    const t = tensor([1, 2, 3]);
    assert.throws(() => new PatchSource(t), ShapeError);
    t.dispose();
  });
});
