/**
 * TF.js Layers model import: reads a `model.json` (format "layers-model": a
 * Keras model config plus a weights manifest) and its binary weight shards,
 * and rebuilds the network on our engine as a Module that is an
 * ImageClassifier.
 *
 * Keras works channel-last (NHWC); we work channel-first (NCHW). Every rank-4
 * tensor inside the rebuilt graph is held as NCHW, every other tensor in
 * Keras's own order; layers that depend on the element order (Flatten,
 * Reshape, Dense on images, axis arguments) convert explicitly, so that the
 * numbers equal TF.js's. Kernels are converted once at load time.
 *
 * The model takes images in [0, 1]; the scaling the original network expects
 * (nsfwjs: pixel / 255, i.e. the identity on [0, 1]; Keras InceptionV3:
 * pixel / 127.5 - 1) is a configurable first step inside the wrapper, so
 * attacks work in [0, 1] pixel space. A final softmax is removed by default
 * so that `forward` returns logits; `endsWithSoftmax` records that it was
 * there and `predictProbabilities` puts it back.
 */
import { realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { Tensor, tensor, zeros } from "../core/tensor.js";
import { keep, noGrad, tidy } from "../core/engine.js";
import { ArgumentError, CheckpointError, ShapeError, TorchError } from "../core/errors.js";
import { LIMITS } from "../core/limits.js";
import { checkOneOf, fail } from "../core/validate.js";
import { Module } from "../nn/module.js";
import * as F from "../nn/functional.js";
import { readFileOr } from "../io/read-file.js";
import type { ImageClassifier } from "./classifiers.js";
import { fmt, isObj, product, type Json, type TfjsModelJson } from "./tfjs/format.js";
import { Graph, buildGraph, kerasShape, type GraphNode, type LayerOwner } from "./tfjs/graph.js";
import { alias, type KerasLayer, type LayerContext } from "./tfjs/layer.js";
import { ActivationLayer, DropoutLayer, SoftmaxLayer } from "./tfjs/layers-plain.js";
import { Conv2DLayer, DenseLayer } from "./tfjs/layers-weighted.js";
import { WeightStore, decodeWeights } from "./tfjs/weights.js";

export {
  UnsupportedLayerError,
  type TfjsModelJson,
  type TfjsQuantization,
  type TfjsWeightSpec,
  type TfjsWeightsGroup,
} from "./tfjs/format.js";

/**
 * How images in [0, 1] become the network's input: optional RGB -> BGR swap,
 * then `x * scale + offset` per channel (numbers or one value per channel).
 */
export interface InputScaling {
  scale?: number | readonly number[];
  offset?: number | readonly number[];
  channelOrder?: "rgb" | "bgr";
}

export const INPUT_SCALINGS = {
  /** x in [0, 1] as is: nsfwjs (pixel / 255). */
  unit: { scale: 1, offset: 0 },
  /** 2x - 1 in [-1, 1]: Keras InceptionV3 / MobileNetV2 `preprocess_input` ("tf" mode, pixel / 127.5 - 1). */
  symmetric: { scale: 2, offset: -1 },
  /** 255x: networks that take raw pixel values (for example with a Rescaling layer inside). */
  pixels: { scale: 255, offset: 0 },
  /** Keras "caffe" mode (VGG16, ResNet50): BGR, pixel minus the ImageNet mean, no division. */
  caffe: { channelOrder: "bgr", scale: 255, offset: [-103.939, -116.779, -123.68] },
  /** Keras "torch" mode: (x - mean) / std with the ImageNet statistics. */
  torch: {
    scale: [1 / 0.229, 1 / 0.224, 1 / 0.225],
    offset: [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
  },
} as const satisfies Record<string, InputScaling>;

export type InputScalingName = keyof typeof INPUT_SCALINGS;

export interface TfjsImportOptions {
  /** Input scaling: a preset name or explicit values. Default "unit" (the nsfwjs convention). */
  inputScaling?: InputScalingName | InputScaling;
  /** [C, H, W] for models whose input layer leaves height or width open. */
  inputShape?: readonly [number, number, number];
  /** Keep a final softmax, so that forward returns probabilities (default false: forward returns logits). */
  keepSoftmax?: boolean;
  /** Reject manifest weights that no layer uses (default true). */
  strict?: boolean;
  /** Name used in error messages (default: the model.json path, or "model.json"). */
  source?: string;
}

function resolveScaling(
  s: InputScalingName | InputScaling | undefined,
  channels: number,
): {
  bgr: boolean;
  scale: number[];
  offset: number[];
} {
  let spec: InputScaling;
  if (s === undefined || typeof s === "string") {
    const name = checkOneOf(s ?? "unit", "inputScaling", Object.keys(INPUT_SCALINGS) as InputScalingName[]);
    spec = INPUT_SCALINGS[name];
  } else if (isObj(s)) {
    spec = s;
  } else {
    return fail(`a preset name or {scale, offset, channelOrder}`, "inputScaling", s);
  }
  const perChannel = (v: number | readonly number[] | undefined, dflt: number, name: string): number[] => {
    if (v === undefined) return new Array<number>(channels).fill(dflt);
    if (typeof v === "number" && Number.isFinite(v)) return new Array<number>(channels).fill(v);
    if (Array.isArray(v) && v.length === channels && v.every((d) => typeof d === "number" && Number.isFinite(d))) {
      return [...v];
    }
    return fail(`a number or ${channels} numbers`, `inputScaling.${name}`, v);
  };
  const order = checkOneOf(spec.channelOrder ?? "rgb", "inputScaling.channelOrder", ["rgb", "bgr"] as const);
  if (order === "bgr" && channels !== 3)
    fail('"rgb" for a model without 3 channels', "inputScaling.channelOrder", order);
  return {
    bgr: order === "bgr",
    scale: perChannel(spec.scale, 1, "scale"),
    offset: perChannel(spec.offset, 0, "offset"),
  };
}

/** The Keras model config inside a TF.js model.json, after checking that this is a layers model. */
function kerasModelConfig(json: TfjsModelJson, file: string): Json {
  if (!isObj(json)) throw new CheckpointError(file, "is not a TF.js model.json (expected a JSON object)");
  if (json.format === "graph-model") {
    throw new CheckpointError(
      file,
      "is a TF.js graph model (format 'graph-model'); only layers models (format 'layers-model', a Keras config) can be imported",
    );
  }
  if (json.format !== undefined && json.format !== "layers-model") {
    throw new CheckpointError(file, `has format '${String(json.format)}'; expected 'layers-model'`);
  }
  const topology = json.modelTopology;
  if (!isObj(topology)) throw new CheckpointError(file, "has no modelTopology (is it a TF.js model.json?)");
  // Keras 2 exports wrap the config in model_config; some writers put it at the top level.
  const modelJson = isObj(topology.model_config) ? topology.model_config : topology;
  if (typeof modelJson.class_name !== "string") {
    throw new CheckpointError(file, "modelTopology has no Keras model config (class_name missing)");
  }
  return modelJson;
}

/** Refuse a manifest with weights no layer took: usually a sign that the config and weights do not match. */
function checkAllWeightsUsed(weights: WeightStore, file: string): void {
  const unused = weights.unused();
  if (unused.length > 0) {
    throw new CheckpointError(
      file,
      `${unused.length} weight(s) in the manifest belong to no layer of the model: ${unused
        .slice(0, 5)
        .map((n) => `'${n}'`)
        .join(", ")}${unused.length > 5 ? ", ..." : ""}`,
    );
  }
}

/**
 * The input [C, H, W] from the Keras input shape `ks` ([H, W, C], entries may
 * be null) and the caller's `inputShape`, which must fit it and is needed when
 * the model leaves a size open; checked against the input size limit.
 */
function resolveInputShape(
  ks: (number | null)[],
  requested: TfjsImportOptions["inputShape"],
  file: string,
): [number, number, number] {
  if (ks.length !== 3) {
    throw new CheckpointError(
      file,
      `the model input has shape ${fmt(ks)}; an image classifier needs [height, width, channels]`,
    );
  }
  let shape: [number, number, number];
  if (requested) {
    const s = requested;
    if (!Array.isArray(s) || s.length !== 3 || !s.every((d) => Number.isInteger(d) && d > 0)) {
      fail("[channels, height, width] of positive integers", "inputShape", s);
    }
    const keras = [s[1], s[2], s[0]];
    keras.forEach((d, i) => {
      if (ks[i] !== null && ks[i] !== d) {
        throw new ArgumentError(
          `inputShape ${fmt(s)} does not fit the model's input ${fmt(ks)} (height, width, channels)`,
        );
      }
    });
    shape = [s[0], s[1], s[2]];
  } else {
    if (ks.some((d) => d === null)) {
      throw new CheckpointError(
        file,
        `the model input ${fmt(ks)} leaves its size open; pass inputShape [channels, height, width]`,
      );
    }
    shape = [ks[2]!, ks[0]!, ks[1]!];
  }
  const inputBytes = product(shape) * 4;
  if (inputBytes > LIMITS.inputBytes) {
    throw new CheckpointError(
      file,
      `the model input [${shape.join(", ")}] (channels, height, width) needs ${inputBytes} bytes per image, ` +
        `more than the limit of ${LIMITS.inputBytes}`,
    );
  }
  return shape;
}

/** One probe run on zeros: finds the number of classes and any shape that does not fit. */
function probeNumClasses(graph: Graph, shape: [number, number, number], file: string): number {
  const out = noGrad(() => tidy(() => graph.run(zeros([1, ...shape]))));
  try {
    if (out.rank !== 2) {
      throw new CheckpointError(
        file,
        `the model output has shape ${fmt(kerasShape(out))}; a classifier needs [N, classes]`,
      );
    }
    return out.dims[1];
  } finally {
    out.dispose();
  }
}

/** A TF.js Layers model rebuilt on the engine. Inputs are images [N, C, H, W] in [0, 1]; starts in eval mode. */
export class TfjsLayersModel extends Module implements ImageClassifier, LayerOwner {
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  /** Whether the original graph's final layer applies a softmax. */
  readonly endsWithSoftmax: boolean;
  /** Whether forward returns logits (true when a final softmax was removed, or when there was none). */
  readonly outputsLogits: boolean;
  /** The final activation of the original graph ("softmax", "linear", "sigmoid", ...). */
  readonly finalActivation: string;
  /** The Keras layers in graph order: name and class. */
  readonly layers: readonly { name: string; className: string }[];
  readonly source: string;
  readonly userDefinedMetadata: Record<string, unknown> | undefined;
  readonly scaling: { bgr: boolean; scale: number[]; offset: number[] };
  private readonly graph: Graph;
  private scaleT: Tensor | null;
  private offsetT: Tensor | null;

  /** @internal use loadTfjsLayersModel or tfjsModelFromArtifacts */
  constructor(json: TfjsModelJson, readShard: (path: string) => Uint8Array, options: TfjsImportOptions = {}) {
    super();
    const file = options.source ?? "model.json";
    this.source = file;
    const modelJson = kerasModelConfig(json, file);
    this.userDefinedMetadata = isObj(json.userDefinedMetadata) ? json.userDefinedMetadata : undefined;
    const weights = new WeightStore(decodeWeights(json.weightsManifest, readShard, file), file);
    const ctx: LayerContext = { file, weights, path: [] };
    try {
      this.graph = buildGraph(modelJson, this, ctx);
      if (options.strict ?? true) checkAllWeightsUsed(weights, file);
      const shape = resolveInputShape(this.graph.inputShape, options.inputShape, file);
      this.inputShape = shape;
      this.scaling = resolveScaling(options.inputScaling, shape[0]);
      const needScale = this.scaling.scale.some((v) => v !== 1) || this.scaling.offset.some((v) => v !== 0);
      this.scaleT = needScale ? keep(tensor(Float32Array.from(this.scaling.scale), [1, shape[0], 1, 1])) : null;
      this.offsetT = needScale ? keep(tensor(Float32Array.from(this.scaling.offset), [1, shape[0], 1, 1])) : null;

      const final = this.findFinalSoftmax();
      this.finalActivation = final.activation;
      this.endsWithSoftmax = final.activation === "softmax";
      if (this.endsWithSoftmax && !options.keepSoftmax) {
        final.strip();
        this.outputsLogits = true;
      } else {
        this.outputsLogits = final.activation === "linear";
      }
      this.layers = this.graph
        .order()
        .flatMap((n) => (n.layer ? [{ name: n.layer.kerasName, className: n.layer.className }] : []));
      this.eval();
      this.numClasses = probeNumClasses(this.graph, shape, file);
    } catch (e) {
      this.dispose();
      // libtorch's own failures during the probe (an allocation it cannot make) name the file too.
      if (e instanceof ShapeError || e instanceof TorchError) throw new CheckpointError(file, e.message, { cause: e });
      throw e;
    }
  }

  /** @internal */
  adoptLayer(key: string, layer: KerasLayer): void {
    this.registerModule(key, layer);
  }

  /** Locate a final softmax (through trailing Dropout layers) and how to remove it. */
  private findFinalSoftmax(): { activation: string; strip: () => void } {
    const byId = new Map(this.graph.nodes.map((n) => [n.id, n]));
    const consumers = (id: number) => this.graph.nodes.filter((n) => n.inputs.includes(id)).length;
    let node = byId.get(this.graph.outputNode)!;
    const chain: GraphNode[] = [];
    while (node.layer instanceof DropoutLayer && node.inputs.length === 1 && consumers(node.inputs[0]) === 1) {
      chain.push(node);
      node = byId.get(node.inputs[0])!;
    }
    const layer = node.layer;
    const usedOnce = this.graph.nodes.filter((n) => n.layer === layer).length === 1;
    if (layer instanceof SoftmaxLayer || (layer instanceof ActivationLayer && layer.activation.name === "softmax")) {
      const ok = layer instanceof ActivationLayer || layer.axis === -1 || layer.axis === 1;
      return {
        activation: ok ? "softmax" : "softmax (axis)",
        strip: () => {
          const target = chain.length > 0 ? chain[chain.length - 1] : null;
          if (target) target.inputs = [node.inputs[0]];
          else this.graph.outputNode = node.inputs[0];
        },
      };
    }
    if ((layer instanceof DenseLayer || layer instanceof Conv2DLayer || layer instanceof ActivationLayer) && usedOnce) {
      const name = layer.activation.name;
      return {
        activation: name,
        strip: () => {
          layer.activation = { name: "linear", fn: alias };
        },
      };
    }
    return { activation: layer ? layer.className : "linear", strip: () => {} };
  }

  /** Logits [N, numClasses] (probabilities when built with keepSoftmax) for images [N, C, H, W] in [0, 1]. */
  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor)) fail("a tensor", "x", x);
    const [c, h, w] = this.inputShape;
    if (x.rank !== 4 || x.dims[1] !== c || x.dims[2] !== h || x.dims[3] !== w) {
      throw new ShapeError(`TfjsLayersModel: expected images [N, ${c}, ${h}, ${w}] but received ${fmt(x.dims)}`);
    }
    if (this.scaleT && this.offsetT && this.scaleT.device !== x.device) {
      // The scaling constants are not parameters; they follow the input to its device.
      const [s, o] = [this.scaleT, this.offsetT];
      this.scaleT = keep(noGrad(() => s.to(x.device)));
      this.offsetT = keep(noGrad(() => o.to(x.device)));
      s.dispose();
      o.dispose();
    }
    return tidy(() => {
      let input = x;
      if (this.scaling.bgr) input = input.flip(1);
      if (this.scaleT && this.offsetT) input = input.mul(this.scaleT).add(this.offsetT);
      return this.graph.run(input === x ? alias(x) : input);
    });
  }

  /** What the original model outputs: softmax of the logits when it ended in a softmax. */
  predictProbabilities(x: Tensor): Tensor {
    return tidy(() => {
      const y = this.forward(x);
      return this.endsWithSoftmax && this.outputsLogits ? F.softmax(y, -1) : y;
    });
  }

  override dispose(): void {
    this.scaleT?.dispose();
    this.offsetT?.dispose();
    super.dispose();
  }
}

/** Build a model from an already parsed model.json and a shard reader (paths as written in the manifest). */
export function tfjsModelFromArtifacts(
  json: unknown,
  readShard: (path: string) => Uint8Array,
  options: TfjsImportOptions = {},
): TfjsLayersModel {
  return new TfjsLayersModel(json as TfjsModelJson, readShard, options);
}

/** Parse the text of a model.json, with a CheckpointError that names the file. */
export function parseModelJson(text: string, file: string): TfjsModelJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(file, `is not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (!isObj(json)) throw new CheckpointError(file, "is not a TF.js model.json (expected a JSON object)");
  return json as unknown as TfjsModelJson;
}

/**
 * A reader for weight shards beside a model.json. Paths must stay inside that
 * folder (after following symbolic links).
 */
export function shardReader(modelJsonFile: string): (path: string) => Uint8Array {
  const dir = realpathSync(dirname(modelJsonFile));
  return (p: string) => {
    if (p === "" || isAbsolute(p) || p.includes("\0") || /^[a-z][a-z0-9+.-]*:\/\//i.test(p)) {
      throw new CheckpointError(modelJsonFile, `weight shard path '${p}' must be a relative file path`);
    }
    const full = resolve(dir, p);
    let real: string;
    try {
      real = realpathSync(full);
    } catch {
      throw new CheckpointError(modelJsonFile, `weight shard '${p}' not found (expected at ${full})`);
    }
    const rel = relative(dir, real);
    if (rel.startsWith("..") || isAbsolute(rel) || rel === "") {
      throw new CheckpointError(modelJsonFile, `weight shard '${p}' lies outside the model folder ${dir}`);
    }
    const buf = readFileOr(
      real,
      (m, cause) => new CheckpointError(modelJsonFile, `weight shard '${p}': ${m}`, { cause }),
    );
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  };
}

/**
 * Load a TF.js Layers model from `path` (a model.json, or a folder holding
 * one) and its weight shards.
 */
export function loadTfjsLayersModel(path: string, options: TfjsImportOptions = {}): TfjsLayersModel {
  if (typeof path !== "string" || path === "") fail("a path to a model.json", "path", path);
  let file = resolve(path);
  try {
    if (statSync(file).isDirectory()) file = join(file, "model.json");
  } catch {
    // reported below by readFileOr
  }
  const text = readFileOr(file, (m, cause) => new CheckpointError(file, m, { cause })).toString("utf8");
  const json = parseModelJson(text, file);
  return tfjsModelFromArtifacts(json, shardReader(file), { ...options, source: options.source ?? file });
}
