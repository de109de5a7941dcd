/**
 * What the defenses share: the batch check, the BPDA identity view (once, for
 * every defense that is not differentiable), and padding by index
 * (symmetric, reflect, replicate) that keeps gradients.
 */
import { noGrad, tidy, tidyAsync } from "../core/engine.js";
import { ShapeError } from "../core/errors.js";
import { Tensor, tensor } from "../core/tensor.js";
import type { ChoiceParam } from "../core/params.js";
import { FLOAT_DTYPES, fail } from "../core/validate.js";
import type { Defense, GradientKind } from "./types.js";

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
 * A defense that is not differentiable (a codec, a staircase, a rank filter):
 * attacks see it through BPDA with the identity, its output with the gradient
 * of its input. Subclasses only purify.
 */
export abstract class BpdaDefense implements Defense {
  abstract readonly name: string;
  readonly randomized: boolean = false;
  readonly gradient: GradientKind = "bpda-identity";

  abstract apply(x: Tensor): Promise<Tensor>;
  abstract describe(): Record<string, number | string | boolean>;

  attackView(x: Tensor): Promise<Tensor> {
    return tidyAsync(async () => bpdaIdentity(x, await this.apply(x)));
  }
}

/**
 * How a border is extended.
 * - "symmetric": the edge pixel is repeated (d c b a | a b c d); scipy.ndimage calls this "reflect".
 * - "reflect": mirrored about the edge pixel (d c b | a b c d), as torch.nn.functional.pad "reflect".
 * - "replicate": the edge pixel repeated (a a a | a b c d).
 */
export type PadMode = "symmetric" | "reflect" | "replicate";
export const PAD_MODES: readonly PadMode[] = ["symmetric", "reflect", "replicate"];

/** Border extension of the median and Gaussian filters (default "symmetric", scipy's "reflect"). */
export const PADDING_PARAM = {
  type: "choice",
  choices: PAD_MODES,
  default: "symmetric",
  doc: "border extension (symmetric is scipy's reflect)",
} as const satisfies ChoiceParam;

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
