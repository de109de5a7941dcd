/** JPEG defense: PIL-exact pixels, shapes and ranges, quality validation, BPDA gradient, no leaks. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { ArgumentError, ShapeError } from "../../src/core/errors.js";
import { cat, rand, randn, type Tensor } from "../../src/core/tensor.js";
import { JpegDefense, jpegRoundTrip } from "../../src/defenses/jpeg.js";
import { grayRoundTripsByMosaic } from "../../src/defenses/jpeg-mosaic.js";
import { leakFree } from "../helpers/assert.js";
import { fromBytes, gradOfWeighted, maxAbsDiff, range, readGolden } from "./helpers.js";

const golden = readGolden();

/** A smooth, textured batch [n, c, h, w] in [0, 1]: JPEG keeps its content but changes its pixels. */
function textured(n: number, c: number, h: number, w: number, seed = 1): Tensor {
  manualSeed(seed);
  return noGrad(() =>
    tidy(() => {
      const coarse = rand([n, c, Math.ceil(h / 4), Math.ceil(w / 4)]);
      const up = coarse
        .reshape([n, c, Math.ceil(h / 4), 1, Math.ceil(w / 4), 1])
        .expand([n, c, Math.ceil(h / 4), 4, Math.ceil(w / 4), 4]);
      const smooth = up
        .reshape([n, c, Math.ceil(h / 4) * 4, Math.ceil(w / 4) * 4])
        .narrow(2, 0, h)
        .narrow(3, 0, w);
      return smooth.add(randn([n, c, h, w]).mul(0.05)).clamp(0, 1);
    }),
  );
}

describe("JpegDefense", () => {
  test(
    "decoded pixels equal PIL's (the authors' JPEG) at qualities 10, 23, 75, 95, RGB and grayscale",
    leakFree(async () => {
      for (const g of golden.jpeg) {
        const x = fromBytes(g.input, g.shape);
        try {
          for (const [q, expected] of Object.entries(g.jpeg)) {
            const y = await new JpegDefense({ quality: Number(q) }).apply(x);
            const want = fromBytes(expected, g.shape);
            try {
              assert.deepEqual(y.shape, [1, ...g.shape]);
              const d = maxAbsDiff(y, want);
              assert.ok(
                d < 1e-6,
                `${g.name} at quality ${q}: max difference ${d * 255} levels from PIL (${golden.source})`,
              );
            } finally {
              y.dispose();
              want.dispose();
            }
          }
        } finally {
          x.dispose();
        }
      }
    }),
  );

  test(
    "changes an image, keeps its shape and the range [0, 1], and batches images independently",
    leakFree(async () => {
      const x = textured(3, 3, 32, 32);
      const jpeg = new JpegDefense({ quality: 23 });
      const y = await jpeg.apply(x);
      try {
        assert.deepEqual(y.shape, x.shape);
        assert.equal(y.dtype, "float32");
        assert.equal(y.requiresGrad, false);
        const [lo, hi] = range(y);
        assert.ok(lo >= 0 && hi <= 1, `output leaves [0, 1]: [${lo}, ${hi}]`);
        assert.ok(maxAbsDiff(y, x) > 0.02, "JPEG 23 should change a noisy image");
        // Values are 8-bit levels.
        const offGrid = noGrad(() => tidy(() => y.mul(255).sub(y.mul(255).round()).abs().max().item()));
        assert.ok(offGrid < 1e-4, `output is not on the 8-bit grid (${offGrid})`);
        // Image 1 alone gives the same result as inside the batch.
        const one = noGrad(() => x.narrow(0, 1, 1));
        const y1 = await jpeg.apply(one);
        const inBatch = noGrad(() => y.narrow(0, 1, 1));
        assert.equal(maxAbsDiff(y1, inBatch), 0);
        one.dispose();
        y1.dispose();
        inBatch.dispose();
      } finally {
        x.dispose();
        y.dispose();
      }
    }),
  );

  test(
    "lower quality changes the image more",
    leakFree(async () => {
      const x = textured(2, 3, 40, 40, 2);
      const change: number[] = [];
      for (const q of [5, 23, 50, 90]) {
        const y = await new JpegDefense({ quality: q }).apply(x);
        change.push(noGrad(() => tidy(() => y.sub(x).abs().mean().item())));
        y.dispose();
      }
      x.dispose();
      for (let i = 1; i < change.length; i++) {
        assert.ok(change[i] < change[i - 1], `mean change should fall with quality: ${change.join(", ")}`);
      }
    }),
  );

  test(
    "grayscale batches stay one channel",
    leakFree(async () => {
      const x = textured(2, 1, 28, 28, 3);
      const y = await new JpegDefense({ quality: 10 }).apply(x);
      assert.deepEqual(y.shape, [2, 1, 28, 28]);
      assert.ok(maxAbsDiff(y, x) > 0.02);
      x.dispose();
      y.dispose();
    }),
  );

  test(
    "quality out of range or not an integer is rejected with the template message",
    leakFree(() => {
      for (const q of [0, 101, 0.5, Number.NaN]) {
        assert.throws(
          () => new JpegDefense({ quality: q }),
          (e: unknown) =>
            e instanceof ArgumentError &&
            e.message === `Expected integer between 1 and 100 for quality but received ${q}`,
        );
      }
      assert.throws(() => new JpegDefense({ quality: "23" as unknown as number }), /received "23"/);
      assert.throws(() => new JpegDefense({ qualty: 23 } as never), /Unknown option "qualty"/);
      assert.equal(new JpegDefense().quality, 23);
      assert.equal(new JpegDefense({ quality: 10 }).name, "JPEG 10");
    }),
  );

  test(
    "inputs that are not 1- or 3-channel image batches are rejected",
    leakFree(async () => {
      const two = rand([1, 2, 8, 8]);
      const flat = rand([3, 8]);
      await assert.rejects(new JpegDefense().apply(two), ShapeError);
      await assert.rejects(new JpegDefense().apply(flat), /expected a batch of images \[N, C, H, W\]/);
      two.dispose();
      flat.dispose();
    }),
  );

  test(
    "BPDA: the attack view has the value of apply(x) and the gradient of the identity",
    leakFree(async () => {
      const jpeg = new JpegDefense({ quality: 23 });
      assert.equal(jpeg.gradient, "bpda-identity");
      assert.equal(jpeg.randomized, false);
      const x = textured(2, 3, 16, 16, 4);
      manualSeed(5);
      const w = randn(x.shape);
      const g = await gradOfWeighted((xi) => jpeg.attackView(xi), x, w);
      assert.equal(maxAbsDiff(g, w), 0, "gradient of sum(view * w) must equal w");
      const view = await jpeg.attackView(x);
      const applied = await jpeg.apply(x);
      assert.equal(maxAbsDiff(view, applied), 0, "forward value of the view must equal apply(x)");
      for (const t of [x, w, g, view, applied]) t.dispose();
    }),
  );

  test(
    "a batch of many images is encoded concurrently and in order",
    leakFree(async () => {
      const a = textured(1, 3, 24, 24, 6);
      const b = noGrad(() => a.flip(3));
      const x = noGrad(() => cat([a, b, a, b, a, b, a, b], 0));
      const y = await new JpegDefense({ quality: 50 }).apply(x);
      const ya = await new JpegDefense({ quality: 50 }).apply(a);
      const yb = await new JpegDefense({ quality: 50 }).apply(b);
      for (let i = 0; i < 8; i++) {
        const yi = noGrad(() => y.narrow(0, i, 1));
        assert.equal(maxAbsDiff(yi, i % 2 === 0 ? ya : yb), 0, `image ${i} out of order`);
        yi.dispose();
      }
      for (const t of [a, b, x, y, ya, yb]) t.dispose();
    }),
  );
});

describe("grayscale batches as one mosaic", () => {
  /** Bytes of `n` images of h x w: smooth ramps with noise, so that both the content and the padding matter. */
  function grayBytes(n: number, h: number, w: number, seed: number): Uint8Array {
    let state = seed;
    const next = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
    const bytes = new Uint8Array(n * h * w);
    for (let i = 0; i < bytes.length; i++) {
      const x = i % w;
      const y = Math.floor(i / w) % h;
      bytes[i] = Math.min(255, Math.floor(((x + y) / (h + w)) * 200 + next() * 56));
    }
    return bytes;
  }

  test("gives every image the bytes of its own round trip, for sizes that are and are not whole 8x8 blocks", async () => {
    const cases: [number, number, number][] = [
      [37, 28, 28],
      [5, 13, 7],
      [3, 8, 8],
      [2, 1, 1],
      [1, 28, 28],
    ];
    for (const [n, h, w] of cases) {
      const bytes = grayBytes(n, h, w, n * 1000 + h);
      for (const quality of [1, 10, 23, 75, 100]) {
        let calls = 0;
        const mosaic = await grayRoundTripsByMosaic(bytes, n, h, w, (p, ph, pw) => {
          calls++;
          return jpegRoundTrip(p, ph, pw, 1, quality);
        });
        assert.equal(calls, 1, `${n} images of ${h}x${w} in one call`);
        for (let i = 0; i < n; i++) {
          const alone = await jpegRoundTrip(bytes.subarray(i * h * w, (i + 1) * h * w), h, w, 1, quality);
          const part = mosaic.subarray(i * h * w, (i + 1) * h * w);
          const bad = part.findIndex((v, k) => v !== alone[k]);
          assert.equal(bad, -1, `${h}x${w} image ${i} of ${n} at quality ${quality}: byte ${bad} differs`);
        }
      }
    }
  });

  test("keeps mosaics within the side limit and puts every image back where it was", async () => {
    const sides: number[][] = [];
    const identity = (p: Uint8Array, h: number, w: number) => {
      assert.equal(p.length, h * w);
      sides.push([h, w]);
      return Promise.resolve(p.slice());
    };
    for (const [n, h, w] of [
      [600, 28, 28],
      [300, 4, 9000],
      [3, 20000, 8],
    ]) {
      sides.length = 0;
      const bytes = grayBytes(n, h, w, 7);
      const out = await grayRoundTripsByMosaic(bytes, n, h, w, identity);
      assert.deepEqual(out, bytes, `${n} images of ${h}x${w}`);
      for (const [mh, mw] of sides) {
        assert.ok(mh % 8 === 0 && mw % 8 === 0, `mosaic ${mh}x${mw} is whole blocks`);
        if (h <= 16384) assert.ok(mh <= 16384 && mw <= 16384, `mosaic ${mh}x${mw} for ${h}x${w} images`);
      }
      if (n === 600) assert.equal(sides.length, 3, "256 tiles per mosaic at the most");
    }
  });
});
