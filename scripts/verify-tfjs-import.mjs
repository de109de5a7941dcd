// Heavy check of the TF.js importer (not a unit test): runs the real nsfwjs
// networks through our engine and through @tensorflow/tfjs (pure-JS CPU
// backend) on the same images and prints the largest absolute differences.
//
//   npx tsc -p tsconfig.json && node scripts/verify-tfjs-import.mjs [options]
//     --models mobilenet_v2,inception_v3   which models (default both)
//     --images <folder>                    images in either image-folder layout
//                                          (default .cache/photos if built, else synthetic images)
//     --count <n>                          images for MobileNetV2 (default 4)
//     --inception-count <n>                images for Inception V3 (default 1; TF.js CPU needs ~15 s per image)
//     --out <folder>                       where the extracted models go (default a temporary folder)
//     --json                               print one JSON object at the end
//
// Logits are compared against a TF.js copy of the model whose final softmax
// is switched to "linear"; probabilities against the unmodified model.
import { Buffer } from "node:buffer";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = (p) => join(root, "dist", "src", p);
const { extractNsfwjsModels } = await import(dist("models/tfjs-nsfwjs.js"));
const { loadTfjsLayersModel } = await import(dist("models/tfjs.js"));
const { readImageFolder } = await import(dist("data/image-folder.js"));
const { tensor } = await import(dist("core/tensor.js"));
const { noGrad } = await import(dist("core/engine.js"));

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const models = arg("models", "mobilenet_v2,inception_v3").split(",");
const count = Number(arg("count", "4"));
const inceptionCount = Number(arg("inception-count", "1"));
const json = process.argv.includes("--json");
const outArg = arg("out", undefined);
const outDir = outArg ?? mkdtempSync(join(tmpdir(), "vaeguard-nsfwjs-"));
const imagesArg = arg(
  "images",
  existsSync(join(root, ".cache/photos/images.csv")) ? join(root, ".cache/photos") : undefined,
);

function log(...a) {
  if (!json) console.log(...a);
}

/** Smooth, deterministic colour images in [0, 1] when no photographs are at hand. */
function syntheticImages(n, size) {
  const data = new Float32Array(n * 3 * size * size);
  for (let b = 0; b < n; b++)
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const v = 0.5 + 0.5 * Math.sin((x * (c + 1) + y * (b + 2)) / 17 + b + c * 1.3);
          data[((b * 3 + c) * size + y) * size + x] = v;
        }
  return tensor(data, [n, 3, size, size]);
}

async function images(n, size) {
  if (imagesArg) {
    const d = await readImageFolder(imagesArg, { size, limit: n });
    d.labels.dispose();
    return { x: d.images, what: `${d.ids.join(", ")} from ${imagesArg}` };
  }
  return { x: syntheticImages(n, size), what: `${n} synthetic images` };
}

function tfjsHandler(modelJsonPath, linearOutput) {
  const modelJson = JSON.parse(readFileSync(modelJsonPath, "utf8"));
  const topology = JSON.parse(JSON.stringify(modelJson.modelTopology));
  if (linearOutput) {
    const mc = topology.model_config ?? topology;
    const outName = mc.config.output_layers[0][0];
    const layer = mc.config.layers.find((l) => l.name === outName);
    if (layer.config.activation !== "softmax") throw new Error(`output layer ${outName} has no softmax`);
    layer.config.activation = "linear";
  }
  return {
    load: async () => {
      const weightSpecs = [];
      const parts = [];
      for (const g of modelJson.weightsManifest) {
        weightSpecs.push(...g.weights);
        for (const p of g.paths) parts.push(readFileSync(join(dirname(modelJsonPath), p)));
      }
      const all = Buffer.concat(parts);
      const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
      return { modelTopology: topology, weightSpecs, weightData, format: modelJson.format };
    },
  };
}

function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function argmaxRows(v, k) {
  const out = [];
  for (let i = 0; i < v.length / k; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (v[i * k + j] > v[i * k + best]) best = j;
    out.push(best);
  }
  return out;
}

await tf.setBackend("cpu");
log(`TF.js ${tf.version.tfjs}, backend ${tf.getBackend()}`);
const extracted = extractNsfwjsModels(outDir, { models: models.filter((m) => m !== "mobilenet_v2_mid") });
const results = [];
for (const m of extracted) {
  const n = m.name === "inception_v3" ? inceptionCount : count;
  const ours = loadTfjsLayersModel(m.modelJson, { inputScaling: "unit" });
  const { x, what } = await images(n, m.inputSize);
  let t = Date.now();
  const logits = noGrad(() => ours.forward(x));
  const probs = noGrad(() => ours.predictProbabilities(x));
  const oursMs = Date.now() - t;
  const ourLogits = Float32Array.from(logits.dataSync());
  const ourProbs = Float32Array.from(probs.dataSync());

  const nhwc = x.permute(0, 2, 3, 1).contiguous();
  const input = tf.tensor(Float32Array.from(nhwc.dataSync()), [n, m.inputSize, m.inputSize, 3]);
  t = Date.now();
  const tfLinear = await tf.loadLayersModel(tfjsHandler(m.modelJson, true));
  const tfLogits = tfLinear.predict(input).dataSync();
  const tfjsLogitsMs = Date.now() - t;
  tfLinear.dispose();
  t = Date.now();
  const tfSoft = await tf.loadLayersModel(tfjsHandler(m.modelJson, false));
  const tfProbs = tfSoft.predict(input).dataSync();
  const tfjsProbsMs = Date.now() - t;
  tfSoft.dispose();
  input.dispose();

  const k = ours.numClasses;
  const r = {
    model: m.name,
    images: n,
    inputs: what,
    maxAbsDiffLogits: maxAbsDiff(ourLogits, tfLogits),
    maxAbsLogit: Math.max(...Array.from(tfLogits, Math.abs)),
    maxAbsDiffProbabilities: maxAbsDiff(ourProbs, tfProbs),
    argmaxAgree: argmaxRows(ourLogits, k).join() === argmaxRows(tfLogits, k).join(),
    oursMs,
    tfjsLogitsMs,
    tfjsProbsMs,
  };
  results.push(r);
  log(
    `${m.name}: ${n} image(s) (${what})\n` +
      `  max |logit diff| = ${r.maxAbsDiffLogits.toExponential(3)} (largest |logit| ${r.maxAbsLogit.toFixed(3)}), ` +
      `max |probability diff| = ${r.maxAbsDiffProbabilities.toExponential(3)}, argmax agree: ${r.argmaxAgree}\n` +
      `  time: ours ${oursMs} ms (logits + probabilities), TF.js CPU ${tfjsLogitsMs} ms + ${tfjsProbsMs} ms (load + predict)`,
  );
  for (const t2 of [x, nhwc, logits, probs]) t2.dispose();
  ours.dispose();
}
if (!outArg) rmSync(outDir, { recursive: true, force: true });
if (json) console.log(JSON.stringify({ tfjs: tf.version.tfjs, results }, null, 2));
const ok = results.every((r) => r.maxAbsDiffLogits <= 1e-4 && r.maxAbsDiffProbabilities <= 1e-4 && r.argmaxAgree);
log(ok ? "OK: every difference is within 1e-4" : "FAILED: a difference exceeds 1e-4");
process.exitCode = ok ? 0 : 1;
