/** Argument checks: one message template, "Expected <what> for <name> but received <value>". */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ArgumentError } from "../../src/core/errors.js";
import {
  FLOAT_DTYPES,
  checkBool,
  checkInt,
  checkIntArray,
  checkNumber,
  checkOneOf,
  fail,
  pair,
} from "../../src/core/validate.js";
import { assertThrowsWith } from "../helpers/assert.js";

describe("validate", () => {
  test("valid values pass through unchanged", () => {
    assert.equal(checkInt(5, "k", 1, 10), 5);
    assert.equal(checkNumber(0.5, "p", 0, 1), 0.5);
    assert.equal(checkNumber(Infinity, "x"), Infinity);
    assert.equal(checkBool(false, "b"), false);
    assert.equal(checkOneOf("b", "mode", ["a", "b"]), "b");
    assert.deepEqual(checkIntArray([1, 2], "shape", 2, 0), [1, 2]);
    assert.deepEqual(pair(3, "kernel"), [3, 3]);
    assert.deepEqual(pair([2, 4], "stride", 1), [2, 4]);
  });

  test("each check names the value, the expectation with its range, and what it received", () => {
    const cases: [() => unknown, string][] = [
      [() => checkInt(0.5, "quality", 1, 100), "Expected integer between 1 and 100 for quality but received 0.5"],
      [() => checkInt(0, "steps", 1), "Expected integer of at least 1 for steps but received 0"],
      [() => checkInt(9, "bits", undefined, 8), "Expected integer of at most 8 for bits but received 9"],
      [() => checkInt("3", "n"), 'Expected integer for n but received "3"'],
      [() => checkNumber(NaN, "eps", 0, 1), "Expected number between 0 and 1 for eps but received NaN"],
      [() => checkNumber(null, "lr", 0), "Expected number of at least 0 for lr but received null"],
      [() => checkBool(1, "flag"), "Expected boolean for flag but received 1"],
      [() => checkOneOf("c", "mode", ["a", "b"]), 'Expected one of "a", "b" for mode but received "c"'],
      [() => checkIntArray([1, 2.5], "shape", 2), "Expected array of 2 integers for shape but received [1, 2.5]"],
      [() => checkIntArray({}, "shape"), "Expected array of integers for shape but received [object Object]"],
      [
        () => pair([1, 2, 3], "kernel", 1),
        "Expected array of 2 integers of at least 1 for kernel but received [1, 2, 3]",
      ],
      [() => fail("a tensor", "x", undefined), "Expected a tensor for x but received undefined"],
    ];
    for (const [fn, message] of cases) assertThrowsWith(fn, ArgumentError, message);
  });

  test("the floating-point dtypes", () => {
    assert.deepEqual([...FLOAT_DTYPES].sort(), ["bfloat16", "float16", "float32", "float64"]);
    assert.equal(FLOAT_DTYPES.has("int64"), false);
  });
});
