/**
 * Square Attack, L-inf (Andriushchenko, Croce, Flammarion & Hein 2020, "Square
 * Attack: a query-efficient black-box adversarial attack via random search"),
 * following the authors' square_attack_linf. Gradient-free: it only calls
 * model.forward under no-grad, so it is the check for masked or obfuscated
 * gradients (a defense that stops PGD but not Square is masking gradients).
 *
 * Start from vertical stripes (x + eps * a random sign per channel and column),
 * then, per image still not fooled, try to replace a random s x s square by
 * x + eps * (a random sign per channel), and keep the change when the margin
 * loss falls. The side s follows the paper's schedule: p (the fraction of
 * pixels changed) starts at pInit and halves at 10, 50, 200, 500, 1000, 2000,
 * 4000, 6000 and 8000 of 10000 iterations (rescaled to the query budget);
 * s = round(sqrt(p * H * W)), between 1 and min(H, W) - 1. Margin loss on the
 * logits: untargeted z_y - max_{j != y} z_j, targeted max_{j != t} z_j - z_t;
 * an image is fooled when its margin is negative. Images the model already
 * gets wrong (untargeted) or already assigns to the target (targeted) are
 * returned unchanged.
 *
 * Norm: L-inf. Options: eps (required, in [0, 1]), queries (default 1000 model
 * evaluations per image, the stripe initialisation included, plus one clean
 * evaluation; the paper uses 10000), pInit (default 0.05, the paper's L-inf
 * value), eotSamples (forward passes averaged per query on a randomized model;
 * default 1, or DEFAULT_RANDOMIZED_EOT_SAMPLES when model.randomized), seed
 * (default: drawn from libtorch's generator, so manualSeed fixes it).
 * Input: images [N, C, H, W] in [0, 1] and labels [N]; output: a new tensor of
 * the same shape, in [0, 1], with ||x_adv - x||_inf <= eps.
 */
import { noGrad, noGradAsync, tidy, tidyAsync } from "../core/engine.js";
import { ArgumentError, ShapeError } from "../core/errors.js";
import { describeValues, readOptions, type OptionsOf, type Schema, type ValuesOf } from "../core/params.js";
import { Tensor, randint, tensor } from "../core/tensor.js";
import { fail } from "../core/validate.js";
import { LIMITS } from "../core/limits.js";
import { mulberry32 } from "../data/random.js";
import { checkClassifier, inEvalMode, type Classifier } from "../models/types.js";
import { eotCopiesPerPass, eotNoisePerRow, getEotBatchValues } from "./gradient.js";
import { EOT_SAMPLES, LINF_EPS, checkBatch, checkLogits, checkTargeted, resolveEotSamples } from "./base.js";
import type { Attack, AttackDefinition } from "./types.js";

const PARAMS = {
  eps: LINF_EPS,
  queries: { type: "int", min: 1, max: LIMITS.queries, default: 1000, doc: "model evaluations per image" },
  pInit: {
    type: "number",
    min: 0,
    max: 1,
    default: 0.05,
    doc: "initial fraction of pixels in the square",
    check: (p: number) => {
      if (p === 0) fail("number greater than 0 and at most 1", "pInit", p);
    },
  },
  eotSamples: { ...EOT_SAMPLES, doc: "forward passes averaged per query (EOT)" },
  seed: {
    type: "int",
    min: 0,
    defaultText: "drawn from libtorch's generator",
    doc: "seed of the random search",
  },
} as const satisfies Schema;

export type SquareOptions = OptionsOf<typeof PARAMS>;
type Values = ValuesOf<typeof PARAMS>;

export const SQUARE_DEFINITION: AttackDefinition<typeof PARAMS> = {
  kind: "square",
  title: "Square",
  summary: "Square Attack (Andriushchenko et al. 2020), L-inf, gradient-free random search (1000 queries)",
  params: PARAMS,
  exampleEps: 0.1,
  label: (v) => `Square(${v.queries})`,
  describe: (v) => ({
    attack: "Square",
    norm: "Linf",
    ...describeValues(PARAMS, { ...v, eotSamples: v.eotSamples ?? 1 }),
  }),
  create: (model, options) => new SquareAttack(model, options as SquareOptions),
};

/** The paper's piecewise-constant schedule of p, for iteration `it` of `total`. */
export function squareFraction(pInit: number, it: number, total: number): number {
  const i = Math.trunc((it / total) * 10000);
  if (i > 10 && i <= 50) return pInit / 2;
  if (i > 50 && i <= 200) return pInit / 4;
  if (i > 200 && i <= 500) return pInit / 8;
  if (i > 500 && i <= 1000) return pInit / 16;
  if (i > 1000 && i <= 2000) return pInit / 32;
  if (i > 2000 && i <= 4000) return pInit / 64;
  if (i > 4000 && i <= 6000) return pInit / 128;
  if (i > 6000 && i <= 8000) return pInit / 256;
  if (i > 8000 && i <= 10000) return pInit / 512;
  return pInit;
}

function clip01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

/**
 * The initial point of one image (at offset `o` of `best` and `clean`):
 * vertical stripes, x + eps * a random sign per channel and column, clipped to [0, 1].
 */
function stripeStart(
  best: Float32Array,
  clean: Float32Array,
  o: number,
  [c, h, w]: readonly [number, number, number],
  eps: number,
  random: () => number,
): void {
  for (let ch = 0; ch < c; ch++) {
    for (let col = 0; col < w; col++) {
      const d = random() < 0.5 ? -eps : eps;
      for (let row = 0; row < h; row++) {
        const k = o + (ch * h + row) * w + col;
        best[k] = clip01(clean[k] + d);
      }
    }
  }
}

/** Side of the square that changes a fraction `p` of the pixels, between 1 and min(H, W) - 1. */
function squareSide(p: number, [c, h, w]: readonly [number, number, number]): number {
  const size = c * h * w;
  return Math.min(Math.max(Math.round(Math.sqrt((p * size) / c)), 1), Math.max(Math.min(h, w) - 1, 1));
}

/**
 * Fill `candidate` with the current best of one image (at offset `o`) with a
 * random s x s square replaced by x + eps * a random sign per channel.
 */
function proposeSquare(
  candidate: Float32Array,
  best: Float32Array,
  clean: Float32Array,
  o: number,
  [c, h, w]: readonly [number, number, number],
  s: number,
  eps: number,
  random: () => number,
): void {
  const size = c * h * w;
  const top = Math.floor(random() * (h - s + 1));
  const left = Math.floor(random() * (w - s + 1));
  candidate.set(best.subarray(o, o + size));
  // Redraw the signs until the square changes something (as the reference code does).
  for (;;) {
    let changed = false;
    for (let ch = 0; ch < c; ch++) {
      const d = random() < 0.5 ? -eps : eps;
      for (let row = top; row < top + s; row++) {
        for (let col = left; col < left + s; col++) {
          const k = (ch * h + row) * w + col;
          const v = clip01(clean[o + k] + d);
          if (Math.abs(v - best[o + k]) >= 1e-7) changed = true;
          candidate[k] = v;
        }
      }
    }
    if (changed) break;
  }
}

export class SquareAttack implements Attack {
  readonly norm = "Linf" as const;
  readonly supportsTargeted = true;
  readonly eps: number;
  readonly queries: number;
  readonly pInit: number;
  readonly eotSamples: number;
  readonly seed: number | undefined;
  private readonly model: Classifier;

  constructor(model: Classifier, options: SquareOptions) {
    this.model = checkClassifier(model, "Square");
    const o: Values = readOptions("Square", PARAMS, options);
    this.eps = o.eps;
    this.queries = o.queries;
    this.pInit = o.pInit;
    this.eotSamples = resolveEotSamples(model, o.eotSamples);
    this.seed = o.seed;
  }

  get name(): string {
    return SQUARE_DEFINITION.label(this.values());
  }

  private values(): Values {
    const { eps, queries, pInit, eotSamples, seed } = this;
    return { eps, queries, pInit, eotSamples, seed };
  }

  async generate(x: Tensor, labels: Tensor, options?: { targeted?: boolean }): Promise<Tensor> {
    const targeted = checkTargeted(options, this.supportsTargeted, "Square");
    tidy(() => checkBatch(x, labels, "Square"));
    if (x.rank !== 4) {
      throw new ShapeError(`Square: expected images [N, C, H, W] but received shape [${x.shape.join(", ")}]`);
    }
    const [n, c, h, w] = x.dims;
    const size = c * h * w;
    const seed = this.seed ?? noGrad(() => tidy(() => randint(0, 2147483647, [1]).item()));
    const random = mulberry32(seed);
    const clean = noGrad(() => tidy(() => x.detach().to("float32").to("cpu").dataSync() as Float32Array));
    const y = labels.toArray();
    const best = Float32Array.from(clean);
    if (this.eps === 0) return this.toTensor(best, [n, c, h, w], x);

    return inEvalMode(this.model, async () => {
      const all = Array.from({ length: n }, (_, i) => i);
      const cleanMargin = await this.margins(clean, all, [c, h, w], y, targeted, x);
      // Only images the model still gets right (or not yet on target) are attacked.
      let active = all.filter((i) => cleanMargin[i] > 0);
      const bestMargin = Float64Array.from(cleanMargin);
      if (active.length > 0) {
        for (const i of active) stripeStart(best, clean, i * size, [c, h, w], this.eps, random);
        const m = await this.margins(best, active, [c, h, w], y, targeted, x);
        active.forEach((i, j) => (bestMargin[i] = m[j]));
      }
      const candidate = new Float32Array(size);
      for (let it = 0; it < this.queries - 1; it++) {
        active = active.filter((i) => bestMargin[i] > 0);
        if (active.length === 0) break;
        const p = squareFraction(this.pInit, it, this.queries);
        const s = squareSide(p, [c, h, w]);
        const proposals = new Float32Array(active.length * size);
        active.forEach((i, j) => {
          proposeSquare(candidate, best, clean, i * size, [c, h, w], s, this.eps, random);
          proposals.set(candidate, j * size);
        });
        const m = await this.margins(
          proposals,
          null,
          [c, h, w],
          active.map((i) => y[i]),
          targeted,
          x,
        );
        active.forEach((i, j) => {
          if (m[j] < bestMargin[i]) {
            bestMargin[i] = m[j];
            best.set(proposals.subarray(j * size, (j + 1) * size), i * size);
          }
        });
      }
      return this.toTensor(best, [n, c, h, w], x);
    });
  }

  /**
   * Margin losses of the images `rows` of `data` (all of `data` when rows is
   * null, with `labels` aligned to it), averaged over eotSamples passes.
   */
  private async margins(
    data: Float32Array,
    rows: number[] | null,
    chw: number[],
    labels: number[],
    targeted: boolean,
    like: Tensor,
  ): Promise<Float64Array> {
    const size = chw[0] * chw[1] * chw[2];
    let batch = data;
    let ys = labels;
    if (rows !== null) {
      batch = new Float32Array(rows.length * size);
      rows.forEach((i, j) => batch.set(data.subarray(i * size, (i + 1) * size), j * size));
      ys = rows.map((i) => labels[i]);
    }
    const count = ys.length;
    const out = new Float64Array(count);
    await tidyAsync(async () => {
      const input = this.toTensor(batch, [count, ...chw], like);
      const copies = this.copiesPerPass(count, size);
      for (let done = 0; done < this.eotSamples;) {
        const c = Math.min(copies, this.eotSamples - done);
        done += c;
        const logits = await noGradAsync(() =>
          this.model.forward(c === 1 ? input : noGrad(() => input.repeat([c, 1, 1, 1]))),
        );
        const k = checkLogits(logits, count * c, "Square");
        const z = noGrad(() => tidy(() => logits.detach().to("float32").to("cpu").dataSync() as Float32Array));
        // Row r * count + i of the pass is copy r of image i.
        for (let row = 0; row < count * c; row++) {
          const i = row % count;
          const yi = ys[i];
          if (!(yi >= 0 && yi < k)) {
            throw new ArgumentError(
              `Square: expected labels between 0 and ${k - 1} (the model has ${k} classes) but received ${yi}`,
            );
          }
          let other = -Infinity;
          for (let j = 0; j < k; j++) if (j !== yi && z[row * k + j] > other) other = z[row * k + j];
          const own = z[row * k + yi];
          out[i] += (targeted ? other - own : own - other) / this.eotSamples;
        }
      }
    });
    return out;
  }

  /**
   * EOT copies of the batch per forward pass: several, as one batch, only for
   * a model that gradient attacks have already shown to draw its noise per row
   * (eotNoisePerRow; the copies would otherwise share one draw), under the same
   * memory cap as batched EOT gradients; else one pass per sample. One pass of
   * 10 x 12 MNIST images through the VAE defense costs about half of ten passes
   * of 12, where per-call overhead dominates.
   */
  private copiesPerPass(count: number, valuesPerImage: number): number {
    if (this.eotSamples === 1 || eotNoisePerRow(this.model) !== true) return 1;
    return eotCopiesPerPass(this.eotSamples, count, valuesPerImage, getEotBatchValues());
  }

  private toTensor(data: Float32Array, shape: number[], like: Tensor): Tensor {
    return tidy(() => {
      const t = tensor(data, shape, { device: like.device });
      return like.dtype === "float32" ? t : t.to(like.dtype);
    });
  }

  describe(): Record<string, number | string | boolean> {
    return SQUARE_DEFINITION.describe(this.values());
  }
}
