/** VAE defense: shapes, clipping, K-sample averaging, exact gradients, shape checks, no leaks. */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { ArgumentError, ShapeError } from "../../src/core/errors.js";
import { rand, stack, type Tensor } from "../../src/core/tensor.js";
import { VaeDefense } from "../../src/defenses/vae.js";
import { leakFree } from "../helpers/assert.js";
import { gradOfWeighted, maxAbsDiff, range, tinyVae } from "./helpers.js";

const vae = tinyVae([1, 12, 12]);
after(() => vae.dispose());

function images(n: number, seed = 1): Tensor {
  manualSeed(seed);
  return rand([n, 1, 12, 12]);
}

/** Mean over pixels of the per-pixel variance across `runs` applications. */
async function outputVariance(defense: VaeDefense, x: Tensor, runs: number): Promise<number> {
  const outs: Tensor[] = [];
  for (let r = 0; r < runs; r++) outs.push(await defense.apply(x));
  const v = noGrad(() => tidy(() => stack(outs, 0).var(0).mean().item()));
  for (const o of outs) o.dispose();
  return v;
}

describe("VaeDefense", () => {
  test(
    "apply and attackView keep the batch shape, stay in [0, 1], and only the view carries a graph",
    leakFree(async () => {
      const d = new VaeDefense(vae);
      assert.equal(d.name, "VAE");
      assert.equal(d.randomized, true);
      assert.equal(d.gradient, "exact");
      const x = images(5);
      const y = await d.apply(x);
      assert.deepEqual(y.shape, [5, 1, 12, 12]);
      const [lo, hi] = range(y);
      assert.ok(lo >= 0 && hi <= 1);
      assert.equal(y.requiresGrad, false, "apply must run without gradients");
      const v = await d.attackView(x);
      assert.deepEqual(v.shape, [5, 1, 12, 12]);
      assert.equal(v.requiresGrad, true, "the attack view goes through the VAE's parameters with autograd");
      for (const t of [x, y, v]) t.dispose();
    }),
  );

  test(
    "sampled reconstructions differ between calls; deterministic ones do not",
    leakFree(async () => {
      const x = images(3, 2);
      const random = new VaeDefense(vae);
      const a = await random.apply(x);
      const b = await random.apply(x);
      assert.ok(maxAbsDiff(a, b) > 1e-4, "two sampled reconstructions should differ");
      const det = new VaeDefense(vae, { deterministic: true });
      assert.equal(det.randomized, false);
      assert.equal(det.name, "VAE (deterministic)");
      const c = await det.apply(x);
      const e = await det.apply(x);
      assert.equal(maxAbsDiff(c, e), 0);
      for (const t of [x, a, b, c, e]) t.dispose();
    }),
  );

  test(
    "clipping is respected: with clip 0 the noise vanishes and the output equals the deterministic one",
    leakFree(async () => {
      const x = images(4, 3);
      const clipped = await new VaeDefense(vae, { clip: 0 }).apply(x);
      const det = await new VaeDefense(vae, { deterministic: true }).apply(x);
      assert.ok(maxAbsDiff(clipped, det) < 1e-6);
      // A small clip keeps the output closer to the deterministic one than the default clip of 5.
      const tight = await new VaeDefense(vae, { clip: 0.05 }).apply(x);
      const loose = await new VaeDefense(vae).apply(x);
      assert.ok(maxAbsDiff(tight, det) < maxAbsDiff(loose, det));
      for (const t of [x, clipped, det, tight, loose]) t.dispose();
    }),
  );

  test(
    "averaging K sampled reconstructions reduces the variance of the output",
    leakFree(async () => {
      const x = images(2, 4);
      manualSeed(10);
      const v1 = await outputVariance(new VaeDefense(vae), x, 12);
      const v8 = await outputVariance(new VaeDefense(vae, { samples: 8 }), x, 12);
      x.dispose();
      assert.ok(v1 > 0);
      // Independent samples: the variance of the mean of 8 is 1/8 of one's (allow for estimation noise).
      assert.ok(v8 < v1 / 3, `variance with K=8 (${v8}) should be well below K=1 (${v1})`);
      assert.equal(new VaeDefense(vae, { samples: 8 }).name, "VAE (K=8)");
    }),
  );

  test(
    "the exact gradient flows from the output back to the input",
    leakFree(async () => {
      const d = new VaeDefense(vae, { deterministic: true });
      const x = images(2, 5);
      manualSeed(6);
      const w = rand(x.shape);
      const g = await gradOfWeighted((xi) => d.attackView(xi), x, w);
      assert.deepEqual(g.shape, x.shape);
      const norm = noGrad(() => tidy(() => g.abs().sum().item()));
      assert.ok(norm > 0, "the gradient through the VAE should not vanish");
      assert.ok(maxAbsDiff(g, w) > 1e-3, "the gradient is the VAE's, not the identity");
      // A finite difference along a random direction agrees with the gradient.
      const dir = rand(x.shape);
      const h = 2e-3;
      const [fPlus, fMinus, dot] = await (async () => {
        const xp = noGrad(() => tidy(() => x.add(dir.mul(h))));
        const xm = noGrad(() => tidy(() => x.sub(dir.mul(h))));
        const yp = await d.apply(xp);
        const ym = await d.apply(xm);
        const r = noGrad(() => tidy(() => [yp.mul(w).sum().item(), ym.mul(w).sum().item(), g.mul(dir).sum().item()]));
        for (const t of [xp, xm, yp, ym]) t.dispose();
        return r;
      })();
      const fd = (fPlus - fMinus) / (2 * h);
      assert.ok(Math.abs(fd - dot) <= 0.05 * Math.abs(dot) + 1e-3, `finite difference ${fd} vs gradient ${dot}`);
      for (const t of [x, w, g, dir]) t.dispose();
    }),
  );

  test(
    "a VAE whose input shape differs from the images is rejected with a ShapeError",
    leakFree(async () => {
      const d = new VaeDefense(vae);
      const wrong = rand([2, 3, 12, 12]);
      await assert.rejects(d.apply(wrong), (e: unknown) => {
        return (
          e instanceof ShapeError &&
          /reconstructs images of shape \[1, 12, 12\] but received a batch of shape \[2, 3, 12, 12\]/.test(e.message)
        );
      });
      await assert.rejects(d.attackView(wrong), ShapeError);
      wrong.dispose();
    }),
  );

  test(
    "options are validated with the template message",
    leakFree(() => {
      assert.throws(
        () => new VaeDefense(vae, { samples: 0 }),
        /Expected integer of at least 1 for samples but received 0/,
      );
      assert.throws(() => new VaeDefense(vae, { clip: -1 }), /Expected number of at least 0 for clip but received -1/);
      assert.throws(() => new VaeDefense(vae, { deterministic: 1 as unknown as boolean }), ArgumentError);
      assert.throws(() => new VaeDefense(vae, { sample: 2 } as never), /Unknown option "sample"/);
      assert.equal(new VaeDefense(vae, { clip: 2, samples: 4 }).name, "VAE (K=4, clip 2)");
      assert.deepEqual(new VaeDefense(vae).describe().clip, 5);
    }),
  );
});
