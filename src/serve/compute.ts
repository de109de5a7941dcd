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

export async function purifyBatch(defense: Defense, images: PixelImage[]): Promise<PixelImage[]> {
  const x = stackImages(images);
  try {
    const y = await defense.apply(x);
    try {
      return unstackImages(y);
    } finally {
      y.dispose();
    }
  } finally {
    x.dispose();
  }
}

/** Probabilities of the classifier behind each defense: result[image][defense]. */
export async function classifyBatch(
  classifier: ImageClassifier,
  defenses: readonly Defense[],
  images: PixelImage[],
): Promise<Float32Array[][]> {
  const x = stackImages(images);
  const out: Float32Array[][] = images.map(() => []);
  try {
    for (const d of defenses) {
      const purified = await d.apply(x);
      try {
        const probs = await probabilities(classifier, purified);
        probs.forEach((p, i) => out[i].push(p));
      } finally {
        purified.dispose();
      }
    }
    return out;
  } finally {
    x.dispose();
  }
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
