/**
 * The loss gradient every gradient attack uses, with Expectation over
 * Transformation (Athalye, Carlini & Wagner 2018, "Obfuscated Gradients Give a
 * False Sense of Security", section 4.3): on a randomized model (a VAE defense
 * with latent noise) one gradient is one random draw, so the attack averages
 * the gradients of `eotSamples` independent draws. The draws go through the
 * model together, as one batch of the images repeated `eotSamples` times
 * (split into several passes under a memory cap), not one pass per draw.
 *
 * The returned gradient is that of the attack objective, always to be
 * ascended: the cross-entropy of the true label when untargeted, minus the
 * cross-entropy of the target label when targeted (so ascending it descends
 * the loss toward the target). With loss "margin" the cross-entropy is replaced
 * by Carlini & Wagner's margin on the logits (2017, "Towards Evaluating the
 * Robustness of Neural Networks", f_6 without its confidence clamp):
 * max_{j != y} z_j - z_y untargeted, z_t - max_{j != t} z_j targeted, which
 * does not saturate as the softmax does. The objective is summed over the batch, so each
 * image's gradient does not depend on the batch size. Input gradients come
 * from the functional grad(); parameter .grad is never touched.
 */
import { enableGrad, enableGradAsync, noGrad, noGradAsync, tidy, tidyAsync } from "../core/engine.js";
import { Tensor, arange, grad } from "../core/tensor.js";
import * as F from "../nn/functional.js";
import { inEvalMode, type Classifier } from "../models/types.js";
import { checkInt } from "../core/validate.js";
import { checkLabelRange, checkLogits, resolveEotSamples } from "./base.js";

/** The loss an attack ascends: cross-entropy (default) or the Carlini-Wagner margin. */
export type AttackLoss = "ce" | "margin";
export const ATTACK_LOSSES: readonly AttackLoss[] = ["ce", "margin"];

export interface LossGradientOptions {
  /** Descend the cross-entropy toward `labels` (target labels) instead of ascending it away from them. */
  targeted?: boolean;
  /** Forward/backward passes to average; default 1, or DEFAULT_RANDOMIZED_EOT_SAMPLES when model.randomized. */
  eotSamples?: number;
  /** Name used in error messages. */
  attack?: string;
  /** "ce" (default) or "margin". */
  loss?: AttackLoss;
  /**
   * Most input values (copies x images x values per image) in one EOT pass;
   * default getEotBatchValues() (DEFAULT_EOT_BATCH_VALUES unless set). 0: one
   * pass per sample.
   */
  eotBatchValues?: number;
}

export interface LossAndGradient {
  /** d objective / d x, averaged over the EOT samples; same shape as x. */
  gradient: Tensor;
  /** Per-sample objective [N] (higher is better for the attacker), averaged over the EOT samples. */
  loss: Tensor;
}

/** Per-sample attack objective from logits: CE(y) untargeted, -CE(target) targeted; or the margin (see above). */
export function attackObjective(logits: Tensor, labels: Tensor, targeted: boolean, loss: AttackLoss = "ce"): Tensor {
  return tidy(() => {
    if (loss === "margin") {
      const index = labels.reshape([-1, 1]);
      const own = logits.gather(1, index).squeeze(1);
      // The largest other logit: the label's own logit is masked out with -inf.
      const isLabel = arange(0, logits.dims[1], 1, { dtype: "int64", device: logits.device })
        .reshape([1, -1])
        .eq(index);
      const others = logits.maskedFill(isLabel, -Infinity).max(1);
      return targeted ? own.sub(others) : others.sub(own);
    }
    const ce = F.crossEntropy(logits, labels, "none");
    return targeted ? ce.neg() : ce;
  });
}

/**
 * Most input values (copies x images x values per image) that one EOT pass
 * puts through the model unless told otherwise: 2^19 (2 MiB of float32 input;
 * 668 MNIST images, 170 CIFAR-10 images). Memory grows with it: the autograd
 * graph of the MNIST VAE defense + CNN holds about 0.45 to 0.55 MB per 28x28
 * image (measured: 777 - 219 MB resident for 1,280 images), so about 300 MB
 * at the cap, where one pass per sample of a batch of 128 held about 70 MB.
 * With K = 10 a batch of up to 66 MNIST images goes in one pass, 128 images
 * in two passes of 5 copies.
 */
export const DEFAULT_EOT_BATCH_VALUES = 2 ** 19;

let eotBatchValues = DEFAULT_EOT_BATCH_VALUES;

/**
 * Set the process-wide cap on input values per EOT pass (see
 * DEFAULT_EOT_BATCH_VALUES); 0 runs one pass per sample as before batching.
 * Returns the previous cap. A call's `eotBatchValues` option overrides it.
 */
export function setEotBatchValues(values: number): number {
  const previous = eotBatchValues;
  eotBatchValues = checkInt(values, "eotBatchValues", 0);
  return previous;
}

/** The process-wide cap on input values per EOT pass. */
export function getEotBatchValues(): number {
  return eotBatchValues;
}

/**
 * How many of `samples` EOT copies of a batch of `n` images with
 * `valuesPerImage` values each go into one pass under `cap`: at least 1
 * (the whole batch, one copy: one pass per sample), at most `samples`.
 */
export function eotCopiesPerPass(samples: number, n: number, valuesPerImage: number, cap: number): number {
  return Math.max(1, Math.min(samples, Math.floor(cap / Math.max(1, n * valuesPerImage))));
}

/**
 * What batched EOT has learnt of a randomized model's noise: true once a pass
 * showed that copies of one image get different outputs (the model draws its
 * noise per row of the batch, as the VAE defenses do), false when they came
 * out identical (one draw shared by the whole batch, or no noise at all);
 * such a model then gets one pass per sample.
 */
const noisePerRow = new WeakMap<object, boolean>();

/** Whether batched EOT treats `model` as drawing its noise per row: undefined until a pass has shown it. */
export function eotNoisePerRow(model: Classifier): boolean | undefined {
  return noisePerRow.get(model);
}

/**
 * One EOT pass over `copies` copies of the batch: the summed draws, and how
 * many draws they are (`copies`, or 1 when the copies turned out to share one
 * draw of the noise and only the first one was kept).
 */
type Pass<T> = (copies: number, first: boolean) => Promise<{ sum: T; draws: number }>;

/**
 * The sum of `samples` random draws of a record of tensors. The draws go
 * through the model `copies` at a time as one batch of copies x N images (N
 * images repeated), one pass per group; with copies = 1 one pass per draw, the
 * way every draw went before batching. Only the running sum and one pass are
 * alive at once (a pass holds a forward pass's worth of memory until its
 * gradient is taken).
 */
async function sumOfPasses<T extends Record<string, Tensor>>(
  model: Classifier,
  samples: number,
  copies: number,
  pass: Pass<T>,
): Promise<T> {
  return tidyAsync(async () => {
    let sum: T | null = null;
    let done = 0;
    while (done < samples) {
      const c = noisePerRow.get(model) === false ? 1 : Math.min(copies, samples - done);
      const next = await tidyAsync(() => pass(c, done === 0));
      done += next.draws;
      if (sum === null) {
        sum = next.sum;
      } else {
        const previous: T = sum;
        sum = noGrad(() => Object.fromEntries(Object.entries(previous).map(([k, t]) => [k, t.add(next.sum[k])])) as T);
        for (const t of [...Object.values(previous), ...Object.values(next.sum)]) t.dispose();
      }
    }
    return sum!;
  });
}

/**
 * Resolve the copies per pass of a call; a model in training mode gets one
 * copy per pass (batch statistics would mix the copies).
 */
function copiesFor(model: Classifier, x: Tensor, samples: number, cap: number | undefined): number {
  if (samples === 1 || model.training) return 1;
  const n = x.dims[0];
  const limit = cap === undefined ? eotBatchValues : checkInt(cap, "eotBatchValues", 0);
  return eotCopiesPerPass(samples, n, n === 0 ? 0 : x.size / n, limit);
}

/**
 * For a randomized model not yet known to draw per row: whether the first two
 * copies of a batched pass gave identical logits (then the noise is shared
 * across the batch, or absent). Records the verdict.
 */
function copiesIdentical(model: Classifier, logits: Tensor, n: number, copies: number): boolean {
  if (copies < 2 || model.randomized !== true || noisePerRow.get(model) === true) return false;
  const same = noGrad(() =>
    tidy(
      () =>
        logits
          .narrow(0, 0, n)
          .detach()
          .sub(logits.narrow(0, n, n).detach())
          .abs()
          .max()
          .item() === 0,
    ),
  );
  noisePerRow.set(model, !same);
  return same;
}

/** `t` [copies * N, ...] summed over the copies: [N, ...]. */
function sumCopies(t: Tensor, copies: number): Tensor {
  return t.reshape([copies, -1, ...t.dims.slice(1)]).sum(0);
}

/** `x` repeated `copies` times along the batch: copy-major, rows [c * N + i] = x[i]. */
function repeatCopies(x: Tensor, copies: number): Tensor {
  return x.repeat([copies, ...x.dims.slice(1).map(() => 1)]);
}

/**
 * The objective and its input gradient, averaged over EOT samples. The caller
 * owns (and disposes) both tensors; x is not modified and needs no grad.
 *
 * With eotSamples K > 1 the K draws go through the model as one batch of
 * K x N images (x repeated K times; a model that draws its noise per row, as
 * the VAE defenses do, gives each copy its own draw), split into several
 * passes of whole copies when K x N x (values per image) exceeds
 * `eotBatchValues` (default DEFAULT_EOT_BATCH_VALUES, see setEotBatchValues).
 * A randomized model whose copies come out identical (noise shared across the
 * batch) is noticed on its first batched pass, which then counts as one draw,
 * and gets one pass per draw from then on. With K = 1 the computation is the
 * single pass it always was.
 */
export async function lossAndGradient(
  model: Classifier,
  x: Tensor,
  labels: Tensor,
  options: LossGradientOptions = {},
): Promise<LossAndGradient> {
  const targeted = options.targeted ?? false;
  const samples = resolveEotSamples(model, options.eotSamples);
  const attack = options.attack ?? "lossGradient";
  const loss = options.loss ?? "ce";
  const copies = copiesFor(model, x, samples, options.eotBatchValues);
  const n = x.dims[0];
  return tidyAsync(async () => {
    const sum = await sumOfPasses(model, samples, copies, async (c, first) => {
      if (c === 1) {
        const xi = noGrad(() => x.detach()).requiresGrad_(true);
        const logits = await enableGradAsync(() => model.forward(xi));
        const numClasses = checkLogits(logits, n, attack);
        if (first) checkLabelRange(labels, numClasses, attack);
        return enableGrad(() => {
          const objective = attackObjective(logits, labels, targeted, loss);
          const [gradient] = grad(objective.sum(), [xi]);
          return { sum: { gradient, loss: objective.detach() }, draws: 1 };
        });
      }
      const xc = noGrad(() => repeatCopies(x.detach(), c)).requiresGrad_(true);
      const logits = await enableGradAsync(() => model.forward(xc));
      const numClasses = checkLogits(logits, c * n, attack);
      if (first) checkLabelRange(labels, numClasses, attack);
      const shared = copiesIdentical(model, logits, n, c);
      const yc = noGrad(() => repeatCopies(labels, c));
      const [gradient, objective] = enableGrad(() => {
        const objective = attackObjective(logits, yc, targeted, loss);
        const [g] = grad(objective.sum(), [xc]);
        return [g, objective.detach()];
      });
      return noGrad(() =>
        shared
          ? { sum: { gradient: gradient.narrow(0, 0, n), loss: objective.narrow(0, 0, n) }, draws: 1 }
          : { sum: { gradient: sumCopies(gradient, c), loss: sumCopies(objective, c) }, draws: c },
      );
    });
    if (samples === 1) return sum;
    return noGrad(() => ({ gradient: sum.gradient.div(samples), loss: sum.loss.div(samples) }));
  });
}

/** Only the gradient of lossAndGradient (see there); the caller disposes it. */
export async function lossGradient(
  model: Classifier,
  x: Tensor,
  labels: Tensor,
  options: LossGradientOptions = {},
): Promise<Tensor> {
  return tidyAsync(async () => (await lossAndGradient(model, x, labels, options)).gradient);
}

/**
 * Objective [N] and predicted classes [N] of x without gradients, averaged over
 * `eotSamples` passes (logits averaged for the prediction), batched as in
 * lossAndGradient (`eotBatchValues` as there). For choosing among restarts.
 */
export async function evaluateObjective(
  model: Classifier,
  x: Tensor,
  labels: Tensor,
  targeted: boolean,
  eotSamples: number,
  attack: string,
  loss: AttackLoss = "ce",
  options: { eotBatchValues?: number } = {},
): Promise<{ loss: Tensor; predicted: Tensor }> {
  const copies = copiesFor(model, x, eotSamples, options.eotBatchValues);
  const n = x.dims[0];
  return tidyAsync(async () => {
    const sum = await sumOfPasses(model, eotSamples, copies, async (c) => {
      if (c === 1) {
        const logits = await noGradAsync(() => model.forward(x));
        checkLogits(logits, n, attack);
        return noGrad(() => ({
          sum: { loss: attackObjective(logits, labels, targeted, loss), logits: logits.detach() },
          draws: 1,
        }));
      }
      const xc = noGrad(() => repeatCopies(x, c));
      const logits = await noGradAsync(() => model.forward(xc));
      checkLogits(logits, c * n, attack);
      const shared = copiesIdentical(model, logits, n, c);
      return noGrad(() => {
        const objective = attackObjective(logits, repeatCopies(labels, c), targeted, loss);
        return shared
          ? { sum: { loss: objective.narrow(0, 0, n), logits: logits.narrow(0, 0, n) }, draws: 1 }
          : { sum: { loss: sumCopies(objective, c), logits: sumCopies(logits.detach(), c) }, draws: c };
      });
    });
    return noGrad(() => ({
      loss: eotSamples > 1 ? sum.loss.div(eotSamples) : sum.loss,
      predicted: sum.logits.argmax(1),
    }));
  });
}

/**
 * sign(grad) of the untargeted cross-entropy at x in eval mode: FGSM's step
 * and I-FGSM's first step, computed by this one function so the two are the
 * same tensor and a sweep may share it (directionKind below names it).
 */
export function signedLossGradient(
  model: Classifier,
  x: Tensor,
  y: Tensor,
  options: { targeted: boolean; eotSamples: number; attack: string },
): Promise<Tensor> {
  return tidyAsync(async () => {
    const g = await inEvalMode(model, () => lossGradient(model, x, y, options));
    return noGrad(() => g.sign());
  });
}

/** The directionKind of an untargeted signedLossGradient with this many EOT samples. */
export function signedGradientKind(eotSamples: number): string {
  return `sign(grad CE), EOT ${eotSamples}`;
}
