/**
 * The loss gradient every gradient attack uses, with Expectation over
 * Transformation (Athalye, Carlini & Wagner 2018, "Obfuscated Gradients Give a
 * False Sense of Security", section 4.3): on a randomized model (a VAE defense
 * with latent noise) one gradient is one random draw, so the attack averages
 * the gradients of `eotSamples` independent forward/backward passes.
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
import { enableGrad, enableGradAsync, iterateAsync, noGrad, noGradAsync, tidy, tidyAsync } from "../core/engine.js";
import { Tensor, arange, grad } from "../core/tensor.js";
import * as F from "../nn/functional.js";
import type { Classifier } from "../models/types.js";
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
 * The sum of `count` random draws of a record of tensors, added one draw at a
 * time so that only the running sum and one draw are alive (an EOT draw holds
 * a forward pass's worth of memory until its gradient is taken).
 */
async function sumOfDraws<T extends Record<string, Tensor>>(
  count: number,
  draw: (i: number) => Promise<T>,
): Promise<T> {
  const first = await tidyAsync(() => draw(0));
  return iterateAsync(first, count - 1, async (sum, i) => {
    const next = await draw(i + 1);
    return noGrad(() => Object.fromEntries(Object.entries(sum).map(([k, t]) => [k, t.add(next[k])])) as T);
  });
}

/**
 * The objective and its input gradient, averaged over EOT samples. The caller
 * owns (and disposes) both tensors; x is not modified and needs no grad.
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
  return tidyAsync(async () => {
    const sum = await sumOfDraws(samples, async (i) => {
      const xi = noGrad(() => x.detach()).requiresGrad_(true);
      const logits = await enableGradAsync(() => model.forward(xi));
      const numClasses = checkLogits(logits, x.dims[0], attack);
      if (i === 0) checkLabelRange(labels, numClasses, attack);
      return enableGrad(() => {
        const objective = attackObjective(logits, labels, targeted, loss);
        const [gradient] = grad(objective.sum(), [xi]);
        return { gradient, loss: objective.detach() };
      });
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
 * `eotSamples` passes (logits averaged for the prediction). For choosing among
 * restarts.
 */
export async function evaluateObjective(
  model: Classifier,
  x: Tensor,
  labels: Tensor,
  targeted: boolean,
  eotSamples: number,
  attack: string,
  loss: AttackLoss = "ce",
): Promise<{ loss: Tensor; predicted: Tensor }> {
  return tidyAsync(async () => {
    const sum = await sumOfDraws(eotSamples, async () => {
      const logits = await noGradAsync(() => model.forward(x));
      checkLogits(logits, x.dims[0], attack);
      return noGrad(() => ({ loss: attackObjective(logits, labels, targeted, loss), logits: logits.detach() }));
    });
    return noGrad(() => ({
      loss: eotSamples > 1 ? sum.loss.div(eotSamples) : sum.loss,
      predicted: sum.logits.argmax(1),
    }));
  });
}
