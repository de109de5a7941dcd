import { test } from "node:test";
import assert from "node:assert/strict";
import { MnistCnn, Cifar10Cnn } from "../../src/models/classifiers.js";
import { rand } from "../../src/core/tensor.js";
import { memory, noGrad, tidy, manualSeed } from "../../src/core/engine.js";

test("Table 1 classifiers: output shapes and PyTorch parameter names", () => {
  const before = memory().numTensors;
  const m = new MnistCnn();
  const c = new Cifar10Cnn();
  tidy(() => {
    assert.deepEqual(m.forward(rand([2, 1, 28, 28])).shape, [2, 10]);
    assert.deepEqual(c.forward(rand([2, 3, 32, 32])).shape, [2, 10]);
  });
  assert.deepEqual(
    m.namedParameters().map(([n, p]) => `${n}:${p.shape.join("x")}`),
    [
      "conv1.weight:32x1x5x5",
      "conv1.bias:32",
      "conv2.weight:64x32x5x5",
      "conv2.bias:64",
      "fc1.weight:1024x3136",
      "fc1.bias:1024",
      "fc2.weight:10x1024",
      "fc2.bias:10",
    ],
  );
  const names = [...c.stateDict().keys()];
  assert.ok(names.includes("block1a.bn.running_mean"));
  assert.ok(names.includes("block3b.bn.num_batches_tracked"));
  assert.equal(names.filter((n) => n.endsWith(".conv.weight")).length, 6);
  m.dispose();
  c.dispose();
  assert.equal(memory().numTensors, before);
});

test("batch-norm CNN: train and eval modes differ; eval mode is deterministic", () => {
  const before = memory().numTensors;
  manualSeed(1);
  const c = new Cifar10Cnn();
  const x = rand([8, 3, 32, 32]);
  tidy(() => {
    c.train();
    const a = noGrad(() => c.forward(x));
    c.eval();
    const b = noGrad(() => c.forward(x));
    const b2 = noGrad(() => c.forward(x));
    assert.ok(
      a.sub(b).abs().max().item() > 1e-4,
      "train-mode output (batch statistics, dropout) differs from eval mode",
    );
    assert.equal(b.sub(b2).abs().max().item(), 0, "eval mode gives the same output on every call");
  });
  // Training mode updated the running statistics and counted the batch.
  const st = c.stateDict();
  assert.equal(st.get("block1a.bn.num_batches_tracked")!.item(), 1);
  assert.ok(tidy(() => st.get("block1a.bn.running_mean")!.abs().sum().item()) > 0);
  x.dispose();
  c.dispose();
  assert.equal(memory().numTensors, before);
});
