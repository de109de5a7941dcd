/**
 * Shared set-up of the service tests: freshly initialised models (no trained
 * weights: these tests check the plumbing, not accuracy) saved to and loaded
 * from temporary checkpoints, test servers, and image files made with sharp.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { manualSeed } from "../../src/core/engine.js";
import { loadMnist } from "../../src/data/mnist.js";
import { saveCheckpoint } from "../../src/models/checkpoint.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import { ConvVae } from "../../src/models/vae.js";
import { sampleSet, type SampleSet } from "../../src/serve/context.js";
import { loadServeModels, type ServeModels } from "../../src/serve/models.js";
import { createServer, type Server, type ServeOptions } from "../../src/serve/server.js";

/** A small VAE of the MNIST shape: enough to exercise the vae defense, quick to run. */
export const TINY_VAE = {
  inputShape: [1, 28, 28] as [number, number, number],
  encoder: [
    { channels: 4, pool: true },
    { channels: 4, pool: true },
  ],
  latentDim: 8,
};

export interface Fixture {
  dir: string;
  classifierFile: string;
  vaeFile: string;
  models: ServeModels;
  samples: SampleSet;
  cleanup(): void;
}

/** Checkpoints of a fresh MnistCnn and a tiny VAE in a temporary folder, loaded as the CLI loads them. */
export function makeFixture(defenses: string[] = ["vae", "jpeg:23"]): Fixture {
  manualSeed(0);
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-serve-"));
  const classifierFile = join(dir, "classifier.safetensors");
  const vaeFile = join(dir, "vae.safetensors");
  const clf = new MnistCnn();
  const vae = new ConvVae(TINY_VAE);
  saveCheckpoint(classifierFile, clf);
  saveCheckpoint(vaeFile, vae);
  clf.dispose();
  vae.dispose();
  const models = loadServeModels({ classifier: classifierFile, vae: vaeFile, defenses });
  const test = loadMnist({ split: "test", limit: 20 });
  const samples = sampleSet(test, 20);
  test.images.dispose();
  test.labels.dispose();
  return {
    dir,
    classifierFile,
    vaeFile,
    models,
    samples,
    cleanup() {
      models.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function makeServer(f: Fixture, options: Partial<ServeOptions> = {}): Server {
  return createServer({ models: f.models, samples: f.samples, ...options });
}

/** An MNIST-like test image: a light stroke on black, as PNG (or another format). */
export async function digitImage(
  format: "png" | "jpeg" | "webp" | "gif" = "png",
  width = 28,
  height = 28,
): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = Math.floor(width / 2) - 2; x < Math.floor(width / 2) + 2; x++)
      pixels.fill(230, (y * width + x) * 3, (y * width + x) * 3 + 3);
  }
  const img = sharp(pixels, { raw: { width, height, channels: 3 } });
  return img[format]().toBuffer();
}

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/**
 * A decompression bomb: a PNG whose header claims width x height grayscale
 * pixels but whose data is a few compressed rows of zeros (bytes for a
 * gigapixel image). The pixel limit must refuse it from the header, before a
 * decoder allocates anything.
 */
export function pngBomb(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  const raw = Buffer.alloc(Math.min(height, 64) * (width + 1)); // filter byte + zero pixels per row
  const idat = deflateSync(raw, { level: 9 });
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** Values of one Prometheus metric series, e.g. metricValue(text, 'vaeguard_batch_size_sum{operation="purify"}'). */
export function metricValue(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
