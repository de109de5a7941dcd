/**
 * The picture grid of the NIPS 2017 report: for each of the first evaluation
 * images, one row on the clean image and one on the attacked image; columns:
 * the input itself (No defense), then every defense's output (JPEG, each patch
 * VAE, the ensemble: each a column of the sweep), each captioned with the classifier's prediction. It
 * shows what each patch size reconstructs, and whether it is still the photograph.
 */
import { dispose, manualSeed, noGrad, tidy } from "../../core/engine.js";
import { tensor, type Tensor } from "../../core/tensor.js";
import { createAttack } from "../../attacks/index.js";
import { deriveSeed } from "../../data/random.js";
import type { Defense } from "../../defenses/index.js";
import type { ImageClassifier } from "../../models/classifiers.js";
import type { GridCell, GridImage } from "../results.js";
import { ATTACK_TITLES, type AttackKey } from "./columns.js";

export interface GridInput {
  classifier: ImageClassifier;
  columns: readonly Defense[];
  /** Images [k, 3, H, W] and their labels. */
  images: Tensor;
  labels: readonly number[];
  ids: readonly string[];
  attack: AttackKey;
  epsilon: number;
  ifgsmSteps: number;
  classNames: readonly string[];
  seed: number;
}

function asImages(t: Tensor): GridImage[] {
  const [n, c, h, w] = t.dims;
  const data = tidy(() => t.contiguous().dataSync() as Float32Array);
  const per = c * h * w;
  return Array.from({ length: n }, (_, i) => ({
    width: w,
    height: h,
    channels: c as 3,
    data: data.slice(i * per, (i + 1) * per),
  }));
}

function predictions(classifier: ImageClassifier, x: Tensor): number[] {
  return tidy(() => noGrad(() => classifier.forward(x).argmax(1).toArray() as number[]));
}

/** Column headers of the grid: the input itself, then every defense but the first (No defense). */
export function gridHeaders(columns: readonly Defense[]): string[] {
  return ["input (No defense)", ...columns.slice(1).map((c) => c.name)];
}

/** The input's and each defense's output on `input`, with the classifier's predictions. */
async function outputsOn(g: GridInput, input: Tensor): Promise<{ images: GridImage[]; preds: number[] }[]> {
  const outputs = [{ images: asImages(input), preds: predictions(g.classifier, input) }];
  for (const d of g.columns.slice(1)) {
    const out = await d.apply(input);
    try {
      outputs.push({ images: asImages(out), preds: predictions(g.classifier, out) });
    } finally {
      out.dispose();
    }
  }
  return outputs;
}

/** Rows of cells: clean and attacked per image, side by side; columns[0] must be No defense. */
export async function pictureGrid(g: GridInput): Promise<GridCell[][]> {
  manualSeed(deriveSeed(g.seed, 0x67726964));
  const y = tensor(
    BigInt64Array.from(g.labels, (l) => BigInt(l)),
    [g.labels.length],
  );
  const attack =
    g.attack === "fgsm"
      ? createAttack("fgsm", g.classifier, { eps: g.epsilon })
      : createAttack("ifgsm", g.classifier, { eps: g.epsilon, steps: g.ifgsmSteps });
  const adv = await attack.generate(g.images, y);
  const name = (k: number) => g.classNames[k] ?? String(k);
  const rows: GridCell[][] = [];
  try {
    for (const [what, input] of [
      ["clean", g.images],
      [`${ATTACK_TITLES[g.attack]} eps ${g.epsilon}`, adv],
    ] as const) {
      const outputs = await outputsOn(g, input);
      g.ids.forEach((id, i) => {
        rows.push(
          outputs.map((o, j) => ({
            image: o.images[i],
            caption:
              (j === 0 ? `${id} ${what}\ntrue: ${name(g.labels[i])}\n` : "\n\n") +
              `pred: ${name(o.preds[i])}${o.preds[i] === g.labels[i] ? " (right)" : ""}`,
          })),
        );
      });
    }
  } finally {
    dispose([adv, y]);
  }
  // Clean and attacked rows of the same image next to each other.
  const k = g.ids.length;
  return Array.from({ length: 2 * k }, (_, r) => rows[(r % 2) * k + Math.floor(r / 2)]);
}
