/**
 * The NIPS 2017 fixture of the large-image tests: six generated 299x299 PNGs
 * in the competition's layout (dev_dataset.csv with 1001-class labels) and a
 * tiny TF.js classifier with 1001 outputs, fixed weights.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A 299x299 picture: colour gradients and a bright square, different per seed. */
export async function writePng(file: string, seed: number, size = 299): Promise<void> {
  const r = rng(seed);
  const [a, b] = [r(), r()];
  const sq = { x: Math.floor(r() * (size - 80)), y: Math.floor(r() * (size - 80)) };
  const px = Buffer.alloc(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const inSq = x >= sq.x && x < sq.x + 80 && y >= sq.y && y < sq.y + 80;
      const i = (y * size + x) * 3;
      px[i] = inSq ? 250 : Math.round(255 * a * (x / size));
      px[i + 1] = inSq ? 240 : Math.round(255 * b * (y / size));
      px[i + 2] = inSq ? 30 : 128;
    }
  await sharp(px, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toFile(file);
}

export const IDS = ["0a", "1b", "2c", "3d", "4e", "5f"];

/** Writes the images under DIR/nips and the classifier under DIR/model. */
export async function writeNipsFixture(dir: string): Promise<{ images: string; model: string }> {
  const images = join(dir, "nips");
  mkdirSync(join(images, "images"), { recursive: true });
  const rows = ["ImageId,URL,x1,y1,x2,y2,TrueLabel,TargetClass"];
  for (const [i, id] of IDS.entries()) {
    await writePng(join(images, "images", `${id}.png`), 100 + i);
    rows.push(`${id},http://example.org/${id}.jpg,0,0,1,1,${1 + i * 7},${900 - i}`);
  }
  writeFileSync(join(images, "dev_dataset.csv"), rows.join("\n") + "\n");

  await tf.setBackend("cpu");
  const L = tf.layers;
  const m = tf.sequential({
    layers: [
      L.conv2d({
        inputShape: [299, 299, 3],
        filters: 4,
        kernelSize: 3,
        strides: 4,
        padding: "valid",
        activation: "relu",
      }),
      L.globalAveragePooling2d({}),
      L.dense({ units: 1001, activation: "softmax" }),
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
  const model = join(dir, "model");
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
        }),
      );
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
    }),
  );
  return { images, model };
}
