/** Gaussian blur: weights, constants, smoothing, exact gradient (finite differences), no leaks. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { full, rand, randn } from "../../src/core/tensor.js";
import { GaussianBlurDefense, gaussianWeights } from "../../src/defenses/gaussian-blur.js";
import { leakFree } from "../helpers/assert.js";
import { gradOfWeighted, maxAbsDiff } from "./helpers.js";

describe("GaussianBlurDefense", () => {
  test(
    "weights are scipy's: radius round(4 sigma), normalised",
    leakFree(() => {
      const d = new GaussianBlurDefense({ sigma: 1 });
      assert.equal(d.kernelSize, 9);
      assert.equal(new GaussianBlurDefense({ sigma: 0.5 }).kernelSize, 5);
      const g = gaussianWeights(1, 9);
      assert.ok(Math.abs(g.reduce((a, b) => a + b, 0) - 1) < 1e-12);
      // 1 / sum(exp(-k^2 / 2), k = -4..4) = 1 / 2.50662080
      assert.ok(Math.abs(g[4] - 0.398943469) < 1e-8, `${g[4]}`);
      assert.ok(Math.abs(g[0] - 0.00013383) < 1e-8, `${g[0]}`);
      assert.throws(() => new GaussianBlurDefense({ sigma: 1, kernelSize: 4 }), /odd integer for kernelSize/);
      assert.throws(() => new GaussianBlurDefense({ sigma: 0 }), /for sigma but received 0/);
    }),
  );

  test(
    "keeps constant images, smooths noise",
    leakFree(async () => {
      const c = full([1, 3, 10, 10], 0.7);
      const d = new GaussianBlurDefense({ sigma: 1.5 });
      const yc = await d.apply(c);
      assert.ok(maxAbsDiff(yc, c) < 1e-6);
      manualSeed(1);
      const x = rand([2, 1, 20, 20]);
      const y = await d.apply(x);
      const [vx, vy] = noGrad(() => tidy(() => [x.var().item(), y.var().item()]));
      assert.ok(vy < vx / 4, `variance ${vx} -> ${vy}`);
      for (const t of [c, yc, x, y]) t.dispose();
    }),
  );

  test(
    "exact gradient: matches finite differences and differs from the identity",
    leakFree(async () => {
      const d = new GaussianBlurDefense({ sigma: 1 });
      assert.equal(d.gradient, "exact");
      manualSeed(2);
      const x = rand([1, 2, 8, 8]);
      const w = randn(x.shape);
      const dir = randn(x.shape);
      const g = await gradOfWeighted((xi) => d.attackView(xi), x, w);
      assert.ok(maxAbsDiff(g, w) > 0.1);
      // Linear map: f(x + dir) - f(x) = <g, dir> exactly (up to rounding).
      const xp = noGrad(() => x.add(dir));
      const [yp, y0] = [await d.apply(xp), await d.apply(x)];
      const [fd, dot] = noGrad(() => tidy(() => [yp.sub(y0).mul(w).sum().item(), g.mul(dir).sum().item()]));
      assert.ok(Math.abs(fd - dot) < 1e-3 * Math.max(1, Math.abs(dot)), `${fd} vs ${dot}`);
      for (const t of [x, w, dir, g, xp, yp, y0]) t.dispose();
    }),
  );
});
