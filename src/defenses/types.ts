/**
 * The defense interface: a transformation from a batch of images to a batch of
 * images, plus how an attack that sees the defense gets a gradient through it;
 * and how the registry knows a defense (its declaration).
 */
import type { ParamValue, Schema } from "../core/params.js";
import type { PositionalReader } from "../core/spec.js";
import type { Tensor } from "../core/tensor.js";
import type { ConvVae } from "../models/vae.js";
import type { Purifier } from "../models/purifier.js";

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

/** The models some defenses need: the VAE for "vae", patch VAEs by patch size ("16", "32", "64" or "patch16" ...). */
export interface DefenseContext {
  /** The paper's VAE for "vae", or any purifier with its interface. */
  vae?: Purifier;
  patchVaes?: Record<string, ConvVae>;
  /** The trained purifier for "purifier" (vaeguard train purifier). */
  purifier?: Purifier;
}

/** A defense as the registry knows it: its parameters, declared once, and how a spec builds it. */
export interface DefenseDefinition {
  /** The name in specs ("patchvae"). */
  readonly kind: string;
  /** One line for --help. */
  readonly description: string;
  readonly params: Schema;
  /** The syntax line when the parameters do not say it all (the ensemble's members). */
  readonly syntax?: string;
  /** Readers of positional values that stand for several parameters ("64/32"). */
  readonly positional?: Record<string, PositionalReader>;
  /** Build from a spec's options (typed, not yet range-checked); `spec` is for messages. */
  build(options: Record<string, ParamValue>, ctx: DefenseContext, spec: string): Defense;
}
