/** Parameter declarations: option checks, computed defaults, describe and --help text from one schema. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ArgumentError } from "../../src/core/errors.js";
import {
  defaultText,
  describeParams,
  describeValues,
  expectation,
  readOptions,
  type Schema,
} from "../../src/core/params.js";
import { fail } from "../../src/core/validate.js";
import { assertThrowsWith } from "../helpers/assert.js";

const SCHEMA = {
  eps: { type: "number", min: 0, max: 1, required: true, inSpec: false, doc: "budget" },
  steps: { type: "int", min: 1, default: 10, doc: "iterations" },
  stepSize: {
    type: "number",
    min: 0,
    default: (v) => (v.eps as number) / (v.steps as number),
    defaultText: "eps / steps",
    doc: "step size",
  },
  mode: { type: "choice", choices: ["a", "b"], default: "a", doc: "mode" },
  exact: {
    type: "bool",
    default: false,
    flag: true,
    doc: "exactness",
    check: (on: boolean, v) => {
      if (on && v.mode === "b") fail("false with mode b", "exact", on);
    },
  },
  seed: { type: "int", min: 0, doc: "seed" },
} as const satisfies Schema;

describe("readOptions", () => {
  test("fills defaults in declaration order, computed ones from earlier values", () => {
    const v = readOptions("T", SCHEMA, { eps: 0.5, steps: 5 });
    assert.deepEqual(v, { eps: 0.5, steps: 5, stepSize: 0.1, mode: "a", exact: false, seed: undefined });
    assert.equal(readOptions("T", SCHEMA, { eps: 0.5, stepSize: 0.3 }).stepSize, 0.3);
  });

  test("checks type and range with the one message template, and extra checks", () => {
    assertThrowsWith(
      () => readOptions("T", SCHEMA, { eps: 2 }),
      ArgumentError,
      "Expected number between 0 and 1 for eps but received 2",
    );
    assertThrowsWith(
      () => readOptions("T", SCHEMA, { eps: 0.1, steps: 1.5 }),
      ArgumentError,
      /integer of at least 1 for steps/,
    );
    assertThrowsWith(
      () => readOptions("T", SCHEMA, { eps: 0.1, mode: "c" }),
      ArgumentError,
      /one of "a", "b" for mode/,
    );
    assertThrowsWith(
      () => readOptions("T", SCHEMA, { eps: 0.1, mode: "b", exact: true }),
      ArgumentError,
      "Expected false with mode b for exact but received true",
    );
    // A required parameter is checked even when missing.
    assertThrowsWith(() => readOptions("T", SCHEMA, {}), ArgumentError, /for eps but received undefined/);
  });

  test("unknown names and non-objects are rejected, naming the owner", () => {
    assertThrowsWith(
      () => readOptions("T", SCHEMA, { eps: 0.1, step: 3 }),
      ArgumentError,
      'Unknown option "step" for T; expected one of eps, steps, stepSize, mode, exact, seed',
    );
    assertThrowsWith(() => readOptions("T", SCHEMA, undefined), ArgumentError, /Expected an options object for T/);
    assertThrowsWith(() => readOptions("T", SCHEMA, [1]), ArgumentError, /an options object for T/);
    // Without required parameters, no options is the defaults.
    assert.deepEqual(readOptions("U", { k: { type: "int", default: 3, doc: "k" } }, undefined), { k: 3 });
  });
});

describe("describing a schema", () => {
  test("values in declaration order without unset ones; expectations and defaults as text", () => {
    const v = readOptions("T", SCHEMA, { eps: 0.5 });
    assert.deepEqual(Object.keys(describeValues(SCHEMA, v)), ["eps", "steps", "stepSize", "mode", "exact"]);
    assert.equal(expectation(SCHEMA.steps), "integer of at least 1");
    assert.equal(expectation(SCHEMA.eps), "number between 0 and 1");
    assert.equal(defaultText(SCHEMA.stepSize), "eps / steps");
    assert.equal(defaultText(SCHEMA.steps), "10");
    assert.equal(defaultText(SCHEMA.eps), "required");
    assert.equal(defaultText(SCHEMA.seed), "none");
  });

  test("--help lines: one per spec parameter, with doc, range and default", () => {
    const lines = describeParams(SCHEMA);
    assert.equal(lines.length, 5, "eps is not set in a spec");
    assert.match(lines[0], /^ {4}steps=N +iterations \(integer of at least 1; default 10\)$/);
    assert.match(lines[1], /stepSize=X +step size \(number of at least 0; default eps \/ steps\)/);
    assert.match(lines[3], /exact, noexact +exactness/);
  });
});
