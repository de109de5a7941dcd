/**
 * The batch runners behind the endpoints: each takes the images of one
 * batch (CHW float arrays of one shape), runs them through libtorch as one
 * [N, C, H, W] tensor, and splits the results again. Tensors never outlive a
 * call: everything made here is disposed before it returns.
 */
import { noGrad, tidy } from "../core/engine.js";
import { tensor, type Tensor } from "../core/tensor.js";
import { createAttack } from "../attacks/index.js";
import { DefendedModel, type Defense, type DefenseView } from "../defenses/index.js";
import type { AttackChoice } from "../eval/config.js";
import type { ImageClassifier } from "../models/classifiers.js";
import { softmax } from "../nn/functional.js";
import type { PixelImage } from "./images.js";

/** Stack images of one shape into a tensor [N, C, H, W]. */
export function stackImages(images: readonly PixelImage[]): Tensor {
  const shape = images[0].shape;
  const size = images[0].data.length;
  const all = new Float32Array(images.length * size);
  images.forEach((img, i) => all.set(img.data, i * size));
  return tensor(all, [images.length, ...shape]);
}

/** Split a tensor [N, C, H, W] back into N images. */
export function unstackImages(t: Tensor): PixelImage[] {
  const [n, c, h, w] = t.dims;
  const data = noGrad(() => tidy(() => t.detach().float().contiguous().dataSync())) as Float32Array;
  const size = c * h * w;
  return Array.from({ length: n }, (_, i) => ({
    data: data.slice(i * size, (i + 1) * size),
    shape: [c, h, w] as [number, number, number],
  }));
}

/** Class probabilities [N][K] of the classifier on a batch. */
export async function probabilities(classifier: ImageClassifier, x: Tensor): Promise<Float32Array[]> {
  const flat = noGrad(() =>
    tidy(() => {
      const logits = classifier.forward(x);
      return softmax(logits.float(), 1).contiguous().dataSync() as Float32Array;
    }),
  );
  const k = classifier.numClasses;
  return Array.from({ length: x.dims[0] }, (_, i) => flat.slice(i * k, (i + 1) * k));
}

/** A batch of images of one shape as one flat float32 array (what crosses to the model worker). */
export interface FlatBatch {
  data: Float32Array;
  /** [N, C, H, W] */
  shape: [number, number, number, number];
}

/** Images of one shape as one new flat array (never a view of an image's own buffer: it may be transferred). */
export function flattenImages(images: readonly PixelImage[]): FlatBatch {
  const [c, h, w] = images[0].shape;
  const size = c * h * w;
  const data = new Float32Array(images.length * size);
  images.forEach((img, i) => {
    if (img.data.length !== size) throw new Error(`batch of mixed image sizes (${img.data.length} != ${size})`);
    data.set(img.data, i * size);
  });
  return { data, shape: [images.length, c, h, w] };
}

/** Split a flat batch into images: views of its buffer, no copies. */
export function splitImages(batch: FlatBatch): PixelImage[] {
  const [n, c, h, w] = batch.shape;
  const size = c * h * w;
  return Array.from({ length: n }, (_, i) => ({
    data: batch.data.subarray(i * size, (i + 1) * size),
    shape: [c, h, w] as [number, number, number],
  }));
}

/** Split a flat [N * K] array into N rows (views, no copies). */
export function splitRows(data: Float32Array, n: number): Float32Array[] {
  const k = data.length / n;
  return Array.from({ length: n }, (_, i) => data.subarray(i * k, (i + 1) * k));
}

/** The tensor's values as a flat float32 array of its own. */
function flatOf(t: Tensor): FlatBatch {
  const [n, c, h, w] = t.dims;
  const data = noGrad(() => tidy(() => t.detach().float().contiguous().dataSync())) as Float32Array;
  return { data, shape: [n, c, h, w] };
}

/** Purify a flat batch; the result is a flat batch of its own (the shape a defense returns). */
export async function purifyFlat(defense: Defense, batch: FlatBatch): Promise<FlatBatch> {
  const x = tensor(batch.data, batch.shape);
  try {
    const y = await defense.apply(x);
    try {
      return flatOf(y);
    } finally {
      y.dispose();
    }
  } finally {
    x.dispose();
  }
}

export async function purifyBatch(defense: Defense, images: PixelImage[]): Promise<PixelImage[]> {
  return splitImages(await purifyFlat(defense, flattenImages(images)));
}

/** Probabilities behind each defense as one flat array [N, D, K] (image-major). */
export async function classifyFlat(
  classifier: ImageClassifier,
  defenses: readonly Defense[],
  batch: FlatBatch,
): Promise<Float32Array> {
  const x = tensor(batch.data, batch.shape);
  const n = batch.shape[0];
  const k = classifier.numClasses;
  const d = defenses.length;
  const out = new Float32Array(n * d * k);
  try {
    for (let j = 0; j < d; j++) {
      const purified = await defenses[j].apply(x);
      try {
        const probs = await probabilities(classifier, purified);
        probs.forEach((p, i) => out.set(p, (i * d + j) * k));
      } finally {
        purified.dispose();
      }
    }
    return out;
  } finally {
    x.dispose();
  }
}

/** result[image][defense] from classifyFlat's [N, D, K] array (views, no copies). */
export function splitClassified(data: Float32Array, n: number, d: number): Float32Array[][] {
  const k = data.length / (n * d);
  return Array.from({ length: n }, (_, i) =>
    Array.from({ length: d }, (_, j) => data.subarray((i * d + j) * k, (i * d + j + 1) * k)),
  );
}

/** Probabilities of the classifier behind each defense: result[image][defense]. */
export async function classifyBatch(
  classifier: ImageClassifier,
  defenses: readonly Defense[],
  images: PixelImage[],
): Promise<Float32Array[][]> {
  const flat = await classifyFlat(classifier, defenses, flattenImages(images));
  return splitClassified(flat, images.length, defenses.length);
}

export interface AttackJob {
  image: PixelImage;
  label: number;
}

export interface AttackSettings {
  choice: AttackChoice;
  eps: number;
  mode: DefenseView;
  defense: Defense;
  /** EOT samples over a random defense in adaptive mode (undefined: the attack's default). */
  eot?: number;
}

export interface AttackOutcome {
  adversarial: PixelImage;
  purified: PixelImage;
  /** Classifier alone on the adversarial image. */
  adversarialProbs: Float32Array;
  /** Classifier on the purified adversarial image (the defended system's answer). */
  purifiedProbs: Float32Array;
}

/**
 * Attack a batch with the library's attacks and defended model: gray-box
 * attacks the bare classifier, adaptive attacks defense + classifier (exact
 * gradients, BPDA, EOT). The purified image is what the deployed system sees.
 */
export async function attackBatch(
  classifier: ImageClassifier,
  s: AttackSettings,
  jobs: AttackJob[],
): Promise<AttackOutcome[]> {
  const x = stackImages(jobs.map((j) => j.image));
  const y = tensor(BigInt64Array.from(jobs.map((j) => BigInt(j.label))), [jobs.length]);
  const owned: Tensor[] = [x, y];
  try {
    const model = new DefendedModel(s.defense, classifier, { view: s.mode });
    const options: Record<string, unknown> = { ...s.choice.params, eps: s.eps };
    if (s.eot !== undefined && model.randomized) options.eotSamples = s.eot;
    const attack = createAttack(s.choice.kind, model, options);
    const adv = await attack.generate(x, y);
    owned.push(adv);
    const purified = await s.defense.apply(adv);
    owned.push(purified);
    const advProbs = await probabilities(classifier, adv);
    const purProbs = await probabilities(classifier, purified);
    const advImages = unstackImages(adv);
    const purImages = unstackImages(purified);
    return jobs.map((_, i) => ({
      adversarial: advImages[i],
      purified: purImages[i],
      adversarialProbs: advProbs[i],
      purifiedProbs: purProbs[i],
    }));
  } finally {
    owned.forEach((t) => t.dispose());
  }
}

export interface Prediction {
  label: number;
  className: string;
  probability: number;
}

export function topK(probs: Float32Array, k: number, classNames: readonly string[]): Prediction[] {
  return Array.from(probs, (p, i) => ({ label: i, p }))
    .sort((a, b) => b.p - a.p)
    .slice(0, k)
    .map(({ label, p }) => ({ label, className: classNames[label], probability: Number(p.toFixed(6)) }));
}
