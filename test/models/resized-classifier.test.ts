/**
 * ResizedClassifier: images of the data set's size resized inside the
 * differentiable model, and label maps into the 1001-class ImageNet index.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Tensor, grad, rand, tensor } from "../../src/core/tensor.js";
import { manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { ArgumentError, ShapeError } from "../../src/core/errors.js";
import * as F from "../../src/nn/functional.js";
import { Module } from "../../src/nn/module.js";
import { loadTfliteModel } from "../../src/models/tflite/model.js";
import { ABSENT_CLASS_LOGIT, ResizedClassifier, centralCrop } from "../../src/models/resized-classifier.js";
import { labelMapFromWnids } from "../../src/models/label-map.js";
import type { ImageClassifier } from "../../src/models/classifiers.js";
import { assertClose } from "../helpers/assert.js";

const fixture = fileURLToPath(new URL("../../../test/fixtures/tflite/ops-float.tflite", import.meta.url));

test("images of another size are resized (bilinear, half-pixel centres) inside the model", () => {
  const model = loadTfliteModel(fixture);
  const wrapped = new ResizedClassifier(model, { inputSize: 13 });
  assert.deepEqual(wrapped.inputShape, [3, 13, 13]);
  assert.equal(wrapped.numClasses, 8);
  const x = rand([2, 3, 13, 13]);
  const direct = noGrad(() =>
    tidy(() => model.forward(F.interpolate(x, { size: [9, 9], mode: "bilinear", alignCorners: false })).toArray()),
  );
  const ours = noGrad(() => tidy(() => wrapped.forward(x).toArray()));
  assertClose(ours, direct, { atol: 1e-6 });
  // Any size: 20x17 works too, and the model's own size is passed through untouched.
  const other = rand([1, 3, 20, 17]);
  assert.deepEqual(
    noGrad(() => tidy(() => wrapped.forward(other).shape)),
    [1, 8],
  );
  const own = rand([1, 3, 9, 9]);
  assertClose(
    noGrad(() => tidy(() => wrapped.forward(own).toArray())),
    noGrad(() => tidy(() => model.forward(own).toArray())),
    { atol: 0, rtol: 0 },
  );
  const gray = rand([1, 1, 13, 13]);
  assert.throws(() => wrapped.forward(gray), ShapeError);
  for (const t of [x, other, own, gray]) t.dispose();
  wrapped.dispose();
});

test("the gradient flows back through the resize to every region of the full-size image", () => {
  // Seeded: with some random images the fixture's ReLUs are dead over a whole border block, whose
  // gradient is then 0 for a reason that has nothing to do with the resize (about 1 run in 5 unseeded).
  manualSeed(0);
  const wrapped = new ResizedClassifier(loadTfliteModel(fixture), { inputSize: 18 });
  const x = rand([1, 3, 18, 18]).requiresGrad_(true);
  const loss = tidy(() => F.crossEntropy(wrapped.forward(x), tensor(BigInt64Array.from([3n]), [1])));
  const [g] = grad(loss, [x]);
  const abs = tidy(() => g.abs().sum([0, 1]));
  const v = abs.toArray();
  // Bilinear 18 -> 9 reads 2x2 neighbourhoods: every 2x2 block of the input gets gradient.
  for (let by = 0; by < 9; by++)
    for (let bx = 0; bx < 9; bx++) {
      const block = [0, 1].flatMap((dy) => [0, 1].map((dx) => v[(2 * by + dy) * 18 + 2 * bx + dx]));
      assert.ok(Math.max(...block) > 0, `block ${by},${bx}`);
    }
  for (const t of [x, loss, g, abs]) t.dispose();
  wrapped.dispose();
});

test("centralFraction keeps the central part of the image before the resize (tf.image.central_crop's rounding)", () => {
  const x = tensor(
    Float32Array.from({ length: 299 * 299 }, (_, i) => i),
    [1, 1, 299, 299],
  );
  const c = centralCrop(x, 0.875);
  // int((299 - 299 * 0.875) / 2) = 18 on each side: 263 rows and columns, starting at (18, 18).
  assert.deepEqual(c.shape, [1, 1, 263, 263]);
  assert.equal(c.contiguous().toArray()[0], 18 * 299 + 18);
  const model = loadTfliteModel(fixture);
  const wrapped = new ResizedClassifier(model, { inputSize: 16, centralFraction: 0.5 });
  const img = rand([1, 3, 16, 16]);
  const direct = noGrad(() =>
    tidy(() =>
      model
        .forward(
          F.interpolate(img.narrow(2, 4, 8).narrow(3, 4, 8), { size: [9, 9], mode: "bilinear", alignCorners: false }),
        )
        .toArray(),
    ),
  );
  assertClose(
    noGrad(() => tidy(() => wrapped.forward(img).toArray())),
    direct,
    { atol: 1e-6 },
  );
  assert.throws(() => new ResizedClassifier(model, { centralFraction: 1.5 }), ArgumentError);
  for (const t of [x, c, img]) t.dispose();
  wrapped.dispose();
});

/** A stand-in 1000-class model whose logit i is i / 1000 (so that a reordering is visible). */
class Ramp extends Module implements ImageClassifier {
  readonly inputShape = [3, 4, 4] as const;
  readonly numClasses = 1000;
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const ramp = tensor(
        Float32Array.from({ length: 1000 }, (_, i) => i / 1000),
        [1, 1000],
      );
      return x.mean([1, 2, 3]).reshape([-1, 1]).mul(0).add(ramp);
    });
  }
}

function wnids(): string[] {
  // 1000 distinct ids in a scrambled order (as Darknet's list is not sorted).
  return Array.from({ length: 1000 }, (_, i) => `n${String(((i * 7919) % 1000) * 13 + 1000000).padStart(8, "0")}`);
}

test("a label map reorders the outputs into the 1001-class ImageNet index, background lowest", () => {
  const ids = wnids();
  const map = labelMapFromWnids(ids, "wnids.txt");
  assert.equal(map.source.length, 1001);
  const wrapped = new ResizedClassifier(new Ramp(), { inputSize: 4, labelMap: map });
  assert.equal(wrapped.numClasses, 1001);
  const x = rand([2, 3, 4, 4]);
  const y = noGrad(() => wrapped.forward(x));
  const row = y.toArray().slice(0, 1001);
  assert.equal(row[0], ABSENT_CLASS_LOGIT);
  const sorted = [...ids].sort();
  for (const j of [1, 2, 500, 1000]) {
    // Output j is the class whose wnid is j-th in sorted order; the model had it at position ids.indexOf(...).
    assert.equal(row[j], Math.fround(ids.indexOf(sorted[j - 1]) / 1000), `output ${j}`);
  }
  // The model's top class (its last output) is found at its ImageNet index + 1.
  const top = noGrad(() => y.argmax(1)).toArray();
  const expected = sorted.indexOf(ids[999]) + 1;
  assert.deepEqual(top, [expected, expected]);
  for (const t of [x, y]) t.dispose();
  wrapped.dispose();
  // Without the background slot: the 1000-class index (TrueLabel - 1).
  assert.equal(labelMapFromWnids(ids, "wnids.txt", false).source[0], ids.indexOf(sorted[0]));
});

test("a label map for another number of classes is refused", () => {
  const model = loadTfliteModel(fixture);
  assert.throws(
    () => new ResizedClassifier(model, { labelMap: labelMapFromWnids(wnids(), "wnids.txt") }),
    (e: unknown) => e instanceof ArgumentError && /a label map for 8 classes/.test((e as Error).message),
  );
  model.dispose();
});
