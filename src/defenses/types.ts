/**
 * The defense interface: a transformation from a batch of images to a batch of
 * images, plus how an attack that sees the defense gets a gradient through it.
 */
import type { Tensor } from "../core/tensor.js";

export type GradientKind = "exact" | "bpda-identity" | `bpda-${string}`;

export interface Defense {
  /** Short name for tables ("JPEG 23", "VAE", "median 3x3"). */
  readonly name: string;
  /** True when apply() is random (VAE latent noise); scored as the mean over several passes. */
  readonly randomized: boolean;
  /** How attacks get gradients through this defense in adaptive mode. */
  readonly gradient: GradientKind;
  /** Purify a batch [N, C, H, W] in [0, 1]; returns a new tensor of the same shape in [0, 1]. No gradient. */
  apply(x: Tensor): Promise<Tensor>;
  /**
   * The defense as an attack sees it: differentiable w.r.t. x. Exact where the
   * defense is differentiable; otherwise the BPDA estimate
   * x + stopgrad(apply(x) - x) (identity gradient) or a differentiable stand-in.
   */
  attackView(x: Tensor): Promise<Tensor>;
  /** Parameters for reports. */
  describe(): Record<string, number | string | boolean>;
}
