/**
 * Confidence intervals for an accuracy measured on n images.
 *
 * Wilson's score interval (Wilson 1927, "Probable inference, the law of
 * succession, and statistical inference"): unlike the normal approximation
 * p ± z sqrt(p(1-p)/n), it stays inside [0, 1] and keeps its coverage near 0
 * and 1, where robust accuracies live.
 */
import { checkInt, checkNumber } from "../core/validate.js";

/** z for a two-sided 95% interval. */
export const Z95 = 1.959963984540054;

/**
 * The Wilson interval [low, high] for `successes` out of `n` (successes may be
 * fractional: the sum of per-image accuracies of a randomized defense, an
 * approximation then). n = 0 gives [0, 1].
 */
export function wilsonInterval(successes: number, n: number, z = Z95): [number, number] {
  checkInt(n, "n", 0);
  checkNumber(successes, "successes", 0, n);
  checkNumber(z, "z", 0);
  if (n === 0) return [0, 1];
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  // At p = 0 and p = 1 the bounds are exactly 0 and 1; rounding would put them a hair inside.
  return [successes === 0 ? 0 : Math.max(0, centre - half), successes === n ? 1 : Math.min(1, centre + half)];
}

/** Standard error of an accuracy p on n images, sqrt(p(1-p)/n), at least the resolution 1/n's half. */
export function accuracyStandardError(p: number, n: number): number {
  checkNumber(p, "p", 0, 1);
  checkInt(n, "n", 1);
  return Math.max(Math.sqrt((p * (1 - p)) / n), 0.5 / n);
}
