import { test } from "node:test";
import assert from "node:assert/strict";
import { leakFree } from "../helpers/assert.js";
import { augmentBatch, Batcher, batches, epochOrder, type Batch } from "../../src/data/batches.js";
import { datasetFromBytes, type ImageDataset } from "../../src/data/dataset.js";
import { deriveSeed, mulberry32, permutation } from "../../src/data/random.js";
import { dispose } from "../../src/core/engine.js";
import { tensor } from "../../src/core/tensor.js";

const C = 2;
const S = 6;
/** Pixel values (1..251, never 0, so zero padding is recognisable) identifying example, channel and place. */
const pixel = (i: number, c: number, y: number, x: number) => ((i * 37 + c * 11 + y * 5 + x * 3) % 251) + 1;

function toy(n: number): ImageDataset {
  const pixels = new Uint8Array(n * C * S * S);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) pixels[((i * C + c) * S + y) * S + x] = pixel(i, c, y, x);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
  return datasetFromBytes({
    pixels,
    labels,
    shape: [n, C, S, S],
    classNames: [..."0123456789"],
    name: "toy",
    source: "memory",
  });
}

/** Run an epoch, read every batch into plain arrays and dispose it. */
function collect(gen: Iterable<Batch>): { indices: number[][]; labels: number[][]; pixels: number[][] } {
  const out = { indices: [] as number[][], labels: [] as number[][], pixels: [] as number[][] };
  for (const b of gen) {
    out.indices.push([...b.indices]);
    out.labels.push(b.y.toArray());
    out.pixels.push(b.x.toArray().map((v) => Math.round(v * 255)));
    dispose(b);
  }
  return out;
}

test("the generator and permutation are deterministic and valid", () => {
  const a = mulberry32(42);
  const b = mulberry32(42);
  const xs = Array.from({ length: 1000 }, () => a());
  assert.deepEqual(
    Array.from({ length: 1000 }, () => b()),
    xs,
  );
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  assert.ok(Math.abs(xs.reduce((s, x) => s + x, 0) / 1000 - 0.5) < 0.05);
  const p = permutation(50, mulberry32(1));
  assert.deepEqual(
    [...p].sort((x, y) => x - y),
    Array.from({ length: 50 }, (_, i) => i),
  );
  assert.notEqual(deriveSeed(1, 0), deriveSeed(0, 1));
  assert.notEqual(deriveSeed(2 ** 32), deriveSeed(0));
});

test(
  "without shuffling, batches follow the dataset order and carry the right examples",
  leakFree(() => {
    const ds = toy(10);
    const r = collect(batches(ds, { batchSize: 4 }));
    assert.deepEqual(r.indices, [
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9],
    ]);
    assert.deepEqual(
      r.labels,
      r.indices.map((b) => b.map((i) => i % 10)),
    );
    assert.equal(r.pixels[2][0], pixel(8, 0, 0, 0));
    assert.equal(r.pixels[2].length, 2 * C * S * S);
    assert.equal(collect(batches(ds, { batchSize: 4, dropLast: true })).indices.length, 2);
    assert.throws(() => batches(ds, { batchSize: 0 }), /Expected integer of at least 1 for batchSize but received 0/);
    dispose(ds);
  }),
);

test(
  "shuffled batches cover every index once per epoch, reproducibly from the seed",
  leakFree(() => {
    const ds = toy(23);
    const a = collect(batches(ds, { batchSize: 5, shuffle: true, seed: 3 }));
    const b = collect(batches(ds, { batchSize: 5, shuffle: true, seed: 3 }));
    const other = collect(batches(ds, { batchSize: 5, shuffle: true, seed: 4 }));
    const epoch1 = collect(batches(ds, { batchSize: 5, shuffle: true, seed: 3, epoch: 1 }));
    const all = (r: { indices: number[][] }) => r.indices.flat();
    for (const r of [a, other, epoch1]) {
      assert.deepEqual(
        [...all(r)].sort((x, y) => x - y),
        Array.from({ length: 23 }, (_, i) => i),
        "each index exactly once",
      );
      assert.deepEqual(
        r.indices.map((x) => x.length),
        [5, 5, 5, 5, 3],
      );
    }
    assert.deepEqual(b, a, "same seed and epoch: identical batches");
    assert.notDeepEqual(all(other), all(a), "another seed: another order");
    assert.notDeepEqual(all(epoch1), all(a), "another epoch: another order");
    assert.notDeepEqual(
      all(a),
      Array.from({ length: 23 }, (_, i) => i),
      "actually shuffled",
    );
    assert.deepEqual(all(a), [...epochOrder(23, { shuffle: true, seed: 3 })]);
    // Each batch holds the images and labels of its indices.
    a.indices.forEach((idx, k) => {
      assert.deepEqual(
        a.labels[k],
        idx.map((i) => i % 10),
      );
      idx.forEach((i, j) => assert.equal(a.pixels[k][j * C * S * S], pixel(i, 0, 0, 0)));
    });
    dispose(ds);
  }),
);

test(
  "a Batcher runs successive epochs and can replay one",
  leakFree(() => {
    const ds = toy(12);
    const batcher = new Batcher(ds, { batchSize: 4, shuffle: true, seed: 9 });
    assert.equal(batcher.length, 3);
    assert.throws(
      () => new Batcher(ds, { batchSize: 4, augment: { cropPadding: -1 } }),
      /for augment\.cropPadding but received -1/,
    );
    const e0 = collect(batcher);
    assert.equal(batcher.epoch, 1);
    const e1 = collect(batcher);
    assert.notDeepEqual(e1.indices, e0.indices);
    assert.deepEqual(collect(batcher.epochBatches(0)), e0);
    // Leaving an epoch early leaks nothing: batches are made on demand.
    for (const b of batcher) {
      dispose(b);
      break;
    }
    dispose(ds);
  }),
);

/** Is `got` (C*S*S values) some crop of the zero-padded image i, flipped or not? Returns [top, left, flip] or null. */
function findCrop(got: number[], i: number, pad: number): [number, number, boolean] | null {
  const padded = (c: number, y: number, x: number) => {
    const [yy, xx] = [y - pad, x - pad];
    return yy < 0 || yy >= S || xx < 0 || xx >= S ? 0 : pixel(i, c, yy, xx);
  };
  for (let top = 0; top <= 2 * pad; top++) {
    for (let left = 0; left <= 2 * pad; left++) {
      for (const flip of [false, true]) {
        let ok = true;
        for (let c = 0; c < C && ok; c++)
          for (let y = 0; y < S && ok; y++)
            for (let x = 0; x < S && ok; x++) {
              const sx = flip ? S - 1 - x : x;
              ok = got[(c * S + y) * S + x] === padded(c, top + y, left + sx);
            }
        if (ok) return [top, left, flip];
      }
    }
  }
  return null;
}

test(
  "CIFAR augmentation crops a 4-pixel padded image and flips it, deterministically from the seed",
  leakFree(() => {
    const ds = toy(40);
    const opts = { batchSize: 16, shuffle: true, seed: 5, augment: "cifar" as const };
    const a = collect(batches(ds, opts));
    assert.deepEqual(collect(batches(ds, opts)), a, "same seed: same crops and flips");
    assert.notDeepEqual(collect(batches(ds, { ...opts, epoch: 1 })).pixels, a.pixels, "another epoch: other crops");
    const seen = new Set<string>();
    let flips = 0;
    a.indices.forEach((idx, k) =>
      idx.forEach((i, j) => {
        const img = a.pixels[k].slice(j * C * S * S, (j + 1) * C * S * S);
        const found = findCrop(img, i, 4);
        assert.ok(found, `image ${i} is a padded crop, maybe flipped`);
        seen.add(`${found[0]},${found[1]}`);
        if (found[2]) flips++;
      }),
    );
    assert.ok(seen.size > 10, `crops vary (${seen.size} distinct offsets)`);
    assert.ok(flips > 5 && flips < 35, `about half are flipped (${flips} of 40)`);
    // The order does not depend on augmentation.
    assert.deepEqual(collect(batches(ds, { ...opts, augment: null })).indices, a.indices);
    dispose(ds);
  }),
);

test(
  "augmentBatch with flip only mirrors images whose coin says so",
  leakFree(() => {
    const x = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [1, 1, 2, 3]);
    const rngFlip = () => 0.25; // < 0.5: flip
    const rngKeep = () => 0.75;
    const f = augmentBatch(x, { horizontalFlip: true }, rngFlip);
    const k = augmentBatch(x, { horizontalFlip: true }, rngKeep);
    assert.deepEqual(f.toArray(), [3, 2, 1, 6, 5, 4]);
    assert.deepEqual(k.toArray(), [1, 2, 3, 4, 5, 6]);
    dispose([x, f, k]);
  }),
);
