/** Median smoothing: salt noise, hand-computed windows and borders, even sizes, BPDA gradient, no leaks. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { full, rand, randn, tensor } from "../../src/core/tensor.js";
import { MedianDefense, medianFilter } from "../../src/defenses/median.js";
import { padIndices } from "../../src/defenses/common.js";
import { leakFree } from "../helpers/assert.js";
import { gradOfWeighted, maxAbsDiff } from "./helpers.js";

describe("MedianDefense", () => {
  test(
    "removes salt-and-pepper noise from a flat image",
    leakFree(async () => {
      const clean = full([1, 3, 12, 12], 0.4);
      const noisy = noGrad(() =>
        tidy(() => {
          manualSeed(1);
          const u = rand(clean.shape);
          // About 8% of the pixels become 1 (salt) or 0 (pepper), isolated enough for a 3x3 window.
          return clean.maskedFill(u.lt(0.04), 1).maskedFill(u.gt(0.96), 0);
        }),
      );
      assert.ok(maxAbsDiff(noisy, clean) > 0.5);
      const y = await new MedianDefense({ size: 3 }).apply(noisy);
      assert.equal(maxAbsDiff(y, clean), 0);
      for (const t of [clean, noisy, y]) t.dispose();
    }),
  );

  test(
    "hand-computed values: 3x3 with the edge repeated at the border (scipy 'reflect'), and 2x2 (upper median)",
    leakFree(() => {
      const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
      // Window of the top-left pixel, symmetric padding: rows [1,1,2], cols [1,1,2] of the image -> 1,1,2,1,1,2,4,4,5.
      const m3 = medianFilter(x, 3);
      assert.deepEqual(m3.toArray(), [2, 3, 3, 4, 5, 6, 7, 7, 8]);
      // 2x2: window rows/cols (i-1, i); at i = 0 the symmetric pad repeats row/column 0.
      const m2 = medianFilter(x, 2);
      assert.deepEqual(m2.toArray(), [1, 2, 3, 4, 4, 5, 7, 7, 8]);
      const reflect = medianFilter(x, 3, "reflect");
      // torch-style reflect: the top-left window is rows [2,1,2], cols [2,1,2] (1-based) -> 5,4,5,2,1,2,5,4,5.
      assert.deepEqual(reflect.toArray(), [4, 4, 5, 5, 5, 5, 5, 6, 6]);
      for (const t of [x, m3, m2, reflect]) t.dispose();
    }),
  );

  test(
    "padding indices",
    leakFree(() => {
      assert.deepEqual(padIndices(3, 2, 2, "symmetric"), [1, 0, 0, 1, 2, 2, 1]);
      assert.deepEqual(padIndices(3, 2, 2, "reflect"), [2, 1, 0, 1, 2, 1, 0]);
      assert.deepEqual(padIndices(3, 2, 2, "replicate"), [0, 0, 0, 1, 2, 2, 2]);
      assert.deepEqual(padIndices(2, 5, 0, "symmetric"), [0, 0, 1, 1, 0, 0, 1]);
    }),
  );

  test(
    "BPDA identity gradient, shape kept, options checked",
    leakFree(async () => {
      const d = new MedianDefense();
      assert.equal(d.name, "Median 3x3");
      assert.equal(d.gradient, "bpda-identity");
      const x = rand([2, 3, 9, 7]);
      const w = randn(x.shape);
      const g = await gradOfWeighted((xi) => d.attackView(xi), x, w);
      assert.equal(maxAbsDiff(g, w), 0);
      const y = await d.apply(x);
      assert.deepEqual(y.shape, x.shape);
      for (const t of [x, w, g, y]) t.dispose();
      assert.throws(() => new MedianDefense({ size: 0 }), /Expected integer between 1 and 99 for size but received 0/);
      assert.throws(() => new MedianDefense({ padding: "wrap" as never }), /for padding but received "wrap"/);
    }),
  );
});
