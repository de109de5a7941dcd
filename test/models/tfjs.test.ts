/**
 * TF.js Layers import: small models built and saved with @tensorflow/tfjs
 * (CPU backend) are imported and must give TF.js's outputs within 1e-5;
 * unsupported layers and damaged files give errors that name the problem.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { memory, noGrad, tidy } from "../../src/core/engine.js";
import { CheckpointError } from "../../src/core/errors.js";
import { Tensor, grad, tensor } from "../../src/core/tensor.js";
import * as F from "../../src/nn/functional.js";
import { INPUT_SCALINGS, TfjsLayersModel, UnsupportedLayerError, loadTfjsLayersModel } from "../../src/models/tfjs.js";

let dir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "vaeguard-tfjs-"));
  await tf.setBackend("cpu");
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Deterministic pseudo-random numbers (a linear congruential generator). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Give every weight of a TF.js model seeded values; variances stay positive. */
function setWeights(model: tf.LayersModel, seed: number): void {
  const r = rng(seed);
  const ws = model.weights.map((w) => {
    const n = w.shape.reduce((a: number, b) => a * (b as number), 1);
    const positive = /moving_variance|gamma/.test(w.originalName);
    const v = Float32Array.from({ length: n }, () => (positive ? 0.5 + r() : (r() - 0.5) * 0.8));
    return tf.tensor(v, w.shape as number[]);
  });
  model.setWeights(ws);
  ws.forEach((w) => w.dispose());
}

interface Saved {
  folder: string;
  modelJson: string;
  json: Record<string, unknown> & { weightsManifest: { paths: string[]; weights: Record<string, unknown>[] }[] };
}

type Quantize = "none" | "uint8" | "uint16" | "float16";

function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const i = new Uint32Array(f.buffer)[0];
  const sign = (i >>> 16) & 0x8000;
  let e = ((i >>> 23) & 0xff) - 127 + 15;
  let m = i & 0x7fffff;
  if (e <= 0) return sign; // tiny values flush to zero in this test helper
  if (e >= 31) return sign | 0x7c00;
  // round to nearest
  m += 0x1000;
  if (m & 0x800000) {
    m = 0;
    e++;
  }
  return sign | (e << 10) | (m >>> 13);
}

/** Save a TF.js model as model.json + weights.bin (optionally quantizing every weight). */
async function save(model: tf.LayersModel, name: string, quantize: Quantize = "none"): Promise<Saved> {
  const folder = join(dir, name);
  let json: Saved["json"] | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const specs = a.weightSpecs!.map((s) => ({ ...s })) as unknown as Record<string, unknown>[];
      const raw = new Float32Array(a.weightData as ArrayBuffer);
      let bytes: Uint8Array;
      if (quantize === "none") {
        bytes = new Uint8Array(raw.buffer);
      } else {
        const parts: Uint8Array[] = [];
        let off = 0;
        for (const s of specs) {
          const n = (s.shape as number[]).reduce((x, y) => x * y, 1);
          const v = raw.subarray(off, off + n);
          off += n;
          if (quantize === "float16") {
            parts.push(new Uint8Array(Uint16Array.from(v, toHalf).buffer));
            s.quantization = { dtype: "float16" };
            continue;
          }
          const levels = quantize === "uint8" ? 255 : 65535;
          const min = Math.min(...v);
          const max = Math.max(...v);
          const scale = max > min ? (max - min) / levels : 1;
          const q = Array.from(v, (x) => Math.round((x - min) / scale));
          parts.push(quantize === "uint8" ? Uint8Array.from(q) : new Uint8Array(Uint16Array.from(q).buffer));
          s.quantization = { dtype: quantize, scale, min };
        }
        bytes = Buffer.concat(parts);
      }
      json = {
        format: "layers-model",
        generatedBy: "test",
        modelTopology: a.modelTopology as Record<string, unknown>,
        weightsManifest: [{ paths: ["weights.bin"], weights: specs }],
      };
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, "weights.bin"), bytes);
      writeFileSync(join(folder, "model.json"), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
    }),
  );
  return { folder, modelJson: join(folder, "model.json"), json: json! };
}

/** Load the saved files back into TF.js, as tf.loadLayersModel would read them (quantized weights included). */
async function tfLoad(saved: Saved): Promise<tf.LayersModel> {
  const json = JSON.parse(readFileSync(saved.modelJson, "utf8")) as Saved["json"];
  const bin = readFileSync(join(saved.folder, "weights.bin"));
  return tf.loadLayersModel({
    load: async () => ({
      modelTopology: json.modelTopology as object,
      weightSpecs: json.weightsManifest[0].weights as unknown as tf.io.WeightsManifestEntry[],
      weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
    }),
  });
}

function images(n: number, h: number, w: number, seed = 7): { ours: Tensor; theirs: tf.Tensor } {
  const r = rng(seed);
  const nchw = Float32Array.from({ length: n * 3 * h * w }, () => r());
  const ours = tensor(nchw, [n, 3, h, w]);
  const nhwc = new Float32Array(nchw.length);
  for (let b = 0; b < n; b++)
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) nhwc[((b * h + y) * w + x) * 3 + c] = nchw[((b * 3 + c) * h + y) * w + x];
  return { ours, theirs: tf.tensor(nhwc, [n, h, w, 3]) };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function predict(model: tf.LayersModel, x: tf.Tensor): Float32Array {
  const y = model.predict(x) as tf.Tensor;
  const v = y.dataSync() as Float32Array;
  y.dispose();
  return v;
}

/**
 * A functional model with most supported layers: Conv2D (same/valid, strides,
 * dilation, activations), DepthwiseConv2D, SeparableConv2D, BatchNormalization
 * (with and without scale), ReLU with max 6, LeakyReLU, ZeroPadding2D,
 * Cropping2D, max and average pooling with asymmetric "same" padding,
 * Concatenate, Add, Multiply, Average, Maximum, Flatten, Reshape, Dense,
 * Dropout, and a final Dense -> Activation("softmax").
 */
function bigFunctional(): { model: tf.LayersModel; logitsModel: tf.LayersModel } {
  const L = tf.layers;
  const inp = tf.input({ shape: [13, 14, 3], name: "image" });
  const a = L.conv2d({ filters: 8, kernelSize: 3, padding: "same", activation: "relu", name: "c1" }).apply(inp);
  const b = L.batchNormalization({ name: "bn1" }).apply(a);
  const r6 = L.reLU({ maxValue: 6, name: "relu6" }).apply(b);
  const pad = L.zeroPadding2d({
    padding: [
      [0, 1],
      [1, 0],
    ],
    name: "pad",
  }).apply(r6);
  const dw = L.depthwiseConv2d({ kernelSize: 3, strides: 2, depthMultiplier: 2, padding: "valid", name: "dw" }).apply(
    pad,
  );
  const bn2 = L.batchNormalization({ scale: false, name: "bn_noscale" }).apply(dw);
  const sig = L.activation({ activation: "sigmoid", name: "sig" }).apply(bn2);
  // Branches on a 6x7x16 map.
  const br1 = L.conv2d({ filters: 6, kernelSize: 1, name: "br1" }).apply(sig);
  const br2 = L.separableConv2d({ filters: 6, kernelSize: 3, padding: "same", name: "sep" }).apply(sig);
  const br3 = L.maxPooling2d({ poolSize: 2, strides: 2, padding: "same", name: "mp_same" }).apply(sig);
  const br4 = L.averagePooling2d({ poolSize: 3, strides: 1, padding: "same", name: "ap_same" }).apply(sig);
  const br4b = L.conv2d({ filters: 6, kernelSize: 1, activation: "tanh", name: "br4c" }).apply(br4);
  const br5 = L.conv2d({
    filters: 6,
    kernelSize: 3,
    padding: "same",
    dilationRate: 2,
    activation: "elu",
    name: "dil",
  }).apply(sig);
  const added = L.add({ name: "add" }).apply([br1, br2, br4b] as tf.SymbolicTensor[]);
  const mult = L.multiply({ name: "mul" }).apply([added, br5] as tf.SymbolicTensor[]);
  const avg = L.average({ name: "avg" }).apply([mult, br1] as tf.SymbolicTensor[]);
  const mx = L.maximum({ name: "max" }).apply([avg, br2] as tf.SymbolicTensor[]);
  const leaky = L.leakyReLU({ alpha: 0.2, name: "leaky" }).apply(mx);
  const cat = L.concatenate({ axis: -1, name: "cat" }).apply([leaky, sig] as tf.SymbolicTensor[]); // 6x7x22
  const ap2 = L.averagePooling2d({ poolSize: 2, strides: 2, padding: "same", name: "ap_same_asym" }).apply(cat); // 3x4x22
  const crop = L.cropping2D({
    cropping: [
      [1, 0],
      [0, 1],
    ],
    name: "crop",
  }).apply(ap2); // 2x3x22
  const flat = L.flatten({ name: "flat" }).apply(crop);
  const back = L.reshape({ targetShape: [2, 3, 22], name: "reshape" }).apply(flat);
  const conv3 = L.conv2d({
    filters: 5,
    kernelSize: 2,
    strides: 2,
    padding: "same",
    activation: "relu6",
    name: "c3",
  }).apply(back); // 1x2x5
  const flat2 = L.flatten({ name: "flat2" }).apply(conv3);
  const mp = L.maxPooling2d({ poolSize: 3, strides: 2, padding: "valid", name: "mp_valid" }).apply(br3); // 1x1x16 from 3x4
  const gap = L.globalAveragePooling2d({ name: "gap" }).apply(mp);
  const both = L.concatenate({ name: "cat2" }).apply([flat2, gap] as tf.SymbolicTensor[]);
  const d1 = L.dense({ units: 12, activation: "swish", name: "d1" }).apply(both);
  const drop = L.dropout({ rate: 0.3, name: "drop" }).apply(d1);
  const logits = L.dense({ units: 4, name: "logits" }).apply(drop) as tf.SymbolicTensor;
  const probs = L.activation({ activation: "softmax", name: "probs" }).apply(logits) as tf.SymbolicTensor;
  const model = tf.model({ inputs: inp, outputs: probs, name: "big" });
  const logitsModel = tf.model({ inputs: inp, outputs: logits });
  return { model, logitsModel };
}

describe("TF.js Layers import", () => {
  test("a functional model with most layer types matches TF.js within 1e-5", async () => {
    const { model, logitsModel } = bigFunctional();
    setWeights(model, 1);
    const saved = await save(model, "big");
    const ours = loadTfjsLayersModel(saved.folder);
    try {
      assert.deepEqual(ours.inputShape, [3, 13, 14]);
      assert.equal(ours.numClasses, 4);
      assert.equal(ours.endsWithSoftmax, true);
      assert.equal(ours.outputsLogits, true);
      assert.equal(ours.finalActivation, "softmax");
      assert.equal(ours.training, false);
      const { ours: x, theirs } = images(3, 13, 14);
      const before = memory().numTensors;
      const logits = noGrad(() => ours.forward(x));
      const probs = noGrad(() => ours.predictProbabilities(x));
      assert.equal(memory().numTensors, before + 2, "forward leaves no tensors behind");
      assert.ok(maxDiff(logits.dataSync() as Float32Array, predict(logitsModel, theirs)) < 1e-5, "logits");
      assert.ok(maxDiff(probs.dataSync() as Float32Array, predict(model, theirs)) < 1e-5, "probabilities");
      [x, logits, probs].forEach((t) => t.dispose());
      theirs.dispose();
    } finally {
      ours.dispose();
      model.dispose();
    }
  });

  test("Keras 2 (model_config wrapper) and Keras 3 (Functional, keras_history) topologies load alike", async () => {
    const { model } = bigFunctional();
    setWeights(model, 11);
    const saved = await save(model, "keras-forms");
    const topo = saved.json.modelTopology as {
      class_name: string;
      config: { layers: { class_name: string; config: Record<string, unknown>; inbound_nodes: unknown[] }[] } & Record<
        string,
        unknown
      >;
    };
    // Keras 2 as written by Python Keras: {keras_version, backend, model_config}.
    const k2 = { ...saved.json, modelTopology: { keras_version: "2.2.4", backend: "tensorflow", model_config: topo } };
    // Keras 3: class "Functional", InputLayer batch_shape, inbound nodes as {args, kwargs} with keras_history.
    const k3topo = structuredClone(topo);
    k3topo.class_name = "Functional";
    for (const l of k3topo.config.layers) {
      if (l.class_name === "InputLayer") {
        l.config.batch_shape = l.config.batch_input_shape;
        delete l.config.batch_input_shape;
      }
      l.inbound_nodes = l.inbound_nodes.map((node) => {
        const refs = (node as [string, number, number][]).map(([name, ni, ti]) => ({
          class_name: "__keras_tensor__",
          config: { shape: null, dtype: "float32", keras_history: [name, ni, ti] },
        }));
        return { args: refs.length === 1 ? refs : [refs], kwargs: {} };
      });
    }
    k3topo.config.input_layers = (k3topo.config.input_layers as unknown[])[0];
    const k3 = { ...saved.json, modelTopology: k3topo };
    const files = [k2, k3].map((j, i) => {
      const f = join(saved.folder, `model-k${i === 0 ? 2 : 3}.json`);
      writeFileSync(f, JSON.stringify(j));
      return f;
    });
    const models = [saved.modelJson, ...files].map((f) => loadTfjsLayersModel(f));
    try {
      const { ours: x } = images(2, 13, 14, 12);
      const ys = models.map((m) => noGrad(() => m.forward(x)));
      assert.equal(maxDiff(ys[0].dataSync() as Float32Array, ys[1].dataSync() as Float32Array), 0);
      assert.equal(maxDiff(ys[0].dataSync() as Float32Array, ys[2].dataSync() as Float32Array), 0);
      [x, ...ys].forEach((t) => t.dispose());
    } finally {
      models.forEach((m) => m.dispose());
      model.dispose();
    }
  });

  test("Sequential with a nested functional model, Dense softmax head, Rescaling-free", async () => {
    const inp = tf.input({ shape: [9, 9, 3] });
    const c = tf.layers
      .conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: "same", name: "base_conv" })
      .apply(inp);
    const bn = tf.layers.batchNormalization({ name: "base_bn" }).apply(c);
    const g = tf.layers.globalMaxPooling2d({ name: "base_gmp" }).apply(bn);
    const base = tf.model({ inputs: inp, outputs: g as tf.SymbolicTensor, name: "base" });
    const seq = tf.sequential({
      layers: [
        tf.layers.inputLayer({ inputShape: [9, 9, 3] }),
        base,
        tf.layers.dense({ units: 3, activation: "softmax", name: "head" }),
      ],
    });
    setWeights(seq, 2);
    const saved = await save(seq, "nested");
    const ours = loadTfjsLayersModel(saved.modelJson);
    try {
      assert.equal(ours.numClasses, 3);
      assert.equal(ours.endsWithSoftmax, true);
      assert.deepEqual(
        ours.namedParameters().map(([n]) => n),
        [
          "base.base_conv.weight",
          "base.base_conv.bias",
          "base.base_bn.weight",
          "base.base_bn.bias",
          "head.weight",
          "head.bias",
        ],
      );
      const { ours: x, theirs } = images(2, 9, 9, 3);
      const probs = noGrad(() => ours.predictProbabilities(x));
      assert.ok(maxDiff(probs.dataSync() as Float32Array, predict(seq, theirs)) < 1e-5);
      // forward gives logits: their softmax is the model's output.
      const logits = noGrad(() => ours.forward(x));
      const again = noGrad(() => F.softmax(logits, -1));
      assert.ok(maxDiff(again.dataSync() as Float32Array, probs.dataSync() as Float32Array) < 1e-7);
      [x, probs, logits, again].forEach((t) => t.dispose());
      theirs.dispose();
    } finally {
      ours.dispose();
      seq.dispose();
    }
  });

  for (const q of ["uint8", "uint16", "float16"] as const) {
    test(`${q}-quantized weights are decoded as TF.js decodes them`, async () => {
      const m = tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, activation: "relu" }),
          tf.layers.batchNormalization({}),
          tf.layers.flatten({}),
          tf.layers.dense({ units: 3 }),
        ],
      });
      setWeights(m, 3);
      const saved = await save(m, `quant-${q}`, q);
      const theirs = await tfLoad(saved);
      const ours = loadTfjsLayersModel(saved.folder);
      try {
        assert.equal(ours.endsWithSoftmax, false);
        assert.equal(ours.outputsLogits, true);
        const { ours: x, theirs: tx } = images(2, 8, 8, 5);
        const y = noGrad(() => ours.forward(x));
        assert.ok(maxDiff(y.dataSync() as Float32Array, predict(theirs, tx)) < 1e-5);
        [x, y].forEach((t) => t.dispose());
        tx.dispose();
      } finally {
        ours.dispose();
        m.dispose();
        theirs.dispose();
      }
    });
  }

  test("input scaling happens inside the model; input gradients flow; parameters carry layer names", async () => {
    const m = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [6, 6, 3], filters: 2, kernelSize: 3, name: "conv" }),
        tf.layers.flatten({ name: "flatten" }),
        tf.layers.dense({ units: 2, name: "fc" }),
      ],
    });
    setWeights(m, 4);
    const saved = await save(m, "scaling");
    const sym = loadTfjsLayersModel(saved.folder, { inputScaling: "symmetric" });
    const bgr = loadTfjsLayersModel(saved.folder, { inputScaling: INPUT_SCALINGS.caffe });
    try {
      const { ours: x, theirs } = images(1, 6, 6, 9);
      const scaled = theirs.mul(2).sub(1);
      const y = noGrad(() => sym.forward(x));
      assert.ok(maxDiff(y.dataSync() as Float32Array, predict(m, scaled)) < 1e-5);
      const caffe = tf.tidy(() =>
        theirs
          .reverse(-1)
          .mul(255)
          .sub(tf.tensor1d([103.939, 116.779, 123.68])),
      );
      const yc = noGrad(() => bgr.forward(x));
      assert.ok(maxDiff(yc.dataSync() as Float32Array, predict(m, caffe)) < 1e-3);
      const g = tidy(() => {
        const xv = x.clone().requiresGrad_();
        const out = sym.forward(xv);
        return grad(out.select(1, 0).sum(), [xv])[0];
      });
      assert.deepEqual(g.shape, [1, 3, 6, 6]);
      assert.ok((g.abs().sum().item() as number) > 0, "non-zero input gradient");
      assert.deepEqual(
        sym.namedParameters().map(([n, p]) => `${n} ${p.shape.join("x")}`),
        ["conv.weight 2x3x3x3", "conv.bias 2", "fc.weight 2x32", "fc.bias 2"],
      );
      [x, y, yc, g].forEach((t) => t.dispose());
      [theirs, scaled, caffe].forEach((t) => t.dispose());
    } finally {
      sym.dispose();
      bgr.dispose();
      m.dispose();
    }
  });

  test("ReLU with threshold, negative slope and max value follows Keras", async () => {
    const m = tf.sequential({ layers: [tf.layers.reLU({ inputShape: [2, 3, 3], name: "r" }), tf.layers.flatten({})] });
    const saved = await save(m, "relu-keras");
    const topo = saved.json.modelTopology as {
      config: { layers: { class_name: string; config: Record<string, unknown> }[] };
    };
    const relu = topo.config.layers.find((l) => l.class_name === "ReLU")!;
    Object.assign(relu.config, { max_value: 0.8, negative_slope: 0.1, threshold: 0.3 });
    writeFileSync(saved.modelJson, JSON.stringify(saved.json));
    const ours = loadTfjsLayersModel(saved.folder);
    try {
      const { ours: x } = images(1, 2, 3, 21);
      const nhwc = noGrad(() => x.permute(0, 2, 3, 1).contiguous());
      const expected = Array.from(nhwc.dataSync() as Float32Array, (v) =>
        v >= 0.8 ? 0.8 : v >= 0.3 ? v : Math.fround(0.1 * (v - 0.3)),
      );
      const y = noGrad(() => ours.forward(x));
      assert.ok(maxDiff(y.dataSync() as Float32Array, expected) < 1e-6);
      [x, nhwc, y].forEach((t) => t.dispose());
    } finally {
      ours.dispose();
      m.dispose();
    }
  });

  test("keepSoftmax keeps probabilities as the output", async () => {
    const m = tf.sequential({
      layers: [tf.layers.flatten({ inputShape: [2, 2, 3] }), tf.layers.dense({ units: 3, activation: "softmax" })],
    });
    setWeights(m, 5);
    const saved = await save(m, "keep");
    const ours = loadTfjsLayersModel(saved.folder, { keepSoftmax: true });
    try {
      assert.equal(ours.endsWithSoftmax, true);
      assert.equal(ours.outputsLogits, false);
      const { ours: x, theirs } = images(2, 2, 2);
      const y = noGrad(() => ours.forward(x));
      assert.ok(maxDiff(y.dataSync() as Float32Array, predict(m, theirs)) < 1e-6);
      [x, y].forEach((t) => t.dispose());
      theirs.dispose();
    } finally {
      ours.dispose();
      m.dispose();
    }
  });

  test("an unsupported layer is rejected by type and name", async () => {
    const m = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [4, 4, 3], filters: 2, kernelSize: 1 }),
        tf.layers.upSampling2d({ name: "up" }),
        tf.layers.flatten({}),
      ],
    });
    const saved = await save(m, "unsupported");
    assert.throws(
      () => loadTfjsLayersModel(saved.folder),
      (e: unknown) =>
        e instanceof UnsupportedLayerError &&
        e instanceof CheckpointError &&
        e.message.includes("unsupported layer type 'UpSampling2D' (layer 'up')") &&
        e.message.includes(saved.modelJson),
    );
    m.dispose();
  });

  describe("damaged files give a CheckpointError naming the file and the problem", () => {
    let good: Saved;
    before(async () => {
      const m = tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [5, 5, 3], filters: 2, kernelSize: 3, name: "conv" }),
          tf.layers.flatten({}),
          tf.layers.dense({ units: 2, name: "fc" }),
        ],
      });
      good = await save(m, "good");
      m.dispose();
    });
    const variant = (name: string, edit: (json: Saved["json"], bin: Buffer) => [string, Buffer | null]): string => {
      const folder = join(dir, name);
      const json = JSON.parse(readFileSync(good.modelJson, "utf8")) as Saved["json"];
      const bin = readFileSync(join(good.folder, "weights.bin"));
      const [text, newBin] = edit(json, bin);
      rmSync(folder, { recursive: true, force: true });
      mkdirSync(folder, { recursive: true });
      writeFileSync(join(folder, "model.json"), text);
      if (newBin) writeFileSync(join(folder, "weights.bin"), newBin);
      return join(folder, "model.json");
    };
    const expectError = (file: string, pattern: RegExp) =>
      assert.throws(
        () => loadTfjsLayersModel(file),
        (e: unknown) => e instanceof CheckpointError && e.file === file && pattern.test(e.message),
      );

    test("invalid JSON", () => {
      expectError(
        variant("bad-json", (_j, b) => ["{ not json", b]),
        /is not valid JSON/,
      );
    });
    test("missing file", () => {
      const file = join(dir, "nowhere", "model.json");
      expectError(file, /file not found/);
    });
    test("missing modelTopology", () => {
      expectError(
        variant("no-topology", (j, b) => [JSON.stringify({ ...j, modelTopology: undefined }), b]),
        /no modelTopology/,
      );
    });
    test("graph models are named as such", () => {
      expectError(
        variant("graph", (j, b) => [JSON.stringify({ ...j, format: "graph-model" }), b]),
        /graph model/,
      );
    });
    test("a truncated shard", () => {
      expectError(
        variant("short", (j, b) => [JSON.stringify(j), b.subarray(0, b.length - 4)]),
        /needs bytes .* hold only/,
      );
    });
    test("a shard longer than the manifest says", () => {
      expectError(
        variant("long", (j, b) => [JSON.stringify(j), Buffer.concat([b, Buffer.alloc(8)])]),
        /describes \d+ bytes but/,
      );
    });
    test("a missing shard", () => {
      expectError(
        variant("no-shard", (j) => [JSON.stringify(j), null]),
        /weight shard 'weights.bin' not found/,
      );
    });
    test("a shard path that leaves the folder", () => {
      writeFileSync(join(dir, "outside.bin"), readFileSync(join(good.folder, "weights.bin")));
      expectError(
        variant("escape", (j, b) => {
          j.weightsManifest[0].paths = ["../outside.bin"];
          return [JSON.stringify(j), b];
        }),
        /outside the model folder/,
      );
      const file = variant("escape-link", (j, b) => [JSON.stringify(j), b]);
      rmSync(join(dir, "escape-link", "weights.bin"));
      symlinkSync(join(dir, "outside.bin"), join(dir, "escape-link", "weights.bin"));
      expectError(file, /outside the model folder/);
    });
    test("a weight shape that disagrees with the layer", () => {
      expectError(
        variant("shape", (j, b) => {
          const k = j.weightsManifest[0].weights.find((w) => w.name === "conv/kernel")!;
          k.shape = [3, 3, 2, 3]; // same byte count, wrong layout
          return [JSON.stringify(j), b];
        }),
        /weight 'conv\/kernel' has shape \[3, 3, 2, 3\] but layer 'conv' \(Conv2D\) needs \[3, 3, \?, 2\]/,
      );
    });
    test("a missing weight", () => {
      expectError(
        variant("missing-weight", (j, b) => {
          const ws = j.weightsManifest[0].weights;
          const i = ws.findIndex((w) => w.name === "fc/bias");
          ws.splice(i, 1);
          return [JSON.stringify(j), b.subarray(0, b.length - 8)];
        }),
        /missing weight 'fc\/bias' for layer 'fc' \(Dense\)/,
      );
    });
    test("an unused weight", () => {
      expectError(
        variant("extra-weight", (j, b) => {
          j.weightsManifest[0].weights.push({ name: "stray/kernel", shape: [2], dtype: "float32" });
          return [JSON.stringify(j), Buffer.concat([b, Buffer.alloc(8)])];
        }),
        /belong to no layer of the model: 'stray\/kernel'/,
      );
    });
    test("a wrong input size in the Keras config is caught by the probe run", () => {
      expectError(
        variant("bad-input", (j, b) => {
          const topo = j.modelTopology as { config: { layers: { config: Record<string, unknown> }[] } };
          topo.config.layers[0].config.batch_input_shape = [null, 7, 7, 3];
          return [JSON.stringify(j), b];
        }),
        /layer '.*' \(Dense\) failed on input/,
      );
    });
  });

  test("TfjsLayersModel is exported as a class", () => {
    assert.equal(typeof TfjsLayersModel, "function");
  });
});
