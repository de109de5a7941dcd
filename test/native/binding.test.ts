/**
 * The raw addon never crashes the process: garbage arguments to every exported
 * function end in caught JavaScript errors. The calls run in a child process
 * (test/helpers/binding-fuzz.ts), so a crash would show as a signal or a
 * non-zero exit status instead of taking the test runner down.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { binding } from "../../src/binding.js";
import { TorchError } from "../../src/core/errors.js";
import { memory } from "../../src/core/engine.js";
import { assertThrowsWith } from "../helpers/assert.js";

interface Summary {
  calls: number;
  threw: number;
  returned: number;
  nonErrorThrows: number;
  functions: number;
  neverThrew: string[];
  messagesWithoutName: string[];
  wrappedCalls: number;
  wrappedNotTorchError: string[];
  special: Record<string, string>;
}

const script = fileURLToPath(new URL("../helpers/binding-fuzz.js", import.meta.url));

test("garbage into every raw binding function: the child process exits normally with caught errors", () => {
  const child = spawnSync(process.execPath, [script, "--fuzz"], {
    encoding: "utf8",
    timeout: 120_000,
    maxBuffer: 64 * 2 ** 20,
    env: { ...process.env, VAEGUARD_THREADS: "1" },
  });
  const stderrTail = (child.stderr ?? "")
    .split("\n")
    .filter((l) => !l.includes("Warning:"))
    .slice(-20)
    .join("\n");
  assert.equal(child.error, undefined, `could not run the child: ${child.error?.message}`);
  assert.equal(child.signal, null, `the child was killed by ${child.signal}\n${stderrTail}`);
  assert.equal(child.status, 0, `the child exited with ${child.status}\n${stderrTail}`);
  const lines = child.stdout.trim().split("\n");
  const s = JSON.parse(lines[lines.length - 1]) as Summary;

  assert.ok(s.functions >= 140, `only ${s.functions} functions exported`);
  assert.ok(s.calls > 50_000, `only ${s.calls} calls`);
  assert.equal(s.threw + s.returned, s.calls);
  assert.ok(s.threw > 0.5 * s.calls, "most garbage calls must be rejected");
  assert.equal(s.nonErrorThrows, 0, "every throw is an Error");
  // Only functions that take no arguments can never fail.
  assert.deepEqual(s.neverThrew.sort(), [
    "allocatorSettings",
    "getBlasThreads",
    "getChannelsLast",
    "getFastMaxPool",
    "getNumThreads",
    "isGradEnabled",
    "liveTensors",
    "ownGenerator",
    "sharedTensorCount",
    "versions",
  ]);
  // Every error names the function that raised it (convention 2 of DESIGN.md).
  assert.deepEqual(s.messagesWithoutName, []);
  // Through src/binding.ts, every failure is a TorchError.
  assert.ok(s.wrappedCalls >= 5000);
  assert.deepEqual(s.wrappedNotTorchError, []);

  const sp = s.special;
  assert.match(sp["zeros [1e12, 1e12]"], /^Error: zeros: Storage size calculation overflowed/);
  assert.match(sp["rand [1e12, 1e12]"], /^Error: rand: Storage size calculation overflowed/);
  assert.match(sp["fromBuffer overflowing shape"], /^Error: fromBuffer: Storage size calculation overflowed/);
  assert.equal(sp["zeros [NaN]"], "TypeError: zeros: expected an integer for argument 0 (shape)");
  assert.match(sp["reshape [1e12, 1e12]"], /^Error: reshape: shape '\[1000000000000, 1000000000000\]' is invalid/);
  assert.match(sp["expand [1e12, 1e12]"], /^Error: expand: .*overflow/);
  assert.equal(sp["add with a string"], "TypeError: add: expected a number for argument 1 (other)");
  assert.equal(sp["add with undefined"], "TypeError: add: expected a tensor for argument 0 (input)");
  assert.equal(sp["matmul with a plain object"], "TypeError: matmul: expected a tensor for argument 1 (other)");
  // Which missing argument is named depends on the compiler's order of evaluating arguments.
  assert.match(sp["conv2d with one argument"], /^TypeError: conv2d: expected an? \w+ for argument [1-6] \(\w+\)$/);
  assert.match(sp["fake tensor"], /^TypeError: neg: expected a tensor for argument 0 \(input\)/);
  assert.match(sp["dispose on a plain object"], /^TypeError: /);
  assert.match(sp["isDisposed on null"], /^TypeError: /);
  assert.equal(sp["isDisposed on a tensor"], "returned false");
  assert.equal(sp["dispose on a tensor"], "returned undefined");
});

test("in this process too, bad calls through the binding throw TorchError and leave the counter alone", () => {
  const start = memory().numTensors;
  assertThrowsWith(
    () => binding.zeros([1e12, 1e12], "float32"),
    TorchError,
    /^zeros: Storage size calculation overflowed with sizes=\[1000000000000, 1000000000000\]/,
  );
  assertThrowsWith(
    () => binding.zeros("abc" as unknown as number[], "float32"),
    TorchError,
    "zeros: expected an array of integers for argument 0 (shape)",
  );
  assertThrowsWith(() => binding.ones([2], "float128"), TorchError, "ones: unknown dtype 'float128'");
  assertThrowsWith(
    () => (binding.add as (...a: unknown[]) => unknown)(),
    TorchError,
    "add: expected a tensor for argument 0 (input)",
  );
  assertThrowsWith(
    () => binding.setNumThreads(2 ** 32 + 1),
    TorchError,
    "setNumThreads: threads must be between 1 and 2147483647",
  );
  assertThrowsWith(() => binding.manualSeed(0.5), TorchError, "manualSeed: expected an integer for argument 0 (seed)");
  assert.equal(memory().numTensors, start);
});

test("add_ and sub_ scale a scalar `other` by alpha, as they scale a tensor (PyTorch semantics)", () => {
  const a = binding.zeros([3], "float32");
  const b = binding.ones([3], "float32");
  try {
    binding.add_(a, 2, 3); // 0 + 3 * 2
    assert.deepEqual([...new Float32Array(binding.toBuffer(a))], [6, 6, 6]);
    binding.sub_(a, 1, 0.5); // 6 - 0.5 * 1
    assert.deepEqual([...new Float32Array(binding.toBuffer(a))], [5.5, 5.5, 5.5]);
    binding.add_(a, b, -2); // tensor other: 5.5 - 2
    assert.deepEqual([...new Float32Array(binding.toBuffer(a))], [3.5, 3.5, 3.5]);
    binding.sub_(a, 1); // alpha defaults to 1
    assert.deepEqual([...new Float32Array(binding.toBuffer(a))], [2.5, 2.5, 2.5]);
  } finally {
    a.dispose();
    b.dispose();
  }
});

test("dispose() frees the native tensor at once; a second dispose() and isDisposed() are safe", () => {
  const start = memory();
  const h = binding.zeros([1000], "float32");
  assert.equal(memory().numTensors, start.numTensors + 1);
  assert.equal(memory().numBytes, start.numBytes + 4000);
  h.dispose();
  assert.deepEqual(memory(), start);
  h.dispose();
  assert.equal(h.isDisposed(), true);
  assertThrowsWith(() => binding.neg(h), TorchError, "neg: tensor for argument 0 (input) was disposed");
});
