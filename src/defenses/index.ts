/**
 * The defenses by name, for the CLI and sweeps, and the defense API.
 *
 * A spec follows the one grammar of attacks and defenses (core/spec.ts),
 * `name[:argument[:argument...]]`, each argument a value (positional),
 * `key=value` or a flag, read by the defense's own declaration:
 *   none | jpeg:23 | vae | vae:samples=8 | vae:deterministic:clip=2 |
 *   patchvae:64/32 | patchvae:16/8:nosmooth | bits:4 | median:3 | gauss:1.0 |
 *   ensemble:patchvae:16/16+patchvae:32/32  (members separated by "+") |
 *   purifier | purifier:deterministic  (a trained purifier, ctx.purifier)
 * The old syntax with commas between arguments ("vae:samples=8,clip=2") is
 * still read, with a deprecation warning.
 */
import { ArgumentError, VaeguardError } from "../core/errors.js";
import { describeParams, specKey, specParams } from "../core/params.js";
import { readSpecArguments, specPairs, splitSpec, warnLegacySpec } from "../core/spec.js";
import { fail } from "../core/validate.js";
import { BIT_DEPTH_DEFINITION } from "./bit-depth.js";
import { EnsembleDefense } from "./ensemble.js";
import { GAUSSIAN_BLUR_DEFINITION } from "./gaussian-blur.js";
import { JPEG_DEFINITION } from "./jpeg.js";
import { MEDIAN_DEFINITION } from "./median.js";
import { NONE_DEFINITION } from "./none.js";
import { PATCH_VAE_DEFINITION } from "./patch-vae.js";
import { PURIFIER_DEFINITION } from "./purifier.js";
import type { Defense, DefenseContext, DefenseDefinition } from "./types.js";
import { VAE_DEFINITION } from "./vae.js";

export type { Defense, DefenseContext, DefenseDefinition, GradientKind } from "./types.js";
export { NoDefense } from "./none.js";
export { JpegDefense, jpegRoundTrip, type JpegOptions } from "./jpeg.js";
export { VaeDefense, VAE_DEFAULT_CLIP, type VaeDefenseOptions } from "./vae.js";
export {
  PatchVaeDefense,
  SMOOTH_MORE_WEIGHTS,
  defaultChunkSize,
  patchPositions,
  patchReconstruct,
  smooth,
  smoothingKernel,
  type PatchReconstructOptions,
  type PatchVaeOptions,
  type SmoothOptions,
} from "./patch-vae.js";
export { EnsembleDefense, type EnsembleOptions } from "./ensemble.js";
export { PurifierDefense } from "./purifier.js";
export { BitDepthDefense, type BitDepthOptions } from "./bit-depth.js";
export { MedianDefense, medianFilter, type MedianOptions } from "./median.js";
export { GaussianBlurDefense, gaussianBlur, gaussianWeights, type GaussianBlurOptions } from "./gaussian-blur.js";
export {
  DefendedModel,
  DEFAULT_ACCURACY_PASSES,
  type AccuracyOptions,
  type AccuracyResult,
  type Classifier,
  type DefendedModelOptions,
  type DefenseView,
} from "./defended-model.js";
export { correctPerPass, passAccuracy, type FirstPassHook, type PassHook } from "./scoring.js";
export { BpdaDefense, bpdaIdentity, padImages, type PadMode } from "./common.js";

export const DEFENSE_NAMES = [
  "none",
  "jpeg",
  "vae",
  "patchvae",
  "ensemble",
  "bits",
  "median",
  "gauss",
  "purifier",
] as const;
export type DefenseName = (typeof DEFENSE_NAMES)[number];

const ENSEMBLE_DEFINITION: DefenseDefinition = {
  kind: "ensemble",
  description: "pixel average of several defenses' outputs (the paper's Ensembled column)",
  syntax: "ensemble:SPEC+SPEC[+...]",
  params: {},
  // Built from its members' specs by createDefense.
  build: () => {
    throw new VaeguardError("an ensemble is built from its members' specs");
  },
};

/** Every defense's declaration, by name. */
export const DEFENSES: Readonly<Record<DefenseName, DefenseDefinition>> = {
  none: NONE_DEFINITION,
  jpeg: JPEG_DEFINITION,
  vae: VAE_DEFINITION,
  patchvae: PATCH_VAE_DEFINITION,
  ensemble: ENSEMBLE_DEFINITION,
  bits: BIT_DEPTH_DEFINITION,
  median: MEDIAN_DEFINITION,
  gauss: GAUSSIAN_BLUR_DEFINITION,
  purifier: PURIFIER_DEFINITION,
};

export interface DefenseInfo {
  name: DefenseName;
  syntax: string;
  description: string;
}

/** "jpeg[:QUALITY][:KEY=VALUE...]": the positional values, then whether keys or flags follow. */
function syntaxOf(d: DefenseDefinition): string {
  if (d.syntax !== undefined) return d.syntax;
  const params = specParams(d.params);
  const positional = params
    .filter(([, p]) => p.positional)
    .map(([name, p]) => {
      const hole = `:${p.placeholder ?? specKey(name, p).toUpperCase()}`;
      return d.positional?.[name] !== undefined ? hole : `[${hole}]`;
    })
    .join("");
  const keyed = params.some(([, p]) => !p.positional) ? "[:KEY=VALUE...]" : "";
  return `${d.kind}${positional}${keyed}`;
}

/** One line per defense for --help and listings. */
export function listDefenses(): DefenseInfo[] {
  return DEFENSE_NAMES.map((name) => ({
    name,
    syntax: syntaxOf(DEFENSES[name]),
    description: DEFENSES[name].description,
  }));
}

/** "  jpeg[:QUALITY]  JPEG ..." lines, aligned, for --help. */
export function describeDefenses(): string {
  const info = listDefenses();
  const width = Math.max(...info.map((i) => i.syntax.length));
  return info.map((i) => `  ${i.syntax.padEnd(width)}  ${i.description}`).join("\n");
}

/** The spec parameters of every defense (but `exclude`), with type, range, default and doc, for --help. */
export function describeDefenseParams(exclude: readonly string[] = []): string {
  return DEFENSE_NAMES.filter((n) => !exclude.includes(n) && specParams(DEFENSES[n].params).length > 0)
    .map((n) => `  ${n}\n${describeParams(DEFENSES[n].params).join("\n")}`)
    .join("\n");
}

function isDefenseName(name: string): name is DefenseName {
  return (DEFENSE_NAMES as readonly string[]).includes(name);
}

function build(spec: string, ctx: DefenseContext, nested: boolean): Defense {
  if (typeof spec !== "string" || spec.trim() === "") fail("non-empty defense spec", "defense", spec);
  const label = `defense spec "${spec}"`;
  const split = splitSpec(spec, true);
  if (spec.includes(":") && split.rest === "") throw new ArgumentError(`Missing arguments after ":" in ${label}`);
  if (split.name === "ensemble") {
    if (nested) throw new ArgumentError(`Defense spec "${spec}": an ensemble cannot contain an ensemble`);
    const parts = split.rest.split("+").map((p) => p.trim());
    if (parts.length < 2 || parts.some((p) => p === "")) {
      throw new ArgumentError(`Defense spec "${spec}": an ensemble needs two or more members separated by "+"`);
    }
    return new EnsembleDefense(parts.map((p) => build(p, ctx, true)));
  }
  if (!isDefenseName(split.name)) {
    throw new ArgumentError(`Unknown defense "${split.name}" in ${label}; expected one of ${DEFENSE_NAMES.join(", ")}`);
  }
  warnLegacySpec(spec, split);
  const def = DEFENSES[split.name];
  const options = readSpecArguments(def.params, specPairs(split.args, label), {
    kind: def.kind,
    label,
    positional: def.positional,
  });
  return def.build(options, ctx, spec);
}

/**
 * Build a defense from a spec (see the header). Errors name the bad part of
 * the spec; a range error from the defense itself gets the spec appended.
 */
export function createDefense(spec: string, ctx: DefenseContext = {}): Defense {
  try {
    return build(spec, ctx, false);
  } catch (e) {
    if (e instanceof VaeguardError && !e.message.includes("defense spec")) {
      const Ctor = e.constructor as new (m: string, o?: { cause?: unknown }) => VaeguardError;
      throw new Ctor(`${e.message} (in defense spec "${spec}")`, { cause: e });
    }
    throw e;
  }
}
