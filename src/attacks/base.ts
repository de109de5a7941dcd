/**
 * What every attack shares: the parameters common to attacks (budget, EOT
 * samples), batch and logits validation, and the two projections (L-inf box,
 * per-sample L2 ball) that keep an attack inside its budget.
 */
import { noGrad, tidy } from "../core/engine.js";
import { ArgumentError, ShapeError } from "../core/errors.js";
import type { IntParam, NumberParam } from "../core/params.js";
import { Tensor, where } from "../core/tensor.js";
import { FLOAT_DTYPES, checkBool, checkInt, fail } from "../core/validate.js";
import { LIMITS } from "../core/limits.js";
import type { Classifier } from "../models/types.js";

/**
 * EOT samples used on a randomized model (model.randomized) when the caller
 * gives none. Deterministic models default to 1 (more passes would give the
 * same gradient).
 */
export const DEFAULT_RANDOMIZED_EOT_SAMPLES = 10;

/** The explicit value when given, else 1, or DEFAULT_RANDOMIZED_EOT_SAMPLES on a randomized model. */
export function resolveEotSamples(model: Classifier, eotSamples: number | undefined): number {
  if (eotSamples !== undefined) return checkInt(eotSamples, "eotSamples", 1, LIMITS.eotSamples);
  return model.randomized === true ? DEFAULT_RANDOMIZED_EOT_SAMPLES : 1;
}

/** L-inf budget: a pixel-space distance, so it lives in [0, 1]; the caller gives it (the epsilon grid). */
export const LINF_EPS = {
  type: "number",
  min: 0,
  max: 1,
  required: true,
  inSpec: false,
  doc: "L-inf budget in [0, 1] pixel units",
} as const satisfies NumberParam;

/** EOT samples: the caller sets them (--eot); the default depends on the model (resolveEotSamples). */
export const EOT_SAMPLES = {
  type: "int",
  min: 1,
  max: LIMITS.eotSamples,
  inSpec: false,
  doc: "gradient passes averaged per step (EOT)",
  defaultText: `1, or ${DEFAULT_RANDOMIZED_EOT_SAMPLES} on a randomized model`,
} as const satisfies IntParam;

export function checkTargeted(
  options: { targeted?: boolean } | undefined,
  supportsTargeted: boolean,
  attack: string,
): boolean {
  if (options !== undefined && (typeof options !== "object" || options === null)) {
    fail("an options object", `the options of ${attack}.generate`, options);
  }
  const targeted = checkBool(options?.targeted ?? false, "targeted");
  if (targeted && !supportsTargeted) throw new ArgumentError(`${attack} does not support targeted attacks`);
  return targeted;
}

/**
 * Check a batch of images and its labels: x is a floating tensor [N, ...] with
 * values in [0, 1], labels are N integer class indices. Returns the labels as
 * int64 (the same tensor when they are int64 already, else a new one that
 * belongs to the open scope).
 */
export function checkBatch(x: unknown, labels: unknown, attack: string): Tensor {
  if (!(x instanceof Tensor)) fail("a tensor of images", `x of ${attack}`, x);
  if (!(labels instanceof Tensor)) fail("a tensor of class indices", `labels of ${attack}`, labels);
  if (x.rank < 2 || x.dims[0] === 0) {
    throw new ShapeError(
      `${attack}: expected a non-empty batch of images [N, C, H, W] but received shape [${x.shape.join(", ")}]`,
    );
  }
  if (!FLOAT_DTYPES.has(x.dtype)) fail("floating-point images", `x of ${attack}`, x.dtype);
  if (labels.rank !== 1 || labels.dims[0] !== x.dims[0]) {
    throw new ShapeError(
      `${attack}: expected ${x.dims[0]} labels of shape [${x.dims[0]}] but received shape [${labels.shape.join(", ")}]`,
    );
  }
  if (FLOAT_DTYPES.has(labels.dtype) || labels.dtype === "bool")
    fail("integer class indices", `labels of ${attack}`, labels.dtype);
  const [lo, hi] = noGrad(() => tidy(() => [x.min().item(), x.max().item()]));
  // Images are [0, 1] pixels; a tiny slack absorbs float rounding from earlier transforms.
  if (!(lo >= -1e-6 && hi <= 1 + 1e-6)) {
    throw new ArgumentError(
      `${attack}: expected images with values in [0, 1] but received values in [${lo}, ${hi}]; attacks work in [0, 1] pixel space (normalise inside the model)`,
    );
  }
  return labels.dtype === "int64" ? labels : labels.to("int64");
}

/** The labels must index the model's logits; checked once the number of classes is known. */
export function checkLabelRange(labels: Tensor, numClasses: number, attack: string): void {
  const [lo, hi] = noGrad(() => tidy(() => [labels.min().item(), labels.max().item()]));
  if (lo < 0 || hi >= numClasses) {
    throw new ArgumentError(
      `${attack}: expected labels between 0 and ${numClasses - 1} (the model has ${numClasses} classes) but received labels in [${lo}, ${hi}]`,
    );
  }
}

/** Logits must be [N, K]; returns K. */
export function checkLogits(logits: unknown, n: number, attack: string): number {
  if (!(logits instanceof Tensor) || logits.rank !== 2 || logits.dims[0] !== n) {
    const shape = logits instanceof Tensor ? `shape [${logits.shape.join(", ")}]` : String(logits);
    throw new ShapeError(`${attack}: the model must return logits [${n}, K] but returned ${shape}`);
  }
  return logits.dims[1];
}

/** Shape [N, 1, 1, ...] for broadcasting a per-sample value over an image batch. */
export function perSampleShape(x: Tensor): number[] {
  return [x.dims[0], ...x.dims.slice(1).map(() => 1)];
}

/** Per-sample L2 norms of a batch, shaped [N, 1, ..., 1] for broadcasting. */
export function sampleNorms(t: Tensor): Tensor {
  return tidy(() => t.flatten(1).norm(2, 1).reshape(perSampleShape(t)));
}

/**
 * Project x_adv onto {x' : ||x' - x||_inf <= eps} and then onto [0, 1]. Since
 * x is in [0, 1], the second clip only moves pixels toward x, so the result
 * satisfies both constraints.
 */
export function projectLinf(xAdv: Tensor, x: Tensor, eps: number): Tensor {
  return tidy(() => {
    const lower = x.sub(eps);
    const upper = x.add(eps);
    return xAdv.clamp(lower, upper).clamp(0, 1);
  });
}

/**
 * Project x_adv onto the per-sample ball {x' : ||x' - x||_2 <= eps} (radial
 * scaling, which is the Euclidean projection) and then onto [0, 1]; clipping
 * shrinks every coordinate of x' - x, so the norm stays within eps.
 */
export function projectL2(xAdv: Tensor, x: Tensor, eps: number): Tensor {
  return tidy(() => {
    const delta = xAdv.sub(x);
    const norms = sampleNorms(delta);
    // Scale by eps / norm only where the norm exceeds eps; float rounding of the
    // norm is absorbed by a relative 1e-6 margin so the result never overshoots.
    const factor = where(norms.gt(eps), norms.reciprocal().mul(eps * (1 - 1e-6)), 1);
    return x.add(delta.mul(factor)).clamp(0, 1);
  });
}

/** Gradient scaled to unit L2 norm per sample (zero gradients stay zero). */
export function normalizeL2(g: Tensor): Tensor {
  return tidy(() => {
    const norms = sampleNorms(g);
    return g.div(norms.add(1e-12));
  });
}
