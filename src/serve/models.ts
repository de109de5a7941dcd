/**
 * The models one server holds: a classifier (vaeguard checkpoint, TF.js
 * Layers model.json or TorchScript) and the defenses in front of it, built by
 * the defense spec registry (src/defenses/index.ts) with the VAEs they need.
 * Only the operator names files (flags or config); no request ever does.
 */
import { basename, extname } from "node:path";
import { ArgumentError, CheckpointError } from "../core/errors.js";
import { MNIST_CLASSES } from "../data/mnist.js";
import { createDefense, type Defense, type DefenseContext } from "../defenses/index.js";
import { loadCheckpoint } from "../models/checkpoint.js";
import type { ImageClassifier } from "../models/classifiers.js";
import { loadTfjsLayersModel } from "../models/tfjs.js";
import { loadTorchScriptClassifier } from "../models/torchscript.js";
import { ConvVae } from "../models/vae.js";

export interface ServedDefense {
  /** The spec it was built from; what requests name it by ("vae", "jpeg:23"). */
  id: string;
  defense: Defense;
}

export interface ServeModels {
  classifier: ImageClassifier;
  classNames: readonly string[];
  /** "none" first (the undefended classifier), then the configured defenses. */
  defenses: ServedDefense[];
  /** What /v1/models says about where the models came from: file names only, never server paths. */
  sources: Record<string, string>;
  /** The files they were loaded from (loadServeModels): a model worker loads its own copy from them. */
  files?: ModelFiles;
  dispose(): void;
}

export interface ModelFiles {
  /** Classifier: *.safetensors (vaeguard), model.json (TF.js Layers) or *.pt / *.pth (TorchScript). */
  classifier: string;
  /** [C, H, W] of a TorchScript classifier (other formats record it). */
  inputShape?: readonly [number, number, number];
  /** The VAE of the "vae" defense. */
  vae?: string;
  /** Patch VAEs of the "patchvae:P/S" defenses, by patch size ("16", "32", "64"). */
  patchVaes?: Record<string, string>;
  /** Defense specs (createDefense); "none" is always served. */
  defenses: string[];
  /** Class names; default the ten digits for a 10-class classifier, else the class numbers. */
  classNames?: readonly string[];
}

function loadClassifier(file: string, inputShape?: readonly [number, number, number]): ImageClassifier {
  const ext = extname(file).toLowerCase();
  if (ext === ".json") return loadTfjsLayersModel(file);
  if (ext === ".pt" || ext === ".pth") {
    if (!inputShape) {
      throw new ArgumentError(`${file}: a TorchScript classifier needs its input shape (--input-shape C,H,W)`);
    }
    return loadTorchScriptClassifier(file, { inputShape });
  }
  const ck = loadCheckpoint(file);
  if (ck.arch === ConvVae.arch) {
    ck.model.dispose();
    throw new CheckpointError(file, `holds a '${ck.arch}' model but the classifier must be a classifier`);
  }
  return ck.model as unknown as ImageClassifier;
}

const loadVae = (file: string) => loadCheckpoint<ConvVae>(file, { expectArch: ConvVae.arch }).model;

/** Build the served set from models in memory (the tests use this with freshly initialised models). */
export function serveModels(
  classifier: ImageClassifier,
  specs: readonly string[],
  ctx: DefenseContext = {},
  extra: {
    classNames?: readonly string[];
    sources?: Record<string, string>;
    files?: ModelFiles;
    dispose?: () => void;
  } = {},
): ServeModels {
  const ids = ["none", ...specs.filter((s) => s.trim().toLowerCase() !== "none").map((s) => s.trim())];
  const seen = new Set<string>();
  const defenses = ids.map((id) => {
    if (seen.has(id)) throw new ArgumentError(`Defense "${id}" is listed twice`);
    seen.add(id);
    return { id, defense: createDefense(id, ctx) };
  });
  // A defense the classifier's images do not fit would fail on every /v1/classify: refuse it at start-up.
  const [c, h, w] = classifier.inputShape;
  for (const { id, defense } of defenses) {
    const fixed = fixedShape(defense);
    const channels = defenseChannels(defense);
    if ((fixed && (fixed[0] !== c || fixed[1] !== h || fixed[2] !== w)) || (channels !== undefined && channels !== c)) {
      const need = fixed ? `images of shape [${fixed.join(", ")}]` : `${channels}-channel images`;
      throw new ArgumentError(
        `Defense "${id}" works on ${need} but the classifier takes [${classifier.inputShape.join(", ")}]`,
      );
    }
    const patch = largestPatch(defense);
    if (patch > h || patch > w) {
      throw new ArgumentError(
        `Defense "${id}" cuts ${patch}x${patch} patches, larger than the classifier's ${h}x${w} images`,
      );
    }
  }
  const classNames =
    extra.classNames ??
    (classifier.numClasses === MNIST_CLASSES.length
      ? MNIST_CLASSES
      : Array.from({ length: classifier.numClasses }, (_, i) => String(i)));
  if (classNames.length !== classifier.numClasses) {
    throw new ArgumentError(
      `${classNames.length} class names were given for a classifier with ${classifier.numClasses} classes`,
    );
  }
  classifier.eval();
  return {
    classifier,
    classNames,
    defenses,
    sources: extra.sources ?? {},
    files: extra.files,
    dispose: extra.dispose ?? (() => {}),
  };
}

/** Load the classifier, the VAEs and the defenses named in the server's configuration. */
export function loadServeModels(files: ModelFiles): ServeModels {
  const owned: { dispose(): void }[] = [];
  try {
    const classifier = loadClassifier(files.classifier, files.inputShape);
    owned.push(classifier as unknown as { dispose(): void });
    const ctx: DefenseContext = {};
    const sources: Record<string, string> = { classifier: basename(files.classifier) };
    if (files.vae) {
      ctx.vae = loadVae(files.vae);
      owned.push(ctx.vae);
      sources.vae = basename(files.vae);
    }
    for (const [size, file] of Object.entries(files.patchVaes ?? {})) {
      const v = loadVae(file);
      owned.push(v);
      (ctx.patchVaes ??= {})[size] = v;
      sources[`patchVae${size}`] = basename(file);
    }
    return serveModels(classifier, files.defenses, ctx, {
      classNames: files.classNames,
      sources,
      files: { ...files },
      dispose: () => owned.forEach((m) => (m as { dispose?: () => void }).dispose?.()),
    });
  } catch (e) {
    owned.forEach((m) => (m as { dispose?: () => void }).dispose?.());
    throw e;
  }
}

/** The [C, H, W] a defense needs (a VAE's input), or undefined when it takes images of any size. */
export function fixedShape(defense: Defense): readonly [number, number, number] | undefined {
  const d = defense as Defense & { vae?: ConvVae; patchSize?: number; members?: readonly Defense[] };
  if (d.members) {
    for (const m of d.members) {
      const s = fixedShape(m);
      if (s) return s;
    }
    return undefined;
  }
  if (d.vae instanceof ConvVae && d.patchSize === undefined) return d.vae.inputShape;
  return undefined;
}

/** Channels a defense works on: its (patch) VAE's, or undefined when any will do. */
export function defenseChannels(defense: Defense): number | undefined {
  const d = defense as Defense & { vae?: ConvVae; members?: readonly Defense[] };
  if (d.members) return d.members.map(defenseChannels).find((c) => c !== undefined);
  return d.vae instanceof ConvVae ? d.vae.inputShape[0] : undefined;
}

/** The largest patch side of a patch-VAE defense (or ensemble member); 0 for other defenses. */
function largestPatch(defense: Defense): number {
  const d = defense as Defense & { patchSize?: number; members?: readonly Defense[] };
  if (d.members) return Math.max(0, ...d.members.map(largestPatch));
  return d.patchSize ?? 0;
}
