/**
 * The error family: ShapeError naming the shapes, TorchError carrying
 * libtorch's message, ArgumentError with the one message template of
 * validate.ts.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { tidy } from "../../src/core/engine.js";
import {
  ArgumentError,
  CheckpointError,
  DataError,
  DisposedError,
  ShapeError,
  TorchError,
  VaeguardError,
} from "../../src/core/errors.js";
import { cat, grad, ones, randint, randn, stack, tensor, zeros } from "../../src/core/tensor.js";
import { checkBool, checkInt, checkIntArray, checkNumber, checkOneOf, fail, pair } from "../../src/core/validate.js";
import * as F from "../../src/nn/functional.js";
import { assertThrowsWith, leakFree } from "../helpers/assert.js";

/** Run inside tidy so that the operands made for a failing call are freed. */
function throwsIn(fn: () => unknown, cls: new (...args: never[]) => Error, message: RegExp | string): Error {
  return tidy(() => assertThrowsWith(fn, cls, message));
}

describe("the error classes", () => {
  test("form one family and carry their names", () => {
    for (const cls of [TorchError, ArgumentError, ShapeError, DisposedError]) {
      const e = new cls("m");
      assert.ok(e instanceof VaeguardError && e instanceof Error);
      assert.equal(e.name, cls.name);
    }
    const c = new CheckpointError("model.safetensors", "missing tensor 'w'");
    assert.equal(c.file, "model.safetensors");
    assert.equal(c.message, "model.safetensors: missing tensor 'w'");
    assert.equal(c.name, "CheckpointError");
    const d = new DataError("train.idx", "truncated");
    assert.equal(d.message, "train.idx: truncated");
  });
});

describe("ShapeError names the shapes", () => {
  test(
    "add of unbroadcastable shapes",
    leakFree(() => {
      throwsIn(
        () => ones([2, 3]).add(ones([4])),
        ShapeError,
        "add: shapes [2, 3] and [4] cannot be broadcast together",
      );
      throwsIn(() => ones([2, 3]).mul(ones([3, 2])), ShapeError, /mul: shapes \[2, 3\] and \[3, 2\]/);
      // Broadcastable shapes are fine.
      tidy(() => assert.deepEqual(ones([2, 1, 3]).add(ones([4, 1])).shape, [2, 4, 3]));
    }),
  );

  test(
    "matmul",
    leakFree(() => {
      throwsIn(
        () => ones([2, 3]).matmul(ones([4, 5])),
        ShapeError,
        "matmul: shapes [2, 3] and [4, 5] do not fit (3 != 4)",
      );
      throwsIn(() => ones([2, 3]).matmul(ones([2])), ShapeError, /matmul: shapes \[2, 3\] and \[2\]/);
      throwsIn(() => ones([]).matmul(ones([2])), ShapeError, /at least one dimension/);
    }),
  );

  test(
    "conv2d channel mismatch, wrong rank, kernel larger than input, bias",
    leakFree(() => {
      throwsIn(
        () => F.conv2d(ones([1, 3, 8, 8]), ones([4, 2, 3, 3])),
        ShapeError,
        "conv2d: input has 3 channels but weight [4, 2, 3, 3] with groups=1 expects 2",
      );
      throwsIn(
        () => F.conv2d(ones([3, 8, 8]), ones([4, 3, 3, 3])),
        ShapeError,
        "conv2d: expected input of rank 4 [N, C, H, W] but received shape [3, 8, 8]",
      );
      throwsIn(
        () => F.conv2d(ones([1, 3, 2, 2]), ones([4, 3, 3, 3])),
        ShapeError,
        /kernel 3x3 is larger .*\[1, 3, 2, 2\]/,
      );
      throwsIn(
        () => F.conv2d(ones([1, 3, 4, 4]), ones([4, 3, 3, 3]), ones([5])),
        ShapeError,
        "conv2d: bias of shape [5] does not match 4 output channels",
      );
      throwsIn(
        () => F.convTranspose2d(ones([1, 3, 4, 4]), ones([4, 3, 3, 3])),
        ShapeError,
        /convTranspose2d: input has 3 channels but weight \[4, 3, 3, 3\] expects 4/,
      );
    }),
  );

  test(
    "crossEntropy and nllLoss target shape",
    leakFree(() => {
      throwsIn(
        () => F.crossEntropy(randn([4, 5]), tensor([1, 2, 3], [3], { dtype: "int64" })),
        ShapeError,
        /crossEntropy: target of shape \[3\] does not fit logits \[4, 5\]/,
      );
      throwsIn(
        () => F.nllLoss(randn([4, 5]), tensor([[1, 2]], [1, 2], { dtype: "int64" })),
        ShapeError,
        /nllLoss: target of shape \[1, 2\] does not fit logits \[4, 5\]/,
      );
    }),
  );

  test(
    "other shape checks: losses, linear, reshape, permute, cat, stack, tensor(), batchNorm, backward, grad",
    leakFree(() => {
      throwsIn(() => F.mseLoss(ones([2]), ones([3])), ShapeError, "mseLoss: input [2] and target [3] differ in shape");
      throwsIn(() => F.bceLoss(ones([2]), ones([2, 1])), ShapeError, /bceLoss: input \[2\] and target \[2, 1\]/);
      throwsIn(
        () => F.linear(ones([2, 3]), ones([4, 5])),
        ShapeError,
        /linear: input of shape \[2, 3\] does not fit weight \[4, 5\]/,
      );
      throwsIn(() => zeros([2, 3]).reshape(4, 2), ShapeError, "reshape: cannot reshape [2, 3] (6 elements) to [4, 2]");
      throwsIn(() => zeros([2, 3]).permute(1), ShapeError, "permute: 1 dims given for a tensor of rank 2");
      throwsIn(
        () => cat([zeros([2, 3]), zeros([3, 2])]),
        ShapeError,
        /cat: shapes \[2, 3\], \[3, 2\] differ outside dimension 0/,
      );
      throwsIn(() => stack([zeros([2]), zeros([3])]), ShapeError, "stack: shapes [2], [3] differ");
      throwsIn(() => tensor([[1, 2], [3]]), ShapeError, /ragged/);
      throwsIn(() => tensor([1, 2, 3], [2, 2]), ShapeError, "tensor: shape [2, 2] needs 4 values but 3 were given");
      throwsIn(
        () => F.batchNorm(ones([2, 3]), { weight: ones([4]), training: true }),
        ShapeError,
        "batchNorm: weight of shape [4] does not match 3 channels",
      );
      throwsIn(() => ones([2]).requiresGrad_().mul(2).backward(), ShapeError, /backward: a gradient is needed .*\[2\]/);
      throwsIn(
        () => {
          const x = ones([2]).requiresGrad_();
          grad(x.mul(2), [x]);
        },
        ShapeError,
        /grad: output of shape \[2\] needs gradOutputs/,
      );
    }),
  );
});

describe("TorchError carries libtorch's message", () => {
  test(
    "crossEntropy with float class targets",
    leakFree(() => {
      const e = throwsIn(
        () => F.crossEntropy(randn([4, 5]), tensor([1, 2, 3, 0])),
        TorchError,
        "crossEntropy: expected scalar type Long but found Float",
      );
      assert.ok(e.cause instanceof Error, "the native error is kept as the cause");
    }),
  );

  test(
    "indexSelect with a float index, and out of range",
    leakFree(() => {
      throwsIn(
        () => randn([4, 5]).indexSelect(0, tensor([1, 2])),
        TorchError,
        /^indexSelect: index_select\(\): Expected dtype int32 or int64 for index/,
      );
      throwsIn(
        () => randn([4, 5]).indexSelect(0, tensor([1, 9], [2], { dtype: "int64" })),
        TorchError,
        /^indexSelect: index out of range/,
      );
    }),
  );

  test(
    "other libtorch errors: class out of range, bceLoss outside [0, 1], backward without graph, in-place on a leaf",
    leakFree(() => {
      throwsIn(
        () => F.crossEntropy(randn([2, 3]), tensor([0, 3], [2], { dtype: "int64" })),
        TorchError,
        /^crossEntropy: Target 3 is out of bounds/,
      );
      throwsIn(
        () => F.bceLoss(tensor([1.5]), tensor([1])),
        TorchError,
        /^bceLoss: all elements of input should be between 0 and 1/,
      );
      throwsIn(() => ones([1]).backward(), TorchError, /^backward: element 0 of tensors does not require grad/);
      throwsIn(() => ones([2]).requiresGrad_().add_(1), TorchError, /^add_: a leaf Variable that requires grad/);
      throwsIn(
        () => F.avgPool2d(ones([1, 1, 4, 4]), 2, { padding: 2 }),
        TorchError,
        /^avgPool2d: pad should be at most half/,
      );
    }),
  );

  test(
    "messages name the op once and carry no C++ backtrace",
    leakFree(() => {
      const e = throwsIn(() => randn([4, 5]).indexSelect(0, tensor([1.5])), TorchError, /^indexSelect: /);
      assert.doesNotMatch(e.message, /Exception raised from|frame #|\.cpp:\d+/);
      assert.equal(e.message.split("indexSelect:").length, 2);
    }),
  );
});

describe("ArgumentError uses one template", () => {
  test("validate.ts: the template and each check", () => {
    assertThrowsWith(
      () => checkInt(0.5, "quality", 1, 100),
      ArgumentError,
      "Expected integer between 1 and 100 for quality but received 0.5",
    );
    assertThrowsWith(
      () => checkInt(101, "quality", 1, 100),
      ArgumentError,
      "Expected integer between 1 and 100 for quality but received 101",
    );
    assertThrowsWith(
      () => checkInt("7", "quality", 1, 100),
      ArgumentError,
      'Expected integer between 1 and 100 for quality but received "7"',
    );
    assert.equal(checkInt(1, "quality", 1, 100), 1);
    assert.equal(checkInt(100, "quality", 1, 100), 100);
    assertThrowsWith(
      () => checkInt(-1, "steps", 0),
      ArgumentError,
      "Expected integer of at least 0 for steps but received -1",
    );
    assertThrowsWith(
      () => checkInt(9, "k", undefined, 8),
      ArgumentError,
      "Expected integer of at most 8 for k but received 9",
    );
    assertThrowsWith(() => checkInt(NaN, "n"), ArgumentError, "Expected integer for n but received NaN");
    assertThrowsWith(
      () => checkNumber(NaN, "eps", 0),
      ArgumentError,
      "Expected number of at least 0 for eps but received NaN",
    );
    assertThrowsWith(
      () => checkNumber(2, "p", 0, 1),
      ArgumentError,
      "Expected number between 0 and 1 for p but received 2",
    );
    assertThrowsWith(() => checkNumber(null, "lr"), ArgumentError, "Expected number for lr but received null");
    assert.equal(checkNumber(Infinity, "p"), Infinity);
    assertThrowsWith(() => checkBool(1, "nesterov"), ArgumentError, "Expected boolean for nesterov but received 1");
    assertThrowsWith(
      () => checkOneOf("avg", "reduction", ["mean", "sum"] as const),
      ArgumentError,
      'Expected one of "mean", "sum" for reduction but received "avg"',
    );
    assertThrowsWith(
      () => checkIntArray([1, 2.5], "size", 2, 1),
      ArgumentError,
      "Expected array of 2 integers of at least 1 for size but received [1, 2.5]",
    );
    assertThrowsWith(
      () => checkIntArray({}, "size"),
      ArgumentError,
      "Expected array of integers for size but received [object Object]",
    );
    assertThrowsWith(() => pair([1, 2, 3], "kernelSize", 1), ArgumentError, /for kernelSize but received \[1, 2, 3\]/);
    assert.deepEqual(pair(3, "kernelSize", 1), [3, 3]);
    assert.deepEqual(pair([2, 5], "kernelSize", 1), [2, 5]);
    assertThrowsWith(
      () => fail("a tensor", "input", undefined),
      ArgumentError,
      "Expected a tensor for input but received undefined",
    );
  });

  test(
    "invalid arguments of ops are caught in TypeScript before libtorch",
    leakFree(() => {
      const x = ones([1, 1, 4, 4]);
      const cases: [() => unknown, string][] = [
        [() => F.maxPool2d(x, -1), "Expected integer of at least 1 for kernelSize but received -1"],
        [() => F.avgPool2d(x, [2, 0]), "Expected array of 2 integers of at least 1 for kernelSize but received [2, 0]"],
        [
          () => F.conv2d(x, ones([1, 1, 3, 3]), null, { stride: 0 }),
          "Expected integer of at least 1 for stride but received 0",
        ],
        [
          () => F.conv2d(x, ones([1, 1, 3, 3]), null, { groups: 1.5 }),
          "Expected integer of at least 1 for groups but received 1.5",
        ],
        [() => F.unfold(x, 0), "Expected integer of at least 1 for kernelSize but received 0"],
        [() => F.avgPool2d(x, 2, { padding: -1 }), "Expected integer of at least 0 for padding but received -1"],
        [() => F.dropout(x, 1.5, true), "Expected number between 0 and 1 for p but received 1.5"],
        [() => F.interpolate(x, { size: 0 }), "Expected integer of at least 1 for size but received 0"],
        [
          () => F.interpolate(x, { size: 2, mode: "bicubic" as "bilinear" }),
          'Expected one of "nearest", "bilinear" for mode but received "bicubic"',
        ],
        [
          () => F.mseLoss(x, x, "avg" as "mean"),
          'Expected one of "mean", "sum", "none" for reduction but received "avg"',
        ],
        [
          () => F.crossEntropy(ones([2, 3]), ones([2, 3]), "mean", 2),
          "Expected number between 0 and 1 for labelSmoothing but received 2",
        ],
        [
          () => F.batchNorm(ones([2, 3]), { training: true, momentum: -0.1 }),
          "Expected number between 0 and 1 for momentum but received -0.1",
        ],
        [
          () => zeros([2], { dtype: "float128" as "float32" }),
          /^Expected one of "float32", .* for dtype but received "float128"$/.source,
        ],
        [() => zeros([2, -1]), "Expected array of non-negative integers for shape but received [2, -1]"],
        [() => zeros([NaN]), "Expected array of non-negative integers for shape but received [NaN]"],
        [() => randint(5, 5, [2]), "Expected integer of at least 6 for high but received 5"],
        [
          () => ones([2]).add("x" as unknown as number),
          'Expected a tensor or a number for the argument of add but received "x"',
        ],
        [
          () => ones([2]).pad([1, 2, 3]),
          "Expected array of an even number of integers for pads but received [1, 2, 3]",
        ],
        [() => ones([2]).normal_(0, -1), "Expected number of at least 0 for std but received -1"],
        [() => ones([2]).topk(0), "Expected integer of at least 1 for k but received 0"],
        [
          () => tensor(["a"] as unknown as number[]),
          'Expected numbers, nested arrays of numbers, or a typed array for data but received "a"',
        ],
        [() => grad(ones([1]), [ones([1])]), "grad: inputs[0] does not require grad; call requiresGrad_() on it first"],
      ];
      for (const [fn, message] of cases) {
        const expected = message.startsWith("^") ? new RegExp(message) : message;
        throwsIn(fn, ArgumentError, expected);
      }
      x.dispose();
    }),
  );
});
