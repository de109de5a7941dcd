/**
 * What the defenses share: batch and option checks, the BPDA identity view,
 * and padding by index (symmetric, reflect, replicate) that keeps gradients.
 */
import { binding } from "../binding.js";
import { isGradEnabled, noGrad, tidy } from "../core/engine.js";
import { ArgumentError, ShapeError } from "../core/errors.js";
import { Tensor, tensor } from "../core/tensor.js";
import { fail } from "../core/validate.js";

const FLOAT_DTYPES = new Set(["float32", "float64", "float16", "bfloat16"]);

/** x must be a floating batch of images [N, C, H, W]. */
export function checkImages(x: unknown, defense: string): Tensor {
  if (!(x instanceof Tensor)) fail("a tensor of images", `the input of ${defense}`, x);
  if (x.rank !== 4) {
    throw new ShapeError(
      `${defense}: expected a batch of images [N, C, H, W] but received shape [${x.shape.join(", ")}]`,
    );
  }
  if (!FLOAT_DTYPES.has(x.dtype)) fail("floating-point images", `the input of ${defense}`, x.dtype);
  return x;
}

/** Reject option names a defense does not know (a typo would otherwise silently use a default). */
export function checkOptions(defense: string, options: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    fail(`an options object for ${defense}`, "options", options);
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new ArgumentError(`Unknown option "${key}" for ${defense}; expected one of ${allowed.join(", ")}`);
    }
  }
  return options as Record<string, unknown>;
}

/**
 * BPDA with the identity (Athalye et al. 2018): the value of `purified`, the
 * gradient of x. Written y + (x - stopgrad(x)) so the forward value is exactly
 * y (x - x is exactly zero), not x + (y - x) with its rounding.
 */
export function bpdaIdentity(x: Tensor, purified: Tensor): Tensor {
  return tidy(() => {
    const zero = x.sub(noGrad(() => x.detach()));
    return purified.add(zero);
  });
}

/**
 * How a border is extended.
 * - "symmetric": the edge pixel is repeated (d c b a | a b c d); scipy.ndimage calls this "reflect".
 * - "reflect": mirrored about the edge pixel (d c b | a b c d), as torch.nn.functional.pad "reflect".
 * - "replicate": the edge pixel repeated (a a a | a b c d).
 */
export type PadMode = "symmetric" | "reflect" | "replicate";
export const PAD_MODES: readonly PadMode[] = ["symmetric", "reflect", "replicate"];

function sourceIndex(j: number, n: number, mode: PadMode): number {
  if (mode === "replicate" || n === 1) return Math.min(Math.max(j, 0), n - 1);
  const period = mode === "symmetric" ? 2 * n : 2 * n - 2;
  const m = ((j % period) + period) % period;
  if (m < n) return m;
  return mode === "symmetric" ? period - 1 - m : period - m;
}

/** Source indices for a side of length n padded by `before` and `after` (any amount: the pattern repeats). */
export function padIndices(n: number, before: number, after: number, mode: PadMode): number[] {
  const out: number[] = [];
  for (let j = -before; j < n + after; j++) out.push(sourceIndex(j, n, mode));
  return out;
}

/**
 * Pad the last two dimensions of images [N, C, H, W] by [left, right, top, bottom]
 * with index gathers, which are differentiable and allow pads of any size.
 */
export function padImages(x: Tensor, pads: [number, number, number, number], mode: PadMode): Tensor {
  const [left, right, top, bottom] = pads;
  if (left === 0 && right === 0 && top === 0 && bottom === 0) return x.clone();
  const [, , h, w] = x.dims;
  return tidy(() => {
    const rows = tensor(BigInt64Array.from(padIndices(h, top, bottom, mode), BigInt), undefined, { device: x.device });
    const cols = tensor(BigInt64Array.from(padIndices(w, left, right, mode), BigInt), undefined, { device: x.device });
    return x.indexSelect(2, rows).indexSelect(3, cols);
  });
}

/** Mean and standard deviation (unbiased, n - 1; 0 for a single value). */
export function meanStd(values: readonly number[]): { mean: number; std: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, std: 0 };
  const v = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return { mean, std: Math.sqrt(v) };
}

/**
 * Gradient recording off until `fn`'s promise settles (noGrad restores the
 * mode as soon as its callback returns, before an async callback has run).
 */
export async function noGradAsync<R>(fn: () => R | Promise<R>): Promise<R> {
  const previous = isGradEnabled();
  binding.setGradEnabled(false);
  try {
    return await fn();
  } finally {
    binding.setGradEnabled(previous);
  }
}
