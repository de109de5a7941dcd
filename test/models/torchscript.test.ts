/**
 * TorchScript classifiers: the fixture test/fixtures/torchscript/tiny_cnn.pt
 * (made by make_tiny_cnn.py beside it) must reproduce PyTorch's logits and
 * input gradient; missing and corrupt files give a CheckpointError.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { memory, noGrad, tidy } from "../../src/core/engine.js";
import { ArgumentError, CheckpointError, ShapeError } from "../../src/core/errors.js";
import { Tensor, grad, tensor, zeros } from "../../src/core/tensor.js";
import { TorchScriptClassifier, loadTorchScriptClassifier } from "../../src/models/torchscript.js";

// Compiled, this file lives in dist/test/models/; the fixtures stay in test/fixtures/.
const fixture = (f: string) => fileURLToPath(new URL(`../../../test/fixtures/torchscript/${f}`, import.meta.url));
const expected = JSON.parse(readFileSync(fixture("tiny_cnn.expected.json"), "utf8")) as {
  input_shape: number[];
  mean: number[];
  std: number[];
  logits: number[][];
  logits_train: number[][];
  grad_logit0_sum: number[];
  parameters: Record<string, number[]>;
  buffers: Record<string, number[]>;
};

function input(): Tensor {
  const [n, c, h, w] = expected.input_shape;
  const per = c * h * w;
  const v = new Float64Array(n * per);
  for (let b = 0; b < n; b++) for (let i = 0; i < per; i++) v[b * per + i] = 0.5 + 0.5 * Math.sin(0.37 * i + 0.11 * b);
  return tensor(v, [n, c, h, w], { dtype: "float32" });
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "vaeguard-ts-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("TorchScriptClassifier", () => {
  const load = () =>
    loadTorchScriptClassifier(fixture("tiny_cnn.pt"), {
      inputShape: [3, 8, 8],
      mean: expected.mean,
      std: expected.std,
    });

  test("reproduces PyTorch's logits, with the normalisation inside the wrapper", () => {
    const m = load();
    try {
      assert.equal(m.numClasses, 3);
      assert.deepEqual(m.inputShape, [3, 8, 8]);
      assert.equal(m.training, false, "saved in eval mode");
      const x = input();
      const before = memory().numTensors;
      const y = noGrad(() => m.forward(x));
      assert.equal(memory().numTensors, before + 1, "forward leaves only its result");
      assert.deepEqual(y.shape, [2, 3]);
      assert.ok(maxDiff(y.dataSync() as Float32Array, expected.logits.flat()) < 1e-5);
      x.dispose();
      y.dispose();
    } finally {
      m.dispose();
    }
  });

  test("input gradients flow through the JIT module", () => {
    const m = load();
    try {
      const g = tidy(() => {
        const x = input().requiresGrad_();
        const y = m.forward(x);
        return grad(y.select(1, 0).sum(), [x])[0];
      });
      assert.deepEqual(g.shape, expected.input_shape);
      assert.ok(maxDiff(g.dataSync() as Float32Array, expected.grad_logit0_sum) < 1e-5);
      g.dispose();
    } finally {
      m.dispose();
    }
  });

  test("train and eval switch the module's mode (batch statistics in training)", () => {
    const m = load();
    try {
      m.train();
      assert.equal(m.training, true);
      const x = input();
      const y = noGrad(() => m.forward(x));
      assert.ok(maxDiff(y.dataSync() as Float32Array, expected.logits_train.flat()) < 1e-5);
      m.eval();
      assert.equal(m.training, false);
      [x, y].forEach((t) => t.dispose());
    } finally {
      m.dispose();
    }
  });

  test("parameters and buffers are exposed by dotted name", () => {
    const m = load();
    try {
      const params = m.namedParameters();
      assert.deepEqual(Object.fromEntries(params.map(([n, t]) => [n, t.shape])), expected.parameters);
      params.forEach(([, t]) => t.dispose());
      const state = m.stateDict();
      for (const [n, s] of Object.entries(expected.buffers)) assert.deepEqual(state.get(n)?.shape, s, n);
      assert.equal(state.size, Object.keys(expected.parameters).length + Object.keys(expected.buffers).length);
      state.forEach((t) => t.dispose());
    } finally {
      m.dispose();
    }
  });

  test("the number of classes can be given, and wrong input shapes are named", () => {
    const m = TorchScriptClassifier.load(fixture("tiny_cnn.pt"), { inputShape: [3, 8, 8], numClasses: 3 });
    try {
      const bad = zeros([1, 3, 9, 9]);
      assert.throws(
        () => m.forward(bad),
        (e: unknown) => e instanceof ShapeError && /expected images \[N, 3, 8, 8\]/.test((e as Error).message),
      );
      bad.dispose();
    } finally {
      m.dispose();
    }
    const m2 = load();
    assert.throws(() => m2.forward(null as unknown as Tensor), ArgumentError);
    m2.dispose();
  });

  test("a missing file is a CheckpointError naming it", () => {
    const file = join(dir, "missing.pt");
    assert.throws(
      () => loadTorchScriptClassifier(file, { inputShape: [3, 8, 8] }),
      (e: unknown) => e instanceof CheckpointError && e.file === file && /file not found/.test((e as Error).message),
    );
  });

  test("a corrupt file is a CheckpointError, and the process survives libtorch's exception", () => {
    const junk = join(dir, "junk.pt");
    writeFileSync(junk, "this is not a zip archive");
    assert.throws(
      () => loadTorchScriptClassifier(junk, { inputShape: [3, 8, 8] }),
      (e: unknown) =>
        e instanceof CheckpointError &&
        e.file === junk &&
        /not a loadable TorchScript module/.test((e as Error).message),
    );
    const truncated = join(dir, "truncated.pt");
    const bytes = readFileSync(fixture("tiny_cnn.pt"));
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    assert.throws(() => loadTorchScriptClassifier(truncated, { inputShape: [3, 8, 8] }), CheckpointError);
  });

  test("a module that does not fit the declared input shape is reported at load", () => {
    assert.throws(
      () => loadTorchScriptClassifier(fixture("tiny_cnn.pt"), { inputShape: [3, 16, 16] }),
      (e: unknown) =>
        e instanceof CheckpointError && /does not run on \[1, 3, 16, 16\] inputs/.test((e as Error).message),
    );
  });
});
