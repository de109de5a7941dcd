/** Bit-depth reduction: levels, validation, BPDA gradient, no leaks. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { arange, rand, randn, tensor } from "../../src/core/tensor.js";
import { BitDepthDefense } from "../../src/defenses/bit-depth.js";
import { leakFree } from "../helpers/assert.js";
import { gradOfWeighted, maxAbsDiff } from "./helpers.js";

describe("BitDepthDefense", () => {
  test(
    "1 bit gives only 0 and 1 (a threshold at 0.5)",
    leakFree(async () => {
      manualSeed(1);
      const x = rand([2, 3, 8, 8]);
      const y = await new BitDepthDefense({ bits: 1 }).apply(x);
      const values = new Set(noGrad(() => tidy(() => y.toArray())));
      assert.deepEqual([...values].sort(), [0, 1]);
      const expected = noGrad(() => tidy(() => x.gt(0.5).float()));
      assert.equal(maxAbsDiff(y, expected), 0);
      for (const t of [x, y, expected]) t.dispose();
    }),
  );

  test(
    "b bits give 2^b levels; 8 bits keep 8-bit images; values are clamped to [0, 1]",
    leakFree(async () => {
      const x = tidy(() => arange(0, 256).float().div(255).reshape([1, 1, 16, 16]));
      const y8 = await new BitDepthDefense({ bits: 8 }).apply(x);
      assert.ok(maxAbsDiff(y8, x) < 1e-6);
      const y3 = await new BitDepthDefense({ bits: 3 }).apply(x);
      assert.equal(new Set(noGrad(() => tidy(() => y3.mul(7).round().toArray()))).size, 8);
      const out = tensor([-0.5, 0.2, 1.7], [1, 1, 1, 3]);
      const y2 = await new BitDepthDefense({ bits: 2 }).apply(out);
      assert.deepEqual(
        y2.toArray().map((v) => Math.round(v * 3)),
        [0, 1, 3],
      );
      for (const t of [x, y8, y3, out, y2]) t.dispose();
    }),
  );

  test(
    "bits outside 1..8 are rejected with the template message",
    leakFree(() => {
      assert.throws(
        () => new BitDepthDefense({ bits: 0 }),
        /^ArgumentError: Expected integer between 1 and 8 for bits but received 0$/,
      );
      assert.throws(() => new BitDepthDefense({ bits: 9 }), /for bits but received 9/);
      assert.equal(new BitDepthDefense({ bits: 5 }).name, "Bit depth 5");
    }),
  );

  test(
    "BPDA identity gradient",
    leakFree(async () => {
      const d = new BitDepthDefense({ bits: 2 });
      assert.equal(d.gradient, "bpda-identity");
      const x = rand([1, 3, 4, 4]);
      const w = randn(x.shape);
      const g = await gradOfWeighted((xi) => d.attackView(xi), x, w);
      assert.equal(maxAbsDiff(g, w), 0);
      for (const t of [x, w, g]) t.dispose();
    }),
  );
});
