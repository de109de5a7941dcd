/**
 * Patch-wise VAE: the authors' patch grid, batched gather/scatter against a
 * per-patch reference, the 5x5 smoothing filter against PIL, the defense's
 * shapes and gradients, no leaks.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { ArgumentError, ShapeError } from "../../src/core/errors.js";
import { Tensor, full, rand, zeros } from "../../src/core/tensor.js";
import {
  PatchVaeDefense,
  patchPositions,
  patchReconstruct,
  smooth,
  smoothingKernel,
} from "../../src/defenses/patch-vae.js";
import { leakFree } from "../helpers/assert.js";
import { fromBytes, gradOfWeighted, maxAbsDiff, range, readGolden, tinyVae } from "./helpers.js";

const vae8 = tinyVae([3, 8, 8], 1);
const vae16 = tinyVae([3, 16, 16], 2);
after(() => {
  vae8.dispose();
  vae16.dispose();
});

/** The authors' loop (NIPS-2017/model_utils.py, reconstruct_image), one patch at a time, for comparison. */
function referenceReconstruct(x: Tensor, f: (p: Tensor) => Tensor, p: number, s: number): Tensor {
  const [n, c, h, w] = x.dims;
  return noGrad(() =>
    tidy(() => {
      const moves = (size: number) => Math.floor((size - (p - s)) / s) + 1;
      const pos = (size: number) =>
        Array.from({ length: moves(size) }, (_, i) => (i === moves(size) - 1 ? size - p : i * s));
      let out = zeros([n, c, h, w]);
      let counts = zeros([1, 1, h, w]);
      for (const i of pos(h)) {
        for (const j of pos(w)) {
          const r = f(x.narrow(2, i, p).narrow(3, j, p));
          const pads = [j, w - j - p, i, h - i - p];
          out = out.add(r.pad(pads));
          counts = counts.add(full([1, 1, p, p], 1).pad(pads));
        }
      }
      return out.div(counts);
    }),
  );
}

describe("patchPositions", () => {
  const H = 299;
  for (const [p, s] of [
    [16, 16],
    [32, 32],
    [64, 32],
    [64, 64],
    [16, 8],
    [32, 16],
  ]) {
    test(
      `H=299, p=${p}, s=${s}: the authors' count, stride s, the last anchored at 299-p, every pixel covered`,
      leakFree(() => {
        const pos = patchPositions(H, p, s);
        const moves = Math.floor((H - (p - s)) / s) + 1;
        assert.equal(pos.length, moves);
        for (let i = 0; i < pos.length - 1; i++) assert.equal(pos[i], i * s);
        assert.equal(pos[pos.length - 1], H - p);
        assert.ok(pos[pos.length - 2] < H - p, "the anchored patch is a new position");
        const covered = new Array<number>(H).fill(0);
        for (const q of pos) for (let k = q; k < q + p; k++) covered[k]++;
        assert.ok(
          covered.every((c) => c >= 1),
          `pixel ${covered.indexOf(0)} is not covered`,
        );
      }),
    );
  }

  test(
    "known grids",
    leakFree(() => {
      assert.deepEqual(patchPositions(299, 64, 64), [0, 64, 128, 192, 235]);
      assert.deepEqual(patchPositions(299, 64, 32), [0, 32, 64, 96, 128, 160, 192, 224, 235]);
      assert.deepEqual(patchPositions(16, 16, 4), [0]);
      // When size - p is a multiple of s the anchored position is the last regular one; it is listed once.
      assert.deepEqual(patchPositions(32, 16, 16), [0, 16]);
      assert.deepEqual(patchPositions(10, 4, 3), [0, 3, 6]);
    }),
  );

  test(
    "invalid geometry is rejected with the template message",
    leakFree(() => {
      assert.throws(() => patchPositions(299, 16, 17), /Expected integer between 1 and 16 for stride but received 17/);
      assert.throws(() => patchPositions(10, 16, 8), /Expected integer between 1 and 10 for patchSize but received 16/);
      assert.throws(() => patchPositions(299, 16, 0), ArgumentError);
    }),
  );
});

describe("patchReconstruct", () => {
  test(
    "an identity reconstruction returns the image (fold of unfold divided by the counts)",
    leakFree(() => {
      manualSeed(1);
      const x = rand([2, 3, 299, 299]);
      for (const [p, s] of [
        [16, 16],
        [64, 32],
        [16, 8],
      ]) {
        const y = patchReconstruct(x, (q) => q.clone(), p, s);
        assert.deepEqual(y.shape, x.shape);
        const d = maxAbsDiff(y, x);
        assert.ok(d < 1e-6, `p=${p} s=${s}: max difference ${d}`);
        y.dispose();
      }
      x.dispose();
    }),
  );

  test(
    "matches the authors' per-patch loop on a non-square image, whatever the chunk size",
    leakFree(() => {
      manualSeed(2);
      const x = rand([2, 3, 23, 30]);
      // A patch-dependent function, so that overlaps really are averages of different values.
      const f = (q: Tensor) => tidy(() => q.square().add(q.mean([1, 2, 3], true)));
      const ref = referenceReconstruct(x, f, 8, 6);
      let calls = 0;
      const counted = (q: Tensor) => {
        calls++;
        return f(q);
      };
      const y = patchReconstruct(x, counted, 8, 6);
      assert.equal(calls, 1, "all patches of the batch go through the model as one batch");
      assert.ok(maxAbsDiff(y, ref) < 1e-5);
      calls = 0;
      const chunked = patchReconstruct(x, counted, 8, 6, { chunkSize: 7 });
      // 23 rows -> 4 positions, 30 columns -> 5 positions: 2 * 20 patches in chunks of 7.
      assert.equal(calls, Math.ceil(40 / 7));
      assert.ok(maxAbsDiff(chunked, ref) < 1e-5);
      for (const t of [x, ref, y, chunked]) t.dispose();
    }),
  );

  test(
    "a reconstruction of the wrong shape, or patches larger than the image, are rejected",
    leakFree(() => {
      const x = rand([1, 3, 20, 20]);
      assert.throws(() => patchReconstruct(x, (q) => q.narrow(1, 0, 1), 8, 4), ShapeError);
      assert.throws(() => patchReconstruct(x, (q) => q.clone(), 32, 8), /32x32 patches do not fit/);
      x.dispose();
    }),
  );
});

describe("smoothing", () => {
  test(
    "the kernel is PIL's SMOOTH_MORE and sums to one",
    leakFree(() => {
      const k = smoothingKernel();
      assert.deepEqual(k.shape, [5, 5]);
      const [sum, centre, corner] = tidy(() => [
        k.sum().item(),
        k.select(0, 2).select(0, 2).item(),
        k.select(0, 0).select(0, 0).item(),
      ]);
      assert.ok(Math.abs(sum - 1) < 1e-6);
      assert.ok(Math.abs(centre - 0.44) < 1e-7);
      assert.ok(Math.abs(corner - 0.01) < 1e-7);
      k.dispose();
    }),
  );

  test(
    "a constant image is unchanged, in both border modes",
    leakFree(() => {
      const x = full([2, 3, 11, 13], 0.3);
      for (const border of ["copy", "replicate"] as const) {
        const y = smooth(x, { border });
        assert.ok(maxAbsDiff(y, x) < 1e-6, border);
        y.dispose();
      }
      x.dispose();
    }),
  );

  test(
    "matches PIL's ImageFilter.SMOOTH_MORE (the authors' smoothen), including its unfiltered 2-pixel border",
    leakFree(() => {
      const g = readGolden().smoothMore;
      const x = fromBytes(g.input, g.shape);
      const want = fromBytes(g.output, g.shape);
      const y = smooth(x);
      // PIL rounds each filtered value to 8 bits; we keep floats: at most half a level apart.
      const d = maxAbsDiff(y, want) * 255;
      assert.ok(d <= 0.5 + 1e-3, `max difference ${d} levels`);
      const levels = noGrad(() => tidy(() => y.mul(255).round().eq(want.mul(255).round()).float().mean().item()));
      assert.ok(levels > 0.97, `only ${levels} of the rounded values equal PIL's`);
      // The two outer rows and columns are the input's.
      const ring = (t: Tensor) =>
        tidy(() =>
          [t.narrow(2, 0, 2), t.narrow(2, 7, 2), t.narrow(3, 0, 2), t.narrow(3, 8, 2)].map((r) => r.flatten()),
        );
      const [a, b] = [ring(y), ring(x)];
      a.forEach((r, i) => assert.equal(maxAbsDiff(r, b[i]), 0));
      // "replicate" filters the border too.
      const rep = smooth(x, { border: "replicate" });
      assert.ok(maxAbsDiff(rep, y) > 0.01);
      for (const t of [x, want, y, rep, ...a, ...b]) t.dispose();
    }),
  );
});

describe("PatchVaeDefense", () => {
  test(
    "purifies a batch: shape, range, randomness, name, no graph from apply",
    leakFree(async () => {
      const d = new PatchVaeDefense(vae8, { stride: 4 });
      assert.equal(d.name, "VAE 8x8 s4");
      assert.equal(d.randomized, true);
      assert.equal(d.gradient, "exact");
      manualSeed(3);
      const x = rand([2, 3, 21, 26]);
      const a = await d.apply(x);
      const b = await d.apply(x);
      assert.deepEqual(a.shape, x.shape);
      const [lo, hi] = range(a);
      assert.ok(lo >= 0 && hi <= 1);
      assert.equal(a.requiresGrad, false);
      assert.ok(maxAbsDiff(a, b) > 1e-4, "sampled reconstructions differ");
      const det = new PatchVaeDefense(vae8, { stride: 4, deterministic: true, smooth: false });
      assert.equal(det.name, "VAE 8x8 s4 (no smoothing, deterministic)");
      const c = await det.apply(x);
      const e = await det.apply(x);
      assert.equal(maxAbsDiff(c, e), 0);
      // Without smoothing the defense is exactly patchReconstruct with the VAE's mean decoding.
      const direct = noGrad(() => patchReconstruct(x, (q) => vae8.reconstruct(q, { deterministic: true }), 8, 4));
      assert.ok(maxAbsDiff(c, direct) < 1e-6);
      const smoothed = await new PatchVaeDefense(vae8, { stride: 4, deterministic: true }).apply(x);
      const expected = noGrad(() => smooth(direct));
      assert.ok(maxAbsDiff(smoothed, expected) < 1e-6);
      for (const t of [x, a, b, c, e, direct, smoothed, expected]) t.dispose();
    }),
  );

  test(
    "the exact gradient flows through patches, VAE, fold and smoothing",
    leakFree(async () => {
      const d = new PatchVaeDefense(vae16, { stride: 8 });
      manualSeed(4);
      const x = rand([1, 3, 40, 40]);
      const w = rand(x.shape);
      const g = await gradOfWeighted((xi) => d.attackView(xi), x, w);
      assert.deepEqual(g.shape, x.shape);
      // Every pixel is in some patch, so every pixel gets a gradient.
      const zeroFrac = noGrad(() => tidy(() => g.eq(0).float().mean().item()));
      assert.ok(zeroFrac < 0.01, `${zeroFrac} of the gradient is zero`);
      for (const t of [x, w, g]) t.dispose();
    }),
  );

  test(
    "a VAE or image that does not fit is rejected",
    leakFree(async () => {
      assert.throws(() => new PatchVaeDefense(vae8, { patchSize: 16 }), /patchSize 16 does not match the VAE/);
      assert.throws(() => new PatchVaeDefense(vae8, { stride: 9 }), /Expected integer between 1 and 8 for stride/);
      const gray = rand([1, 1, 20, 20]);
      const small = rand([1, 3, 6, 20]);
      const d = new PatchVaeDefense(vae8);
      await assert.rejects(d.apply(gray), ShapeError);
      await assert.rejects(d.attackView(small), /do not fit a batch of shape \[1, 3, 6, 20\]/);
      gray.dispose();
      small.dispose();
    }),
  );
});
