/** No defense: the identity, returning tensors the caller owns. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { rand } from "../../src/core/tensor.js";
import { NoDefense } from "../../src/defenses/none.js";
import { leakFree } from "../helpers/assert.js";
import { gradOfWeighted, maxAbsDiff } from "./helpers.js";

describe("NoDefense", () => {
  test(
    "apply and attackView return new tensors equal to x, with the identity gradient",
    leakFree(async () => {
      const d = new NoDefense();
      assert.equal(d.name, "No defense");
      assert.equal(d.randomized, false);
      assert.equal(d.gradient, "exact");
      const x = rand([2, 3, 5, 5]);
      const y = await d.apply(x);
      assert.notEqual(y, x);
      assert.equal(maxAbsDiff(y, x), 0);
      y.dispose();
      assert.equal(x.isDisposed, false);
      const w = rand(x.shape);
      const g = await gradOfWeighted((xi) => d.attackView(xi), x, w);
      assert.equal(maxAbsDiff(g, w), 0);
      for (const t of [x, w, g]) t.dispose();
    }),
  );

  test(
    "rejects options and non-image inputs",
    leakFree(async () => {
      assert.throws(() => new NoDefense({ quality: 3 } as never), /Unknown option "quality"/);
      await assert.rejects(new NoDefense().apply([1, 2] as never), /Expected a tensor of images/);
    }),
  );
});
