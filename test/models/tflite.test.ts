/**
 * TFLite import against committed fixtures (test/fixtures/tflite/, written by
 * generate.ts) and golden outputs of a reference runtime (Arm NN CpuRef,
 * make_golden.py): op semantics in float, exact dequantisation (uint8 per
 * tensor, int8 per channel, int32 biases) through float twins, quantised
 * execution within quantisation error, and every kind of bad file.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Tensor, cat, grad, tensor } from "../../src/core/tensor.js";
import { noGrad, tidy } from "../../src/core/engine.js";
import { CheckpointError, ShapeError, VaeguardError } from "../../src/core/errors.js";
import * as F from "../../src/nn/functional.js";
import {
  MAX_TENSOR_ELEMENTS,
  TfliteClassifier,
  UnsupportedOpError,
  loadTfliteModel,
  tfliteModelFromBytes,
} from "../../src/models/tflite/model.js";
import { writeTflite, type WModel } from "../helpers/tflite-writer.js";
import { fixtures, inputPattern } from "../fixtures/tflite/fixtures.js";
import { assertClose } from "../helpers/assert.js";

const dir = fileURLToPath(new URL("../../../test/fixtures/tflite/", import.meta.url));
const file = (name: string) => `${dir}${name}.tflite`;

interface GoldenCase {
  inputShape: number[];
  inputType: "uint8" | "float32";
  outputShape: number[];
  outputQuantized: boolean;
  outputScale: number;
  output: number[];
}
const golden = JSON.parse(readFileSync(`${dir}golden.json`, "utf8")) as { cases: Record<string, GoldenCase> };

/** The fixture input pattern as an image batch [1, C, H, W] in [0, 1]: x = q / 255 (exact for uint8 inputs). */
function patternImage(shape: number[]): Tensor {
  const [, h, w, c] = shape;
  const q = inputPattern(shape);
  const nchw = new Float32Array(c * h * w);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) nchw[(k * h + y) * w + x] = q[(y * w + x) * c + k] / 255;
  return tensor(nchw, [1, c, h, w]);
}

/** What the original model outputs (softmax put back when it had one). */
function output(m: TfliteClassifier, x: Tensor): number[] {
  return noGrad(() => tidy(() => m.predictProbabilities(x).toArray()));
}

function load(name: string, options = {}) {
  return loadTfliteModel(file(name), options);
}

test("the committed fixtures are what generate.ts writes", () => {
  for (const [name, model] of Object.entries(fixtures())) {
    const fresh = writeTflite(model);
    const committed = new Uint8Array(readFileSync(file(name)));
    assert.deepEqual(committed, fresh, `${name}.tflite differs from a fresh build: run generate.js and make_golden.py`);
  }
});

test("float fixtures match the reference runtime's float execution", () => {
  for (const name of ["ops-float", "ops-uint8-twin", "perchannel-twin"]) {
    const g = golden.cases[name];
    const m = load(name);
    const x = patternImage(g.inputShape);
    assert.deepEqual([1, ...m.inputShape.slice(1), m.inputShape[0]], g.inputShape);
    assert.equal(m.numClasses, g.outputShape[1]);
    assertClose(output(m, x), g.output, { atol: 2e-6, rtol: 1e-4 }, name);
    x.dispose();
    m.dispose();
  }
});

test("dequantisation is exact: quantised fixtures compute what their float twins compute", () => {
  // ops-uint8 takes real = (255 x - 128) / 128; its twin takes x itself, so it gets the same scaling by hand.
  const pairs: [string, string, { scale: number; offset: number }][] = [
    ["ops-uint8", "ops-uint8-twin", { scale: 255 / 128, offset: -1 }],
    ["perchannel-int8", "perchannel-twin", { scale: 1, offset: 0 }],
  ];
  for (const [quant, twin, scaling] of pairs) {
    const q = load(quant);
    const f = load(twin, { inputScaling: scaling });
    const x = patternImage(golden.cases[quant].inputShape);
    const a = noGrad(() => tidy(() => q.forward(x).toArray()));
    const b = noGrad(() => tidy(() => f.forward(x).toArray()));
    assertClose(a, b, { atol: 1e-6, rtol: 1e-6 }, `${quant} vs ${twin}`);
    // And every parameter equals the twin's (in graph order: operator numbers differ by the QUANTIZE).
    const qp = q.namedParameters();
    const fp = f.namedParameters();
    assert.equal(qp.length, fp.length);
    qp.forEach(([n, p], i) => assertClose(p.toArray(), fp[i][1].toArray(), { atol: 0, rtol: 1e-7 }, `${quant} ${n}`));
    for (const t of [x, q, f]) t.dispose();
  }
});

test("quantised fixtures agree with the reference's integer execution within quantisation error", () => {
  // One quantisation step of the last quantised tensor: the uint8 softmax output (1/256), or the int8
  // MEAN before perchannel-int8's DEQUANTIZE (16/255, see fixtures.ts).
  const steps: Record<string, number> = { "ops-uint8": 1 / 256, "perchannel-int8": 16 / 255 };
  for (const name of ["ops-uint8", "perchannel-int8"]) {
    const g = golden.cases[name];
    const step = steps[name];
    assert.equal(g.outputQuantized, name === "ops-uint8");
    const m = load(name);
    const x = patternImage(g.inputShape);
    const ours = output(m, x);
    // Activations are rounded at every layer in the reference; a few output steps cover that, not a wrong weight.
    assertClose(ours, g.output, { atol: 2.5 * step, rtol: 0 }, name);
    // The ranking of the outputs is the reference's where the reference separates them by two steps.
    for (let i = 0; i < ours.length; i++)
      for (let j = 0; j < ours.length; j++)
        if (g.output[i] - g.output[j] >= 2 * step) assert.ok(ours[i] > ours[j], `${name}: order of ${i}, ${j}`);
    x.dispose();
    m.dispose();
  }
});

test("input scaling comes from the input tensor's quantisation", () => {
  const u8 = load("ops-uint8");
  assert.deepEqual(u8.inputScaling, { scale: 255 / 128, offset: -1 });
  assert.deepEqual(u8.summary.inputTensor, {
    name: "input",
    shape: [1, 9, 9, 3],
    type: "UINT8",
    scale: 1 / 128,
    zeroPoint: 128,
  });
  assert.equal(u8.summary.quantized, true);
  u8.dispose();
  const f = load("perchannel-int8");
  assert.deepEqual(f.inputScaling, { scale: 1, offset: 0 });
  assert.deepEqual(f.summary.opCounts, { QUANTIZE: 1, CONV_2D: 1, DEPTHWISE_CONV_2D: 1, MEAN: 1, DEQUANTIZE: 1 });
  f.dispose();
});

test("the final softmax is left out: forward returns logits, keepSoftmax puts it back", () => {
  const m = load("ops-float");
  const k = load("ops-float", { keepSoftmax: true });
  assert.equal(m.endsWithSoftmax, true);
  assert.equal(m.outputsLogits, true);
  assert.equal(k.outputsLogits, false);
  const x = patternImage([1, 9, 9, 3]);
  const logits = noGrad(() => m.forward(x));
  const probs = noGrad(() => k.forward(x));
  const sum = logits.toArray().reduce((t, v) => t + v, 0);
  assert.ok(Math.abs(sum - 1) > 0.1, `logits, not probabilities (sum ${sum})`);
  assertClose(noGrad(() => F.softmax(logits, -1)).toArray(), probs.toArray(), { atol: 1e-7 });
  assertClose(probs.toArray(), golden.cases["ops-float"].output, { atol: 2e-6, rtol: 1e-4 });
  for (const t of [x, logits, probs, m, k]) t.dispose();
  const noSoftmax = load("perchannel-twin");
  assert.equal(noSoftmax.endsWithSoftmax, false);
  noSoftmax.dispose();
});

test("a batch computes what its images compute one by one, and gradients reach the input", () => {
  const m = load("ops-uint8");
  const a = patternImage([1, 9, 9, 3]);
  const b = tidy(() => a.flip(3).mul(0.7).add(0.1));
  const c = tidy(() => a.flip(2));
  const all = cat([a, b, c], 0);
  const one = [a, b, c].map((t) => noGrad(() => tidy(() => m.forward(t).toArray())));
  const together = noGrad(() => tidy(() => m.forward(all).toArray()));
  assertClose(together, one.flat(), { atol: 1e-6, rtol: 1e-5 });
  const xin = all.clone().requiresGrad_(true);
  const loss = tidy(() => F.crossEntropy(m.forward(xin), tensor(BigInt64Array.from([1n, 5n, 7n]), [3])));
  const [g] = grad(loss, [xin]);
  const gv = g.toArray();
  assert.ok(gv.every(Number.isFinite));
  assert.ok(gv.filter((v) => Math.abs(v) > 1e-6).length > gv.length / 2, "the gradient reaches most pixels");
  for (const t of [m, a, b, c, all, xin, loss, g]) t.dispose();
});

test("images of the wrong size are rejected with the expected shape", () => {
  const m = load("ops-float");
  const x = tensor(new Float32Array(3 * 8 * 8), [1, 3, 8, 8]);
  assert.throws(
    () => m.forward(x),
    (e: unknown) => e instanceof ShapeError && /expected images \[N, 3, 9, 9\]/.test((e as Error).message),
  );
  x.dispose();
  m.dispose();
});

test("an unsupported op is named with its operator index and the file", () => {
  assert.throws(
    () => load("unsupported"),
    (e: unknown) =>
      e instanceof UnsupportedOpError &&
      e.opName === "MAX_POOL_2D" &&
      e.opIndex === 1 &&
      e.message.startsWith(`${file("unsupported")}: unsupported op 'MAX_POOL_2D' (operator 1)`),
  );
});

test("truncated files fail with one message naming the file, at every length", () => {
  const bytes = new Uint8Array(readFileSync(file("ops-uint8")));
  for (let n = 0; n < bytes.length; n += 5) {
    assert.throws(
      () => tfliteModelFromBytes(bytes.subarray(0, n), { source: "cut.tflite" }),
      (e: unknown) => e instanceof CheckpointError && e.message.startsWith("cut.tflite: ") && !e.message.includes("\n"),
      `truncated to ${n} bytes`,
    );
  }
});

test("a file that is not TFLite is named as such", () => {
  const bytes = new Uint8Array(readFileSync(file("ops-float")));
  bytes.set([0x54, 0x46, 0x4c, 0x32], 4); // "TFL2"
  assert.throws(
    () => tfliteModelFromBytes(bytes, { source: "x.tflite" }),
    /x\.tflite: is not a TFLite model \(file identifier "TFL2" at byte 4, expected "TFL3"\)/,
  );
  assert.throws(() => loadTfliteModel(`${dir}does-not-exist.tflite`), /does-not-exist\.tflite: file not found/);
});

test("corrupt bytes never escape as anything but a vaeguard error", () => {
  const original = new Uint8Array(readFileSync(file("ops-uint8")));
  let seed = 7;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  let rejected = 0;
  for (let trial = 0; trial < 150; trial++) {
    const bytes = original.slice();
    for (let k = 0; k < 3; k++) bytes[8 + rnd(bytes.length - 8)] = rnd(256);
    try {
      tfliteModelFromBytes(bytes, { source: "fuzz.tflite" }).dispose();
    } catch (e) {
      assert.ok(e instanceof VaeguardError, `trial ${trial}: ${(e as Error).name}: ${(e as Error).message}`);
      assert.ok((e as Error).message.includes("fuzz.tflite"), (e as Error).message);
      rejected++;
    }
  }
  assert.ok(rejected > 0, "some corruptions are detected");
});

function mutate(name: string, change: (m: WModel) => void): Uint8Array {
  const m = fixtures()[name];
  change(m);
  return writeTflite(m);
}

test("a declared shape over the budget is rejected before anything is allocated", () => {
  const bytes = mutate("ops-float", (m) => {
    m.tensors[3].shape = [1, 50000, 50000, 4];
  });
  assert.throws(
    () => tfliteModelFromBytes(bytes, { source: "big.tflite" }),
    new RegExp(
      `big\\.tflite: tensor 3 \\('conv1'\\) declares shape \\[1, 50000, 50000, 4\\] .*over the budget of ${MAX_TENSOR_ELEMENTS} elements`,
    ),
  );
});

test("a shape the file declares wrongly, a short weight buffer and a wrong op input are named", () => {
  const wrongShape = mutate("ops-float", (m) => {
    m.tensors[3].shape = [1, 9, 5, 4]; // SAME with stride_h 2, stride_w 1 gives [1, 5, 9, 4]
  });
  assert.throws(
    () => tfliteModelFromBytes(wrongShape, { source: "s.tflite" }),
    /s\.tflite: operator 0 \(CONV_2D\) computes shape \[1, 5, 9, 4\] but the file declares \[1, 9, 5, 4\]/,
  );
  const short = mutate("ops-float", (m) => {
    m.tensors[1].data = m.tensors[1].data!.subarray(0, 20);
  });
  assert.throws(
    () => tfliteModelFromBytes(short, { source: "w.tflite" }),
    /w\.tflite: operator 0 \(CONV_2D\): tensor 1 \('w1'\) holds 20 bytes but its shape \[4, 3, 3, 3\] of FLOAT32 needs 432/,
  );
  const badIndex = mutate("ops-float", (m) => {
    m.ops[2].inputs = [6, 99, 8];
  });
  assert.throws(
    () => tfliteModelFromBytes(badIndex, { source: "i.tflite" }),
    /i\.tflite: operator 2 \(CONV_2D\) refers to tensor 99/,
  );
  const badChannels = mutate("perchannel-int8", (m) => {
    m.tensors[5].quant!.scale = [0.1, 0.2, 0.3];
    m.tensors[5].quant!.zeroPoint = [0, 0, 0];
  });
  assert.throws(
    () => tfliteModelFromBytes(badChannels, { source: "q.tflite" }),
    /q\.tflite: operator 2 \(DEPTHWISE_CONV_2D\): tensor 5 \('w2'\) has 3 per-channel scales along dimension 3/,
  );
});
