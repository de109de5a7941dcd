/**
 * The defenses by name, for the CLI and sweeps, and the defense API.
 *
 * A spec is `name[:arguments]`, the arguments separated by commas, each a
 * value (positional), `key=value` or a bare flag:
 *   none | jpeg:23 | vae | vae:samples=8 | vae:deterministic,clip=2 |
 *   patchvae:64/32 | patchvae:16/8,nosmooth | bits:4 | median:3 | gauss:1.0 |
 *   ensemble:patchvae:16/16+patchvae:32/32  (members separated by "+") |
 *   purifier | purifier:deterministic  (a trained purifier, ctx.purifier)
 */
import { ArgumentError, VaeguardError } from "../core/errors.js";
import { fail } from "../core/validate.js";
import type { ConvVae } from "../models/vae.js";
import { BitDepthDefense } from "./bit-depth.js";
import { EnsembleDefense } from "./ensemble.js";
import { GaussianBlurDefense } from "./gaussian-blur.js";
import { JpegDefense } from "./jpeg.js";
import { MedianDefense } from "./median.js";
import { NoDefense } from "./none.js";
import { PatchVaeDefense } from "./patch-vae.js";
import type { Defense } from "./types.js";
import { VaeDefense } from "./vae.js";
import { PurifierDefense } from "./purifier.js";
import type { Purifier } from "../models/purifier.js";

export type { Defense, GradientKind } from "./types.js";
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
export { bpdaIdentity, padImages, type PadMode } from "./common.js";

/** The models some defenses need: the VAE for "vae", patch VAEs by patch size ("16", "32", "64" or "patch16" ...). */
export interface DefenseContext {
  vae?: Purifier;
  patchVaes?: Record<string, ConvVae>;
  /** The trained purifier for "purifier" (vaeguard train purifier). */
  purifier?: Purifier;
}

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

export interface DefenseInfo {
  name: DefenseName;
  syntax: string;
  description: string;
}

const INFO: readonly DefenseInfo[] = [
  { name: "none", syntax: "none", description: "no defense: the classifier sees the image as it is" },
  {
    name: "jpeg",
    syntax: "jpeg[:QUALITY]",
    description:
      "JPEG encode/decode at quality 1..100 (default 23), PIL-equivalent libjpeg settings; BPDA identity gradient",
  },
  {
    name: "vae",
    syntax: "vae[:samples=K,clip=C,deterministic]",
    description:
      "VAE reconstruction (Luo & Pfister 2018), noise clipped to [-5, 5], average of K samples; exact gradient",
  },
  {
    name: "patchvae",
    syntax: "patchvae:P/S[,nosmooth,samples=K,clip=C,deterministic,chunk=M]",
    description:
      "patch-wise VAE: P x P patches at stride S, overlaps averaged, 5x5 smoothing (paper's NIPS 2017 defense)",
  },
  {
    name: "ensemble",
    syntax: "ensemble:SPEC+SPEC[+...]",
    description: "pixel average of several defenses' outputs (the paper's Ensembled column)",
  },
  {
    name: "bits",
    syntax: "bits[:B]",
    description: "bit-depth reduction to B bits, 1..8 (default 4; feature squeezing); BPDA identity gradient",
  },
  {
    name: "median",
    syntax: "median[:K][,padding=symmetric|reflect|replicate]",
    description: "K x K median filter per channel (default 3; feature squeezing); BPDA identity gradient",
  },
  {
    name: "gauss",
    syntax: "gauss[:SIGMA[,KERNEL]][,padding=...]",
    description: "Gaussian blur of std SIGMA pixels (default 1), kernel 2*round(4*SIGMA)+1; exact gradient",
  },
  {
    name: "purifier",
    syntax: "purifier[:samples=K,clip=C,deterministic]",
    description:
      "a purifier trained against adaptive attacks (vaeguard train purifier), used as the vae defense; exact gradient",
  },
];

/** One line per defense for --help and listings. */
export function listDefenses(): DefenseInfo[] {
  return INFO.map((i) => ({ ...i }));
}

/** "  jpeg[:QUALITY]  JPEG ..." lines, aligned, for --help. */
export function describeDefenses(): string {
  const width = Math.max(...INFO.map((i) => i.syntax.length));
  return INFO.map((i) => `  ${i.syntax.padEnd(width)}  ${i.description}`).join("\n");
}

interface ParsedArgs {
  positional: string[];
  keyed: Map<string, string>;
  flags: Set<string>;
}

function parseArgs(spec: string, rest: string): ParsedArgs {
  const out: ParsedArgs = { positional: [], keyed: new Map(), flags: new Set() };
  if (rest === "") return out;
  for (const item of rest.split(",")) {
    const t = item.trim();
    if (t === "") throw new ArgumentError(`Empty argument in defense spec "${spec}"`);
    const eq = t.indexOf("=");
    if (eq >= 0) {
      const key = t.slice(0, eq).trim();
      if (key === "" || out.keyed.has(key))
        throw new ArgumentError(`Bad or repeated argument "${t}" in defense spec "${spec}"`);
      out.keyed.set(key, t.slice(eq + 1).trim());
    } else if (/^[a-z]+$/i.test(t)) {
      out.flags.add(t.toLowerCase());
    } else {
      out.positional.push(t);
    }
  }
  return out;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** A numeric argument: a malformed one is reported with the spec; range checks are the defense's. */
function num(raw: string, name: string, spec: string, expected: string): number {
  if (!NUMBER.test(raw)) fail(expected, `${name} in defense spec "${spec}"`, raw);
  return Number(raw);
}

function bool(raw: string, name: string, spec: string): boolean {
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  return fail("true or false", `${name} in defense spec "${spec}"`, raw);
}

/** Check that only the allowed keys and flags, and at most `maxPositional` values, were given. */
function allow(spec: string, a: ParsedArgs, keys: string[], flags: string[], maxPositional: number): void {
  for (const k of a.keyed.keys()) {
    if (!keys.includes(k)) {
      throw new ArgumentError(
        `Unknown argument "${k}" in defense spec "${spec}"; expected ${keys.length > 0 ? `one of ${keys.join(", ")}` : "none"}`,
      );
    }
  }
  for (const f of a.flags) {
    if (!flags.includes(f)) {
      throw new ArgumentError(
        `Unknown flag "${f}" in defense spec "${spec}"; expected ${flags.length > 0 ? `one of ${flags.join(", ")}` : "none"}`,
      );
    }
  }
  if (a.positional.length > maxPositional) {
    throw new ArgumentError(
      `Too many values in defense spec "${spec}": ${a.positional.join(", ")} (at most ${maxPositional})`,
    );
  }
}

function vaeOptions(spec: string, a: ParsedArgs): { clip?: number; deterministic?: boolean; samples?: number } {
  const o: { clip?: number; deterministic?: boolean; samples?: number } = {};
  if (a.keyed.has("clip")) o.clip = num(a.keyed.get("clip")!, "clip", spec, "number of at least 0");
  if (a.keyed.has("samples")) o.samples = num(a.keyed.get("samples")!, "samples", spec, "integer of at least 1");
  if (a.flags.has("deterministic")) o.deterministic = true;
  if (a.keyed.has("deterministic")) o.deterministic = bool(a.keyed.get("deterministic")!, "deterministic", spec);
  return o;
}

function findPatchVae(spec: string, p: number, ctx: DefenseContext): ConvVae {
  const vaes = ctx.patchVaes ?? {};
  for (const key of [`${p}`, `patch${p}`, `${p}x${p}`]) {
    if (vaes[key] !== undefined) return vaes[key];
  }
  const bySize = Object.values(vaes).filter((v) => v.inputShape[1] === p && v.inputShape[2] === p);
  if (bySize.length === 1) return bySize[0];
  const have = Object.entries(vaes).map(([k, v]) => `${k} (${v.inputShape.join("x")})`);
  throw new ArgumentError(
    `Defense spec "${spec}" needs a VAE for ${p}x${p} patches in patchVaes (key "${p}" or "patch${p}"); ${
      have.length > 0 ? `available: ${have.join(", ")}` : "none was given"
    }`,
  );
}

function build(spec: string, ctx: DefenseContext, nested: boolean): Defense {
  if (typeof spec !== "string" || spec.trim() === "") fail("non-empty defense spec", "defense", spec);
  const s = spec.trim();
  const colon = s.indexOf(":");
  const name = (colon < 0 ? s : s.slice(0, colon)).trim().toLowerCase();
  const rest = colon < 0 ? "" : s.slice(colon + 1).trim();
  if (colon >= 0 && rest === "") throw new ArgumentError(`Missing arguments after ":" in defense spec "${spec}"`);
  if (name === "ensemble") {
    if (nested) throw new ArgumentError(`Defense spec "${spec}": an ensemble cannot contain an ensemble`);
    const parts = rest.split("+").map((p) => p.trim());
    if (parts.length < 2 || parts.some((p) => p === "")) {
      throw new ArgumentError(`Defense spec "${spec}": an ensemble needs two or more members separated by "+"`);
    }
    return new EnsembleDefense(parts.map((p) => build(p, ctx, true)));
  }
  const a = parseArgs(spec, rest);
  switch (name) {
    case "none":
      allow(spec, a, [], [], 0);
      return new NoDefense();
    case "jpeg": {
      allow(spec, a, ["quality"], [], 1);
      const raw = a.keyed.get("quality") ?? a.positional[0];
      return new JpegDefense(
        raw === undefined ? {} : { quality: num(raw, "quality", spec, "integer between 1 and 100") },
      );
    }
    case "vae": {
      allow(spec, a, ["clip", "samples", "deterministic"], ["deterministic"], 0);
      if (!ctx.vae) throw new ArgumentError(`Defense spec "${spec}" needs a VAE (ctx.vae) but none was given`);
      return new VaeDefense(ctx.vae, vaeOptions(spec, a));
    }
    case "purifier": {
      allow(spec, a, ["clip", "samples", "deterministic"], ["deterministic"], 0);
      if (!ctx.purifier)
        throw new ArgumentError(`Defense spec "${spec}" needs a trained purifier (ctx.purifier) but none was given`);
      return new PurifierDefense(ctx.purifier, vaeOptions(spec, a));
    }
    case "patchvae": {
      allow(
        spec,
        a,
        ["clip", "samples", "deterministic", "smooth", "stride", "chunk"],
        ["deterministic", "nosmooth"],
        1,
      );
      const geometry = a.positional[0];
      if (geometry === undefined)
        throw new ArgumentError(`Defense spec "${spec}" needs the patch size, as patchvae:P/S`);
      const m = /^(\d+)(?:\/(\d+))?$/.exec(geometry);
      if (!m) fail("patch size and stride as P/S (e.g. 64/32)", `the geometry in defense spec "${spec}"`, geometry);
      const p = Number(m[1]);
      if (m[2] !== undefined && a.keyed.has("stride")) {
        throw new ArgumentError(`Defense spec "${spec}" gives the stride twice`);
      }
      const stride = m[2] ?? a.keyed.get("stride");
      const vae = findPatchVae(spec, p, ctx);
      const smooth = a.flags.has("nosmooth")
        ? false
        : a.keyed.has("smooth")
          ? bool(a.keyed.get("smooth")!, "smooth", spec)
          : true;
      return new PatchVaeDefense(vae, {
        patchSize: p,
        stride: stride === undefined ? p : num(stride, "stride", spec, `integer between 1 and ${p}`),
        smooth,
        ...vaeOptions(spec, a),
        ...(a.keyed.has("chunk")
          ? { chunkSize: num(a.keyed.get("chunk")!, "chunk", spec, "integer of at least 1") }
          : {}),
      });
    }
    case "bits": {
      allow(spec, a, ["bits"], [], 1);
      const raw = a.keyed.get("bits") ?? a.positional[0];
      return new BitDepthDefense(raw === undefined ? {} : { bits: num(raw, "bits", spec, "integer between 1 and 8") });
    }
    case "median": {
      allow(spec, a, ["size", "padding"], [], 1);
      const raw = a.keyed.get("size") ?? a.positional[0];
      return new MedianDefense({
        ...(raw === undefined ? {} : { size: num(raw, "size", spec, "integer of at least 1") }),
        ...(a.keyed.has("padding") ? { padding: a.keyed.get("padding") as "symmetric" } : {}),
      });
    }
    case "gauss": {
      allow(spec, a, ["sigma", "size", "padding"], [], 2);
      const sigma = a.keyed.get("sigma") ?? a.positional[0];
      const size = a.keyed.get("size") ?? a.positional[1];
      return new GaussianBlurDefense({
        ...(sigma === undefined ? {} : { sigma: num(sigma, "sigma", spec, "positive number") }),
        ...(size === undefined ? {} : { kernelSize: num(size, "size", spec, "odd integer") }),
        ...(a.keyed.has("padding") ? { padding: a.keyed.get("padding") as "symmetric" } : {}),
      });
    }
    default:
      throw new ArgumentError(
        `Unknown defense "${name}" in defense spec "${spec}"; expected one of ${DEFENSE_NAMES.join(", ")}`,
      );
  }
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
