// Heavy check of the TFLite importer (not a unit test): vaeguard's float
// execution of a quantised .tflite classifier against a reference runtime's
// quantised execution (Arm NN CpuRef, scripts/tflite-reference.py), and
// vaeguard's top-1 accuracy on a labelled image folder (NIPS 2017 layout).
//
//   npx tsc -p tsconfig.json && node scripts/verify-tflite.mjs \
//       --model mobilenet_v2_1.0_224_quant.tflite --images <nips2017-dev folder> [options]
//     --agreement <n>          images compared with the reference (default 200; 0: none)
//     --accuracy <n>           images for vaeguard's accuracy (default: all; 0: none)
//     --size <s>               size the images are loaded at (default 299, the data set's)
//     --resize <list>          accuracy with: model (ResizedClassifier's bilinear resize, default), sharp (sharp's
//                              default lanczos3 resize to the model's input, before the model), crop (central 87.5%
//                              then the in-model resize, TF-slim's evaluation preprocessing); comma-separated
//     --reference-seconds <s>  stop the reference after this long (it resumes on the next call; default no limit)
//     --no-reference           do not run the reference; compare with the outputs it has written so far
//     --work <dir>             inputs, reference outputs and results (default runs/verify-tflite)
//     --batch <n>              images per forward pass (default 25)
//
// Agreement: both runtimes get the same uint8 images: the 299x299 image
// resized to the model's input by vaeguard's own resize (the one inside
// ResizedClassifier: bilinear, half-pixel centres), rounded to uint8. The
// reference's output is its quantised softmax; a top-1 that ties with other
// classes at the top quantisation level is reported as a tie.
// Accuracy: ResizedClassifier on the float 299x299 images (the resize inside
// the model), top-1 and top-5 against TrueLabel (the 1001-class index).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = (p) => join(root, "dist", "src", p);
const { loadTfliteModel } = await import(dist("models/tflite/model.js"));
const { ResizedClassifier } = await import(dist("models/resized-classifier.js"));
const { indexImageFolder, loadImages } = await import(dist("data/image-folder.js"));
const { noGrad, tidy } = await import(dist("core/engine.js"));
const F = await import(dist("nn/functional.js"));

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}
const modelPath = arg("model");
const imagesDir = arg("images");
if (!modelPath || !imagesDir) {
  console.error("verify-tflite: --model FILE.tflite and --images FOLDER are required");
  process.exit(2);
}
const agreementN = Number(arg("agreement", "200"));
const accuracyArg = arg("accuracy", undefined);
const size = Number(arg("size", "299"));
const batch = Number(arg("batch", "25"));
const refSeconds = arg("reference-seconds", undefined);
const work = resolve(arg("work", join(root, "runs", "verify-tflite")));
mkdirSync(work, { recursive: true });
const t0 = performance.now();

const model = loadTfliteModel(modelPath);
const [c, mh, mw] = model.inputShape;
const wrapped = new ResizedClassifier(model, { inputSize: size });
const index = indexImageFolder(imagesDir);
const entries = index.entries;
const files = entries.map((e) => e.file);
const labels = entries.map((e) => e.label);
console.log(
  `${model.source}: input ${c}x${mh}x${mw}, ${model.numClasses} classes; ${entries.length} images in ${index.root}`,
);

/** Logits for images [n, C, H, W] in batches, as a Float32Array [n * classes]. */
function logitsOf(net, images) {
  const n = images.dims[0];
  const out = new Float32Array(n * net.numClasses);
  for (let s = 0; s < n; s += batch) {
    const y = noGrad(() => tidy(() => net.forward(images.narrow(0, s, Math.min(batch, n - s)))));
    out.set(y.dataSync(), s * net.numClasses);
    y.dispose();
  }
  return out;
}

function topk(row, k) {
  return [...row.keys()].sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
}

function rows(flat, k) {
  return Array.from({ length: flat.length / k }, (_, i) => flat.subarray(i * k, (i + 1) * k));
}

// ---------------------------------------------------------------- accuracy on the data set
const cropped = new ResizedClassifier(model, { inputSize: size, centralFraction: 0.875 });
const VARIANTS = {
  model: { net: wrapped, load: { size }, what: `${size}x${size}, bilinear resize to ${mh}x${mw} inside the model` },
  sharp: { net: model, load: { size: [mh, mw], kernel: "lanczos3" }, what: `sharp's lanczos3 resize to ${mh}x${mw}` },
  crop: { net: cropped, load: { size }, what: `${size}x${size}, central 87.5% then bilinear resize inside the model` },
};

async function accuracy(n, variant) {
  const v = VARIANTS[variant];
  let top1 = 0;
  let top5 = 0;
  const preds = [];
  for (let s = 0; s < n; s += 100) {
    const chunk = files.slice(s, Math.min(n, s + 100));
    const images = await loadImages(chunk, v.load);
    const logits = rows(logitsOf(v.net, images), model.numClasses);
    images.dispose();
    logits.forEach((row, i) => {
      const t = topk(row, 5);
      preds.push(t[0]);
      if (t[0] === labels[s + i]) top1++;
      if (t.includes(labels[s + i])) top5++;
    });
    process.stdout.write(`\r  ${variant}: ${Math.min(n, s + 100)}/${n}`);
  }
  process.stdout.write("\n");
  return { images: n, top1: top1 / n, top5: top5 / n, what: v.what, predictions: preds };
}

const nAcc = accuracyArg === undefined ? entries.length : Math.min(Number(accuracyArg), entries.length);
const variants = nAcc > 0 ? arg("resize", "model").split(",") : [];
for (const v of variants) {
  if (!(v in VARIANTS)) {
    console.error(`verify-tflite: --resize takes ${Object.keys(VARIANTS).join(", ")}; received ${v}`);
    process.exit(2);
  }
}
const accFile = join(work, "accuracy.json");
const accAll = existsSync(accFile) ? (JSON.parse(readFileSync(accFile, "utf8")).variants ?? {}) : {};
for (const v of variants) {
  const a = await accuracy(nAcc, v);
  console.log(`vaeguard top-1 ${a.top1.toFixed(4)}, top-5 ${a.top5.toFixed(4)} on ${nAcc} images (${a.what})`);
  accAll[v] = { images: a.images, top1: a.top1, top5: a.top5, what: a.what, predictions: a.predictions };
  writeFileSync(
    accFile,
    JSON.stringify({ model: resolve(modelPath), images: index.root, variants: accAll }, null, 2) + "\n",
  );
}
if (accAll.model && accAll.sharp && accAll.model.images === accAll.sharp.images) {
  const same = accAll.sharp.predictions.filter((p, i) => p === accAll.model.predictions[i]).length;
  console.log(`sharp's resize and the in-model resize give the same top-1 on ${same}/${accAll.model.images} images`);
}

// ---------------------------------------------------------------- agreement with the reference
const nAgr = Math.min(agreementN, entries.length);
if (nAgr === 0) {
  console.log(`(no agreement check: --agreement 0) ${Math.round((performance.now() - t0) / 1000)} s`);
  process.exit(0);
}
const inputsFile = join(work, `inputs-${nAgr}.u8`);
const refFile = join(work, `reference-${nAgr}.f32`);
const images299 = await loadImages(files.slice(0, nAgr), { size });
// The resize inside ResizedClassifier, then uint8: what both runtimes are given.
const u8 = noGrad(() =>
  tidy(() =>
    F.interpolate(images299, { size: [mh, mw], mode: "bilinear", alignCorners: false })
      .mul(255)
      .round()
      .clamp(0, 255)
      .permute(0, 2, 3, 1)
      .contiguous()
      .to("uint8"),
  ),
);
const u8data = new Uint8Array(u8.dataSync());
if (!existsSync(inputsFile) || statSync(inputsFile).size !== u8data.byteLength) writeFileSync(inputsFile, u8data);
const asFloat = noGrad(() => tidy(() => u8.to("float32").div(255).permute(0, 3, 1, 2).contiguous()));
u8.dispose();
const oursU8 = rows(logitsOf(model, asFloat), model.numClasses).map((r) => topk(r, 1)[0]);
const oursFloat = rows(logitsOf(wrapped, images299), model.numClasses).map((r) => topk(r, 1)[0]);
asFloat.dispose();
images299.dispose();

const refArgs = [join(root, "scripts", "tflite-reference.py"), resolve(modelPath), inputsFile, refFile];
if (refSeconds) refArgs.push("--max-seconds", refSeconds);
let refInfo = { note: "--no-reference: the outputs the reference had written" };
if (!process.argv.includes("--no-reference")) {
  console.log(`reference: /usr/bin/python3 ${refArgs.join(" ")}`);
  const ref = spawnSync("/usr/bin/python3", refArgs, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (ref.status !== 0) {
    console.error(
      ref.stderr
        .split("\n")
        .filter((l) => l && !l.includes("Skipped"))
        .join("\n"),
    );
    process.exit(ref.status ?? 1);
  }
  refInfo = JSON.parse(ref.stdout.trim().split("\n").pop());
}
const refBytes = readFileSync(refFile);
const whole = refBytes.byteLength - (refBytes.byteLength % (4 * model.numClasses)); // a record being written is left out
const refOut = new Float32Array(refBytes.buffer.slice(refBytes.byteOffset, refBytes.byteOffset + whole));
const refRows = rows(refOut, model.numClasses);
const done = refRows.length;
let agreeU8 = 0;
let agreeFloat = 0;
let tiesTop = 0;
let agreeTieAware = 0;
let refCorrect = 0;
let oursCorrect = 0;
const disagreements = [];
refRows.forEach((r, i) => {
  const max = Math.max(...r);
  const tied = [...r.keys()].filter((k) => r[k] === max);
  const refTop = tied[0];
  if (tied.length > 1) tiesTop++;
  if (oursU8[i] === refTop) agreeU8++;
  if (tied.includes(oursU8[i])) agreeTieAware++;
  else disagreements.push({ id: entries[i].id, ours: oursU8[i], reference: tied, label: labels[i] });
  if (oursFloat[i] === refTop) agreeFloat++;
  if (refTop === labels[i]) refCorrect++;
  if (oursU8[i] === labels[i]) oursCorrect++;
});
const result = {
  model: resolve(modelPath),
  images: index.root,
  agreement: {
    images: done,
    requested: nAgr,
    sameUint8Input: agreeU8 / done,
    sameUint8InputTieAware: agreeTieAware / done,
    referenceTopTies: tiesTop,
    float299VersusReference: agreeFloat / done,
    referenceTop1: refCorrect / done,
    vaeguardTop1SameImages: oursCorrect / done,
    disagreements,
  },
  reference: refInfo,
  seconds: Math.round((performance.now() - t0) / 1000),
};
writeFileSync(join(work, `agreement-${nAgr}.json`), JSON.stringify(result, null, 2) + "\n");
console.log(
  `agreement on ${done}/${nAgr} images (same uint8 ${mh}x${mw} input): top-1 ${result.agreement.sameUint8Input.toFixed(4)} ` +
    `(${agreeTieAware}/${done} counting ties at the reference's top, ${tiesTop} such ties); ` +
    `vaeguard on the float 299x299 image vs reference: ${result.agreement.float299VersusReference.toFixed(4)}`,
);
console.log(
  `  on these images: reference top-1 accuracy ${result.agreement.referenceTop1.toFixed(4)}, vaeguard ${result.agreement.vaeguardTop1SameImages.toFixed(4)}`,
);
if (done < nAgr) console.log(`  the reference has done ${done} of ${nAgr} images; run again to continue`);
console.log(`results: ${join(work, `agreement-${nAgr}.json`)} (${result.seconds} s)`);
