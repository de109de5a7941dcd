/**
 * Module: dotted parameter names (matching PyTorch's state-dict keys), state
 * dicts and their checks, train/eval propagation, and PyTorch's default
 * initialisation bounds.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { CheckpointError, VaeguardError } from "../../src/core/errors.js";
import { Tensor, ones, rand, tensor, zeros } from "../../src/core/tensor.js";
import {
  BatchNorm2d,
  Conv2d,
  ConvTranspose2d,
  Dropout,
  Flatten,
  Linear,
  MaxPool2d,
  ReLU,
  Sequential,
} from "../../src/nn/layers.js";
import { Module } from "../../src/nn/module.js";
import { fans } from "../../src/nn/init.js";
import { assertThrowsWith, leakFree } from "../helpers/assert.js";
import { readGolden } from "../helpers/golden.js";

class Encoder extends Module {
  readonly conv1: Conv2d;
  readonly body: Sequential;
  constructor() {
    super();
    this.conv1 = this.registerModule("conv1", new Conv2d(1, 2, 3));
    this.body = this.registerModule("body", new Sequential(new BatchNorm2d(2), new ReLU(), new Dropout(0.5)));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.body.forward(this.conv1.forward(x)));
  }
}

class AutoEncoder extends Module {
  readonly encoder = this.registerModule("encoder", new Encoder());
  readonly scale = this.registerParameter("scale", ones([1]));
  forward(x: Tensor): Tensor {
    return tidy(() => this.encoder.forward(x).mul(this.scale));
  }
}

/** Fresh copies of a state dict's tensors (the caller disposes them). */
function copyState(m: Module): Map<string, Tensor> {
  return new Map([...m.stateDict()].map(([k, v]) => [k, noGrad(() => v.clone())]));
}

function disposeState(s: Map<string, Tensor>): void {
  for (const t of s.values()) t.dispose();
}

describe("named parameters", () => {
  test(
    "nested Sequential: children are named by position",
    leakFree(() => {
      const m = new Sequential(new Linear(4, 3), new ReLU(), new Sequential(new Linear(3, 2), new Linear(2, 1)));
      assert.deepEqual(
        m.namedParameters().map(([n, p]) => [n, p.shape]),
        [
          ["0.weight", [3, 4]],
          ["0.bias", [3]],
          ["2.0.weight", [2, 3]],
          ["2.0.bias", [2]],
          ["2.1.weight", [1, 2]],
          ["2.1.bias", [1]],
        ],
      );
      assert.equal(m.parameters().length, 6);
      assert.equal(m.numParameters(), 12 + 3 + 6 + 2 + 2 + 1);
      assert.ok(m.parameters().every((p) => p.requiresGrad && p.isLeaf));
      m.dispose();
    }),
  );

  test(
    "custom modules: dotted paths through named children, buffers included in the state dict",
    leakFree(() => {
      const m = new AutoEncoder();
      assert.deepEqual(
        m.namedParameters().map(([n]) => n),
        ["scale", "encoder.conv1.weight", "encoder.conv1.bias", "encoder.body.0.weight", "encoder.body.0.bias"],
      );
      assert.deepEqual(
        m.namedBuffers().map(([n]) => n),
        ["encoder.body.0.running_mean", "encoder.body.0.running_var", "encoder.body.0.num_batches_tracked"],
      );
      assert.equal(m.stateDict().size, 8);
      assert.deepEqual(
        m.children().map(([n]) => n),
        ["encoder"],
      );
      m.dispose();
    }),
  );

  test(
    "state-dict keys and shapes equal PyTorch's for the same architecture",
    leakFree(() => {
      const torchKeys = readGolden<{ keys: [string, number[]][] }>("state_dict_keys.json").keys;
      const m = new Sequential(
        new Conv2d(1, 4, 3),
        new BatchNorm2d(4),
        new ReLU(),
        new Sequential(new Flatten(), new Linear(4 * 6 * 6, 10)),
      );
      const ours = [...m.stateDict()].map(([k, v]) => [k, v.shape]);
      assert.deepEqual(ours.map(([k]) => k).sort(), torchKeys.map(([k]) => k).sort());
      assert.deepEqual(new Map(ours as [string, number[]][]), new Map(torchKeys));
      m.dispose();
    }),
  );

  test("names must be unique and free of dots", () => {
    class Bad extends Module {
      constructor(name: string, twice: boolean) {
        super();
        this.registerModule(name, new ReLU());
        if (twice) this.registerModule(name, new ReLU());
      }
      forward(x: Tensor): Tensor {
        return x;
      }
    }
    assertThrowsWith(() => new Bad("a.b", false), VaeguardError, "Invalid parameter or module name 'a.b'");
    assertThrowsWith(() => new Bad("", false), VaeguardError, /Invalid parameter or module name/);
    assertThrowsWith(() => new Bad("x", true), VaeguardError, "Name 'x' is already registered in Bad");
  });
});

describe("state dicts", () => {
  test(
    "round trip: loading one model's state into another makes them compute the same",
    leakFree(() => {
      manualSeed(1);
      const a = new AutoEncoder().eval();
      const b = new AutoEncoder().eval();
      tidy(() => {
        noGrad(() => {
          a.encoder.body.layers[0].namedBuffers()[0][1].add_(0.5); // running_mean
          a.scale.fill_(2);
        });
        const x = rand([2, 1, 5, 5]);
        assert.notDeepEqual(b.forward(x).toArray(), a.forward(x).toArray());
        const saved = copyState(a);
        b.loadStateDict(saved);
        disposeState(saved);
        assert.deepEqual(b.forward(x).toArray(), a.forward(x).toArray());
        for (const [k, v] of b.stateDict()) assert.deepEqual(v.toArray(), a.stateDict().get(k)!.toArray(), k);
        // Loading copies: changing the source afterwards leaves the target alone.
        const before = b.scale.toArray();
        const again = a.stateDict();
        const c = new AutoEncoder();
        c.loadStateDict(again);
        noGrad(() => a.scale.fill_(7));
        assert.deepEqual(c.scale.toArray(), before);
        // Parameters stay parameters after loading.
        assert.ok(c.parameters().every((p) => p.requiresGrad));
        c.dispose();
      });
      a.dispose();
      b.dispose();
    }),
  );

  test(
    "values of another dtype are converted to the model's dtype",
    leakFree(() => {
      const m = new Linear(2, 1);
      const state = new Map([
        ["weight", tensor([1, 2], [1, 2], { dtype: "float64" })],
        ["bias", tensor([0.5], [1], { dtype: "float64" })],
      ]);
      m.loadStateDict(state);
      assert.equal(m.weight.dtype, "float32");
      assert.deepEqual(m.weight.toArray(), [1, 2]);
      assert.deepEqual(m.bias!.toArray(), [0.5]);
      disposeState(state);
      m.dispose();
    }),
  );

  test(
    "a missing key gives a CheckpointError naming it and the source",
    leakFree(() => {
      const m = new Sequential(new Linear(2, 3), new Linear(3, 1));
      const s = copyState(m);
      s.get("1.bias")!.dispose();
      s.delete("1.bias");
      const e = assertThrowsWith(
        () => m.loadStateDict(s, { source: "ckpt.safetensors" }),
        CheckpointError,
        "ckpt.safetensors: missing tensor '1.bias' (expected shape [1])",
      );
      assert.equal((e as CheckpointError).file, "ckpt.safetensors");
      assertThrowsWith(() => m.loadStateDict(s), CheckpointError, /^state dict: missing tensor '1.bias'/);
      disposeState(s);
      m.dispose();
    }),
  );

  test(
    "an unexpected key gives a CheckpointError naming it, unless strict is off",
    leakFree(() => {
      const m = new Sequential(new Linear(2, 3));
      const s = copyState(m);
      s.set("1.weight", zeros([1, 3]));
      const before = m.parameters().map((p) => p.toArray());
      assertThrowsWith(
        () => m.loadStateDict(s, { source: "extra.bin" }),
        CheckpointError,
        "extra.bin: unexpected tensor '1.weight' for this model",
      );
      // Nothing was copied by the failed load.
      assert.deepEqual(
        m.parameters().map((p) => p.toArray()),
        before,
      );
      m.loadStateDict(s, { strict: false });
      disposeState(s);
      m.dispose();
    }),
  );

  test(
    "a mismatched shape gives a CheckpointError naming the key and both shapes",
    leakFree(() => {
      const m = new Sequential(new Conv2d(1, 4, 3), new BatchNorm2d(4));
      const s = copyState(m);
      s.get("1.running_var")!.dispose();
      s.set("1.running_var", ones([5]));
      assertThrowsWith(
        () => m.loadStateDict(s, { source: "bn.ckpt" }),
        CheckpointError,
        "bn.ckpt: tensor '1.running_var' has shape [5] but this model needs [4]",
      );
      disposeState(s);
      m.dispose();
    }),
  );
});

describe("train and eval", () => {
  test(
    "train()/eval() reach every descendant and change what Dropout and BatchNorm do",
    leakFree(() => {
      manualSeed(2);
      const m = new AutoEncoder();
      const all = (mod: Module): Module[] => [mod, ...mod.children().flatMap(([, c]) => all(c))];
      assert.ok(all(m).every((x) => x.training));
      assert.equal(m.eval(), m);
      assert.ok(all(m).every((x) => !x.training));
      tidy(() => {
        const x = rand([4, 1, 6, 6]);
        const bn = m.encoder.body.layers[0] as BatchNorm2d;
        const rm = bn.runningMean.toArray();
        // eval: deterministic, running statistics untouched.
        assert.deepEqual(m.forward(x).toArray(), m.forward(x).toArray());
        assert.deepEqual(bn.runningMean.toArray(), rm);
        assert.equal(bn.numBatchesTracked.item(), 0);
        m.train();
        assert.ok(all(m).every((mod) => mod.training));
        const y1 = m.forward(x).toArray();
        const y2 = m.forward(x).toArray();
        assert.notDeepEqual(y1, y2, "dropout is random in training");
        assert.ok(y1.filter((v) => v === 0).length > 0);
        assert.notDeepEqual(bn.runningMean.toArray(), rm, "training updates the running mean");
        assert.equal(bn.numBatchesTracked.item(), 2);
        assert.equal(bn.numBatchesTracked.dtype, "int64");
        m.train(false);
        assert.ok(all(m).every((mod) => !mod.training));
      });
      m.dispose();
    }),
  );

  test(
    "BatchNorm2d in training updates running statistics as PyTorch does (momentum 0.1, unbiased variance)",
    leakFree(() => {
      const bn = new BatchNorm2d(1);
      tidy(() => {
        const x = tensor([1, 2, 3, 4], [4, 1, 1, 1]);
        bn.forward(x);
        // mean 2.5, unbiased variance 5/3
        assert.ok(Math.abs(bn.runningMean.item() - 0.25) < 1e-6);
        assert.ok(Math.abs(bn.runningVar.item() - (0.9 + 0.1 * (5 / 3))) < 1e-6);
      });
      bn.dispose();
    }),
  );
});

describe("initialisation", () => {
  /** All weights within the bound and, for large tensors, spread over most of it (a uniform draw, not a constant). */
  function assertUniformWithin(t: Tensor, bound: number, what: string): void {
    const v = t.toArray();
    const maxAbs = Math.max(...v.map(Math.abs));
    assert.ok(maxAbs <= bound * (1 + 1e-6), `${what}: |w| reaches ${maxAbs} > ${bound}`);
    assert.ok(
      v.some((e) => e !== v[0]),
      `${what}: constant`,
    );
    if (v.length >= 100) {
      // Loose statistics only where there are enough draws.
      assert.ok(maxAbs > 0.9 * bound, `${what}: |w| only reaches ${maxAbs} of ${bound}`);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      assert.ok(Math.abs(mean) < 0.2 * bound, `${what}: mean ${mean}`);
    }
  }

  test(
    "Linear and Conv2d weights and biases lie within ±1/sqrt(fan_in), as PyTorch's defaults",
    leakFree(() => {
      manualSeed(11);
      const layers: [string, Linear | Conv2d | ConvTranspose2d, number][] = [
        ["Linear(50, 20)", new Linear(50, 20), 50],
        ["Linear(3, 200)", new Linear(3, 200), 3],
        ["Conv2d(3, 8, 3)", new Conv2d(3, 8, 3), 27],
        ["Conv2d(4, 6, [3, 5], groups 2)", new Conv2d(4, 6, [3, 5], { groups: 2 }), 2 * 15],
        // PyTorch takes fan_in of a transposed convolution from weight.size(1) = out / groups.
        ["ConvTranspose2d(4, 6, 3)", new ConvTranspose2d(4, 6, 3), 6 * 9],
      ];
      for (const [what, layer, fanIn] of layers) {
        assert.equal(fans(layer.weight.shape)[0], fanIn, `${what}: fan_in`);
        assertUniformWithin(layer.weight, 1 / Math.sqrt(fanIn), `${what} weight`);
        assertUniformWithin(layer.bias!, 1 / Math.sqrt(fanIn), `${what} bias`);
        layer.dispose();
      }
      const noBias = new Conv2d(2, 2, 1, { bias: false });
      assert.equal(noBias.bias, null);
      assert.deepEqual(
        noBias.namedParameters().map(([n]) => n),
        ["weight"],
      );
      noBias.dispose();
      const bn = new BatchNorm2d(3);
      assert.deepEqual(bn.weight.toArray(), [1, 1, 1]);
      assert.deepEqual(bn.bias.toArray(), [0, 0, 0]);
      assert.deepEqual(bn.runningVar.toArray(), [1, 1, 1]);
      bn.dispose();
    }),
  );

  test(
    "manualSeed makes initialisation reproducible",
    leakFree(() => {
      manualSeed(5);
      const a = new Sequential(new Conv2d(1, 2, 3), new MaxPool2d(2), new Flatten(), new Linear(2, 2));
      manualSeed(5);
      const b = new Sequential(new Conv2d(1, 2, 3), new MaxPool2d(2), new Flatten(), new Linear(2, 2));
      assert.deepEqual(
        a.parameters().map((p) => p.toArray()),
        b.parameters().map((p) => p.toArray()),
      );
      a.dispose();
      b.dispose();
    }),
  );
});
