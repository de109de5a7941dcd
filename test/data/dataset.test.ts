import { test } from "node:test";
import assert from "node:assert/strict";
import { leakFree } from "../helpers/assert.js";
import {
  datasetFromBytes,
  datasetSize,
  splitValidation,
  subsetDataset,
  takeFirst,
  type ImageDataset,
} from "../../src/data/dataset.js";
import { ArgumentError, DataError } from "../../src/core/errors.js";
import { dispose, tidy } from "../../src/core/engine.js";

/** A dataset of n 1x2x2 images whose first pixel is index/255 and whose label is index % 3. */
function toy(n: number): ImageDataset {
  const pixels = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) pixels.set([i, 1, 2, 3], i * 4);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 3);
  return datasetFromBytes({
    pixels,
    labels,
    shape: [n, 1, 2, 2],
    classNames: ["a", "b", "c"],
    name: "toy",
    split: "train",
    source: "memory",
  });
}

/** The example indices a dataset holds, read back from the first pixel. */
function indicesOf(ds: ImageDataset): number[] {
  return tidy(() => ds.images.select(3, 0).select(2, 0).select(1, 0).mul(255).round().toArray());
}

test(
  "datasetFromBytes scales to [0, 1] and checks labels",
  leakFree(() => {
    const ds = toy(5);
    assert.deepEqual(ds.images.shape, [5, 1, 2, 2]);
    assert.deepEqual(indicesOf(ds), [0, 1, 2, 3, 4]);
    assert.deepEqual(ds.labels.toArray(), [0, 1, 2, 0, 1]);
    assert.equal(datasetSize(ds), 5);
    dispose(ds);
    assert.throws(
      () =>
        datasetFromBytes({
          pixels: new Uint8Array(4),
          labels: new Uint8Array([3]),
          shape: [1, 1, 2, 2],
          classNames: ["a", "b", "c"],
          name: "t",
          source: "",
          labelsFile: "l.idx",
        }),
      (e: unknown) =>
        e instanceof DataError &&
        e.file === "l.idx" &&
        /label 3 at index 0 is outside 0\.\.2 \(3 classes\)/.test(e.message),
    );
  }),
);

test(
  "splitValidation holds out a seeded, disjoint part and keeps the original order",
  leakFree(() => {
    const ds = toy(100);
    const a = splitValidation(ds, 0.2, 7);
    const b = splitValidation(ds, 0.2, 7);
    const c = splitValidation(ds, 0.2, 8);
    try {
      const [train, val] = [indicesOf(a.train), indicesOf(a.validation)];
      assert.equal(val.length, 20);
      assert.equal(train.length, 80);
      assert.deepEqual(
        [...train, ...val].sort((x, y) => x - y),
        Array.from({ length: 100 }, (_, i) => i),
        "every example in exactly one part",
      );
      assert.deepEqual(
        val,
        [...val].sort((x, y) => x - y),
        "original order kept",
      );
      assert.deepEqual(indicesOf(b.validation), val, "same seed, same split");
      assert.notDeepEqual(indicesOf(c.validation), val, "another seed, another split");
      assert.deepEqual(
        a.validation.labels.toArray(),
        val.map((i) => i % 3),
        "labels travel with their images",
      );
      assert.equal(a.validation.split, "validation");
      assert.equal(a.train.split, "train");
      assert.match(a.validation.source, /^memory; validation split of 20\/100 \(seed 7\)$/);
    } finally {
      dispose([a, b, c]);
    }
    const byCount = splitValidation(ds, 5);
    assert.equal(datasetSize(byCount.validation), 5);
    dispose(byCount);
    for (const bad of [0, 1.5, 100, -3, NaN]) assert.throws(() => splitValidation(ds, bad), ArgumentError, String(bad));
    dispose(ds);
  }),
);

test(
  "takeFirst and subsetDataset copy the chosen examples",
  leakFree(() => {
    const ds = toy(6);
    const first = takeFirst(ds, 2);
    const some = subsetDataset(ds, [5, 0, 3], "picked");
    dispose(ds);
    // Still usable after the original is gone.
    assert.deepEqual(indicesOf(first), [0, 1]);
    assert.match(first.source, /first 2 of 6/);
    assert.deepEqual(indicesOf(some), [5, 0, 3]);
    assert.deepEqual(some.labels.toArray(), [2, 0, 0]);
    assert.equal(some.source, "memory; picked");
    dispose([first, some]);
    const again = toy(2);
    assert.throws(() => subsetDataset(again, [2]), /between 0 and 1 for indices\[0\] but received 2/);
    assert.throws(() => takeFirst(again, 3), ArgumentError);
    dispose(again);
  }),
);
