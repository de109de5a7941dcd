/**
 * `vaeguard reproduce-imagenet --quick` end to end on a tiny generated set:
 * six small PNGs from two "packages", a tiny TF.js classifier built and saved
 * with @tensorflow/tfjs here, 16x16 and 32x32 patch VAEs trained on a few
 * patches of the training package only. Checks every output file, the
 * columns, the train/evaluation split, the label source in the report, reuse
 * on a second run, and clear errors for bad splits. Also the
 * `models import-nsfwjs` command that provides the default classifier.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";

const bin = join(process.cwd(), "bin", "vaeguard.js");
let dir: string;
let images: string;
let model: string;

function run(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: "utf8",
    env: { ...process.env, VAEGUARD_THREADS: "2" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A small picture: a colour gradient with a bright square, different per seed. */
async function writePng(file: string, seed: number, w = 48, h = 40): Promise<void> {
  const r = rng(seed);
  const [a, b, c] = [r(), r(), r()];
  const sq = { x: Math.floor(r() * (w - 12)), y: Math.floor(r() * (h - 12)) };
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const inSq = x >= sq.x && x < sq.x + 12 && y >= sq.y && y < sq.y + 12;
      const i = (y * w + x) * 3;
      px[i] = inSq ? 250 : Math.round(255 * a * (x / w));
      px[i + 1] = inSq ? 240 : Math.round(255 * b * (y / h));
      px[i + 2] = inSq ? 30 : Math.round(255 * c * r());
    }
  await sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(file);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "vaeguard-repro-imagenet-"));
  images = join(dir, "photos");
  mkdirSync(join(images, "images"), { recursive: true });
  const rows = ["ImageId,TrueLabel,Source,Subject"];
  for (let i = 0; i < 6; i++) {
    const id = `img${i}`;
    await writePng(join(images, "images", `${id}.png`), 100 + i);
    rows.push(`${id},-1,${i < 3 ? "alpha" : "beta"},picture ${i}`);
  }
  writeFileSync(join(images, "images.csv"), rows.join("\n") + "\n");

  await tf.setBackend("cpu");
  const L = tf.layers;
  const m = tf.sequential({
    layers: [
      L.conv2d({ inputShape: [32, 32, 3], filters: 4, kernelSize: 3, padding: "same", activation: "relu" }),
      L.globalAveragePooling2d({}),
      L.dense({ units: 5, activation: "softmax" }),
    ],
  });
  const r = rng(3);
  m.setWeights(
    m.weights.map((w) =>
      tf.tensor(
        Float32Array.from({ length: w.shape.reduce((x: number, y) => x * (y as number), 1) }, () => (r() - 0.5) * 2),
        w.shape as number[],
      ),
    ),
  );
  model = join(dir, "model");
  await m.save(
    tf.io.withSaveHandler(async (a) => {
      mkdirSync(model, { recursive: true });
      writeFileSync(join(model, "weights.bin"), new Uint8Array(a.weightData as ArrayBuffer));
      writeFileSync(
        join(model, "model.json"),
        JSON.stringify({
          format: "layers-model",
          modelTopology: a.modelTopology,
          weightsManifest: [{ paths: ["weights.bin"], weights: a.weightSpecs }],
          userDefinedMetadata: {
            vaeguard: { classes: ["cls0", "cls1", "cls2", "cls3", "cls4"], inputScaling: "unit" },
          },
        }),
      );
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
    }),
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

const common = () => [
  "reproduce-imagenet",
  "--quick",
  "--images",
  images,
  "--model",
  model,
  "--train-sources",
  "alpha",
  "--patch-sizes",
  "16,32",
  "--patches",
  "32",
  "--checkpoints",
  join(dir, "ck"),
];

test("reproduce-imagenet --quick writes every output file, splits by source and reuses its work", () => {
  const out = join(dir, "out");
  const r = run([...common(), "--out", out, "--json", "--quiet"]);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as {
    rows: { attack: string; epsilon: number; relL2: number; accuracy: Record<string, number> }[];
    evalImages: { id: string; source: string; label: string }[];
    trainImages: { id: string; source: string }[];
    vaes: { patchSize: number; patches: number; reused: boolean }[];
  };
  assert.deepEqual(
    res.rows.map((x) => `${x.attack}@${x.epsilon}`),
    ["FGSM@0", "FGSM@0.03", "I-FGSM@0.03"],
  );
  for (const row of res.rows) {
    assert.deepEqual(Object.keys(row.accuracy), [
      "No defense",
      "JPEG 10",
      "JPEG 23",
      "VAE 16x16 s16",
      "VAE 32x32 s32",
      "Ensemble",
    ]);
    for (const v of Object.values(row.accuracy)) assert.ok(v >= 0 && v <= 1);
  }
  // Labels are the clean predictions, so the clean undefended row agrees everywhere.
  assert.equal(res.rows[0].accuracy["No defense"], 1);
  assert.equal(res.rows[0].relL2, 0);
  assert.ok(res.rows[1].relL2 > 0);
  assert.deepEqual(
    res.evalImages.map((e) => `${e.id}:${e.source}`),
    ["img3:beta", "img4:beta", "img5:beta"],
  );
  assert.ok(res.evalImages.every((e) => /^cls[0-4]$/.test(e.label)));
  assert.deepEqual(
    res.trainImages.map((e) => e.source),
    ["alpha", "alpha", "alpha"],
  );
  assert.deepEqual(
    res.vaes.map((v) => [v.patchSize, v.patches, v.reused]),
    [
      [16, 32, false],
      [32, 32, false],
    ],
  );

  const files = readdirSync(out);
  for (const f of [
    "report.md",
    "results.json",
    "results.csv",
    "grid.png",
    "plot-fgsm-gray-box.png",
    "plot-fgsm-gray-box.svg",
    "plot-i-fgsm-gray-box.png",
    "plot-i-fgsm-gray-box.svg",
  ]) {
    assert.ok(files.includes(f), `missing ${f} in ${files.join(", ")}`);
  }
  assert.deepEqual(readdirSync(join(out, "sweeps")).sort(), [
    "fgsm-gray-box-eps0.03.json",
    "fgsm-gray-box-eps0.json",
    "ifgsm-gray-box-eps0.03.json",
  ]);
  const report = readFileSync(join(out, "report.md"), "utf8");
  assert.match(report, /agreement with the clean prediction/);
  assert.match(report, /Luo & Pfister 2018, Table 6/);
  assert.match(report, /Luo & Pfister 2018, Table 7/);
  assert.match(report, /vaeguard reproduce-imagenet --quick/);
  assert.match(report, /training sources alpha \(3\), evaluation sources beta \(3\)/);
  assert.match(report, /far less/);
  const json = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as { metadata: { labelSource: string } };
  assert.match(json.metadata.labelSource, /^agreement with the clean prediction/);
  const csv = readFileSync(join(out, "results.csv"), "utf8");
  assert.match(csv.split("\n")[0], /VAE 16x16 s16/);
  const ck = readdirSync(join(dir, "ck"));
  assert.ok(
    ck.some((f) => f.startsWith("imagenet-patch16-alpha-32px-n32")),
    ck.join(", "),
  );
  assert.ok(
    ck.some((f) => f.startsWith("imagenet-patch32-alpha-32px-n32")),
    ck.join(", "),
  );

  // Second run: the VAEs come from their checkpoints and every sweep point from its results file.
  const again = run([...common(), "--out", out, "--json"]);
  assert.equal(again.code, 0, again.stderr);
  const res2 = JSON.parse(again.stdout) as typeof res;
  assert.deepEqual(
    res2.vaes.map((v) => v.reused),
    [true, true],
  );
  assert.match(again.stderr, /using the trained model/);
  assert.match(again.stderr, /resuming/);
  assert.deepEqual(res2.rows, res.rows);
});

test("a split that would train on evaluation images, or cannot be made, is refused with exit code 2", () => {
  const both = run([...common(), "--eval-sources", "alpha", "--out", join(dir, "bad1"), "--quiet"]);
  assert.equal(both.code, 2, both.stderr);
  assert.match(both.stderr, /alpha are both training and evaluation sources/);
  const unknown = run([...common(), "--train-sources", "gamma", "--out", join(dir, "bad2"), "--quiet"]);
  assert.equal(unknown.code, 2, unknown.stderr);
  assert.match(unknown.stderr, /gamma/);
  const noColumn = run([...common(), "--source-column", "Package", "--out", join(dir, "bad3"), "--quiet"]);
  assert.equal(noColumn.code, 2, noColumn.stderr);
  assert.match(noColumn.stderr, /no Package column value/);
  const badSize = run([...common().slice(0, 8), "--patch-sizes", "64", "--out", join(dir, "bad4"), "--quiet"]);
  assert.equal(badSize.code, 2, badSize.stderr);
  assert.match(badSize.stderr, /64x64 patches do not fit the classifier's 32x32 input/);
});

test("models import-nsfwjs writes a model.json with its shards and says where", () => {
  const out = join(dir, "models");
  const r = run(["models", "import-nsfwjs", "--models", "mobilenet_v2", "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  const json = join(out, "mobilenet_v2", "model.json");
  assert.ok(existsSync(json));
  assert.ok(existsSync(join(out, "mobilenet_v2", "group1-shard1of1.bin")));
  assert.ok(r.stdout.includes(json), r.stdout);
  const bad = run(["models", "import-nsfwjs", "--models", "resnet", "--out", out]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Expected one of mobilenet_v2, mobilenet_v2_mid, inception_v3 in --models/);
});
