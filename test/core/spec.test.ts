/** The one spec grammar of attacks and defenses: splitting, typed values, flags, positionals, messages. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ArgumentError } from "../../src/core/errors.js";
import type { Schema } from "../../src/core/params.js";
import { canonicalSpec, parseNumber, readSpecArguments, specPairs, splitSpec } from "../../src/core/spec.js";
import { assertThrowsWith } from "../helpers/assert.js";

const JPEG_LIKE = {
  quality: { type: "int", min: 1, max: 100, default: 23, positional: true, doc: "quality" },
  exact: { type: "bool", default: false, flag: true, doc: "exact" },
  chunkSize: { type: "int", key: "chunk", min: 1, doc: "chunk" },
} as const satisfies Schema;

const KEYED_ONLY = {
  eps: { type: "number", required: true, inSpec: false, doc: "eps" },
  steps: { type: "int", min: 1, default: 10, doc: "steps" },
  random: { type: "bool", default: true, doc: "random" },
} as const satisfies Schema;

function read(schema: Schema, text: string, legacy = false) {
  const label = `spec "${text}"`;
  const s = splitSpec(text, legacy);
  return readSpecArguments(schema, specPairs(s.args, label), { kind: s.name, label });
}

describe("parseNumber", () => {
  test("accepts decimal numbers only", () => {
    assert.equal(parseNumber(" 0.5 "), 0.5);
    assert.equal(parseNumber("-2"), -2);
    assert.equal(parseNumber("1e-3"), 0.001);
    assert.equal(parseNumber(".5"), 0.5);
    for (const bad of ["", "0x10", "1,5", "1.2.3", "inf", "NaN", "2x"]) assert.equal(parseNumber(bad), undefined, bad);
  });
});

describe("splitSpec", () => {
  test("name lower case, arguments on ':'; commas only in the old syntax", () => {
    assert.deepEqual(splitSpec(" PGD : steps=3 :restarts=2"), {
      name: "pgd",
      rest: "steps=3 :restarts=2",
      args: ["steps=3", "restarts=2"],
      legacy: false,
    });
    assert.deepEqual(splitSpec("fgsm").args, []);
    const old = splitSpec("vae:samples=8,clip=2", true);
    assert.deepEqual([old.args, old.legacy], [["samples=8", "clip=2"], true]);
    assert.equal(splitSpec("vae:samples=8,clip=2").legacy, false);
  });
});

describe("readSpecArguments", () => {
  test("positional values, keys (also aliases, any case) and flags give typed options", () => {
    assert.deepEqual(read(JPEG_LIKE, "jpeg:50"), { quality: 50 });
    assert.deepEqual(read(JPEG_LIKE, "jpeg:QUALITY=50:exact:Chunk=4"), { quality: 50, exact: true, chunkSize: 4 });
    assert.deepEqual(read(JPEG_LIKE, "jpeg:noexact"), { exact: false });
    assert.deepEqual(read(JPEG_LIKE, "jpeg:10,exact", true), { quality: 10, exact: true });
    assert.deepEqual(read(KEYED_ONLY, "pgd:steps=3:random=false"), { steps: 3, random: false });
    assert.deepEqual(read(KEYED_ONLY, "pgd"), {});
  });

  test("messages name the bad part and the spec", () => {
    const cases: [Schema, string, string | RegExp][] = [
      [KEYED_ONLY, "pgd:stpes=3", 'Unknown parameter "stpes" in spec "pgd:stpes=3"; pgd takes steps, random'],
      [KEYED_ONLY, "pgd:eps=3", /Unknown parameter "eps"/],
      [KEYED_ONLY, "pgd:steps", 'Expected KEY=VALUE after ":" in spec "pgd:steps" but received "steps"'],
      [KEYED_ONLY, "pgd:", 'Expected KEY=VALUE after ":" in spec "pgd:" but received ""'],
      [KEYED_ONLY, "pgd:steps=", 'Expected KEY=VALUE after ":" in spec "pgd:steps=" but received "steps="'],
      [KEYED_ONLY, "pgd:steps=2.5", 'Expected integer for steps in spec "pgd:steps=2.5" but received "2.5"'],
      [KEYED_ONLY, "pgd:random=maybe", /Expected true or false for random in spec/],
      [KEYED_ONLY, "pgd:steps=1:STEPS=2", 'Parameter "steps" given twice in spec "pgd:steps=1:STEPS=2"'],
      [JPEG_LIKE, "jpeg:high", 'Unknown flag "high" in spec "jpeg:high"; expected one of exact'],
      [JPEG_LIKE, "jpeg:23:50", 'Too many values in spec "jpeg:23:50": 23, 50 (at most 1)'],
      [JPEG_LIKE, "jpeg:2x", 'Expected integer for quality in spec "jpeg:2x" but received "2x"'],
      [JPEG_LIKE, "jpeg:23:quality=3", 'Parameter "quality" given twice in spec "jpeg:23:quality=3"'],
      [JPEG_LIKE, "jpeg:23::exact", 'Empty argument in spec "jpeg:23::exact"'],
    ];
    for (const [schema, text, message] of cases) {
      assertThrowsWith(() => read(schema, text), ArgumentError, message);
    }
  });

  test("a composite positional value is read by its reader", () => {
    const schema = {
      size: { type: "int", positional: true, doc: "size" },
      stride: { type: "int", doc: "stride" },
    } as const satisfies Schema;
    const label = 'spec "p:16/8"';
    const out = readSpecArguments(schema, specPairs(["16/8"], label), {
      kind: "p",
      label,
      positional: {
        size: (raw) => {
          const [p, s] = raw.split("/").map(Number);
          return { size: p, stride: s };
        },
      },
    });
    assert.deepEqual(out, { size: 16, stride: 8 });
  });

  test("config-file values may already be typed", () => {
    const label = "attacks[0]";
    assert.deepEqual(
      readSpecArguments(
        KEYED_ONLY,
        [
          ["steps", 7],
          ["random", 0],
        ],
        { kind: "pgd", label },
      ),
      { steps: 7, random: false },
    );
    assertThrowsWith(
      () => readSpecArguments(KEYED_ONLY, [["steps", 7.5]], { kind: "pgd", label }),
      ArgumentError,
      "Expected integer for steps in attacks[0] but received 7.5",
    );
  });
});

describe("canonicalSpec", () => {
  test("given options in declaration order with their spec keys: same settings, same text", () => {
    assert.equal(canonicalSpec("jpeg", JPEG_LIKE, { chunkSize: 4, quality: 10 }), "jpeg:quality=10:chunk=4");
    assert.equal(canonicalSpec("pgd", KEYED_ONLY, {}), "pgd");
  });
});
