/** Ensemble averaging: identity of identities, pixel means, gradient kinds, randomness, no leaks. */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { rand, randn } from "../../src/core/tensor.js";
import { EnsembleDefense } from "../../src/defenses/ensemble.js";
import { GaussianBlurDefense } from "../../src/defenses/gaussian-blur.js";
import { JpegDefense } from "../../src/defenses/jpeg.js";
import { NoDefense } from "../../src/defenses/none.js";
import { PatchVaeDefense } from "../../src/defenses/patch-vae.js";
import { leakFree } from "../helpers/assert.js";
import { gradOfWeighted, maxAbsDiff, tinyVae } from "./helpers.js";

const vae8 = tinyVae([3, 8, 8], 3);
after(() => vae8.dispose());

describe("EnsembleDefense", () => {
  test(
    "an ensemble of two identity defenses is the identity, value and gradient",
    leakFree(async () => {
      const e = new EnsembleDefense([new NoDefense(), new NoDefense()]);
      assert.equal(e.gradient, "exact");
      assert.equal(e.randomized, false);
      assert.equal(e.name, "Ensemble(No defense + No defense)");
      manualSeed(1);
      const x = rand([2, 3, 6, 6]);
      const y = await e.apply(x);
      assert.ok(maxAbsDiff(y, x) < 1e-7);
      const w = randn(x.shape);
      const g = await gradOfWeighted((xi) => e.attackView(xi), x, w);
      assert.ok(maxAbsDiff(g, w) < 1e-6);
      for (const t of [x, y, w, g]) t.dispose();
    }),
  );

  test(
    "the output is the pixel mean of the members' outputs",
    leakFree(async () => {
      const members = [new JpegDefense({ quality: 10 }), new GaussianBlurDefense({ sigma: 1 }), new NoDefense()];
      const e = new EnsembleDefense(members, { name: "Ensembled" });
      assert.equal(e.name, "Ensembled");
      manualSeed(2);
      const x = rand([2, 3, 16, 16]);
      const y = await e.apply(x);
      const outs = await Promise.all(members.map((m) => m.apply(x)));
      const mean = noGrad(() => tidy(() => outs[0].add(outs[1]).add(outs[2]).div(3)));
      assert.ok(maxAbsDiff(y, mean) < 1e-6);
      for (const t of [x, y, mean, ...outs]) t.dispose();
    }),
  );

  test(
    "mixed members: exact through the differentiable ones, BPDA identity through the others",
    leakFree(async () => {
      const blur = new GaussianBlurDefense({ sigma: 1 });
      const e = new EnsembleDefense([new JpegDefense({ quality: 23 }), blur]);
      assert.equal(e.gradient, "bpda-mixed");
      assert.equal(
        new EnsembleDefense([new JpegDefense(), new JpegDefense({ quality: 10 })]).gradient,
        "bpda-identity",
      );
      manualSeed(3);
      const x = rand([1, 3, 16, 16]);
      const w = randn(x.shape);
      const g = await gradOfWeighted((xi) => e.attackView(xi), x, w);
      const gBlur = await gradOfWeighted((xi) => blur.attackView(xi), x, w);
      // d/dx mean(jpeg_bpda(x), blur(x)) . w = (w + blur^T w) / 2
      const expected = noGrad(() => tidy(() => w.add(gBlur).div(2)));
      assert.ok(maxAbsDiff(g, expected) < 1e-5);
      for (const t of [x, w, g, gBlur, expected]) t.dispose();
    }),
  );

  test(
    "random when any member is random, e.g. patch-VAE reconstructions at several strides",
    leakFree(async () => {
      const e = new EnsembleDefense([
        new PatchVaeDefense(vae8, { stride: 8 }),
        new PatchVaeDefense(vae8, { stride: 4, deterministic: true }),
      ]);
      assert.equal(e.randomized, true);
      assert.equal(e.gradient, "exact");
      const x = rand([1, 3, 20, 20]);
      const a = await e.apply(x);
      const b = await e.apply(x);
      assert.deepEqual(a.shape, x.shape);
      assert.ok(maxAbsDiff(a, b) > 0);
      for (const t of [x, a, b]) t.dispose();
    }),
  );

  test(
    "members are checked",
    leakFree(() => {
      assert.throws(() => new EnsembleDefense([]), /Expected non-empty array of defenses for members/);
      assert.throws(() => new EnsembleDefense([new NoDefense(), {} as never]), /Expected a defense for members\[1\]/);
    }),
  );
});
