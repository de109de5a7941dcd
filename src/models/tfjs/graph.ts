/**
 * The Keras model graph (Sequential, or Functional in Keras 2 and Keras 3
 * form) rebuilt from its config: each layer created once and registered on
 * its owner, nodes in dependency order, intermediate values freed as soon as
 * nothing needs them. Nested models become layers with a graph of their own.
 */
import type { Tensor } from "../../core/tensor.js";
import { tidy } from "../../core/engine.js";
import { CheckpointError, ShapeError, VaeguardError } from "../../core/errors.js";
import type { Module } from "../../nn/module.js";
import { UnsupportedLayerError, fmt, isObj, type Json } from "./format.js";
import { Cfg, KerasLayer, type LayerContext } from "./layer.js";
import {
  ActivationLayer,
  ConcatenateLayer,
  Cropping2DLayer,
  DropoutLayer,
  FlattenLayer,
  GlobalPool2DLayer,
  LeakyReLULayer,
  MergeLayer,
  Pool2DLayer,
  ReLULayer,
  ReshapeLayer,
  RescalingLayer,
  SoftmaxLayer,
  ZeroPadding2DLayer,
} from "./layers-plain.js";
import {
  BatchNormLayer,
  Conv2DLayer,
  DenseLayer,
  DepthwiseConv2DLayer,
  SeparableConv2DLayer,
} from "./layers-weighted.js";

/** Something that holds the rebuilt layers of a graph as its sub-modules. */
export interface LayerOwner {
  children(): [string, Module][];
  adoptLayer(key: string, layer: KerasLayer): void;
}

/** A Keras model used as a layer of another model. */
export class NestedModelLayer extends KerasLayer implements LayerOwner {
  readonly graph: Graph;
  constructor(name: string, cls: string, layerJson: Json, ctx: LayerContext) {
    super(name, cls);
    this.graph = buildGraph({ class_name: cls, config: layerJson.config }, this, { ...ctx, path: [...ctx.path, name] });
  }
  adoptLayer(key: string, layer: KerasLayer): void {
    this.registerModule(key, layer);
  }
  call(inputs: Tensor[]): Tensor {
    return this.graph.run(this.one(inputs));
  }
}

export function createLayer(layerJson: Json, ctx: LayerContext): KerasLayer {
  const cls = layerJson.class_name as string;
  const config = isObj(layerJson.config) ? layerJson.config : {};
  const name = (typeof layerJson.name === "string" ? layerJson.name : config.name) as string;
  const cfg = new Cfg(config, name, cls, ctx.file);
  switch (cls) {
    case "Conv2D":
    case "Convolution2D":
      return new Conv2DLayer(name, cfg, ctx);
    case "DepthwiseConv2D":
      return new DepthwiseConv2DLayer(name, cfg, ctx);
    case "SeparableConv2D":
    case "SeparableConvolution2D":
      return new SeparableConv2DLayer(name, cfg, ctx);
    case "Dense":
      return new DenseLayer(name, cfg, ctx);
    case "BatchNormalization":
      return new BatchNormLayer(name, cfg, ctx);
    case "Activation":
      return new ActivationLayer(name, cfg, ctx);
    case "ReLU":
      return new ReLULayer(name, cfg);
    case "LeakyReLU":
      return new LeakyReLULayer(name, cfg);
    case "Softmax":
      return new SoftmaxLayer(name, cfg);
    case "MaxPooling2D":
    case "MaxPool2D":
      return new Pool2DLayer(name, "MaxPooling2D", cfg);
    case "AveragePooling2D":
    case "AvgPool2D":
      return new Pool2DLayer(name, "AveragePooling2D", cfg);
    case "GlobalAveragePooling2D":
    case "GlobalAvgPool2D":
      return new GlobalPool2DLayer(name, "GlobalAveragePooling2D", cfg);
    case "GlobalMaxPooling2D":
    case "GlobalMaxPool2D":
      return new GlobalPool2DLayer(name, "GlobalMaxPooling2D", cfg);
    case "ZeroPadding2D":
      return new ZeroPadding2DLayer(name, cfg);
    case "Cropping2D":
      return new Cropping2DLayer(name, cfg);
    case "Concatenate":
      return new ConcatenateLayer(name, cfg);
    case "Add":
    case "Subtract":
    case "Multiply":
    case "Average":
    case "Maximum":
    case "Minimum":
      return new MergeLayer(name, cls);
    case "Dropout":
      return new DropoutLayer(name, cls, cfg);
    case "Flatten":
      return new FlattenLayer(name, cfg);
    case "Reshape":
      return new ReshapeLayer(name, cfg);
    case "Rescaling":
      return new RescalingLayer(name, cfg);
    case "Model":
    case "Functional":
    case "Sequential":
      return new NestedModelLayer(name, cls, layerJson, ctx);
    default:
      throw new UnsupportedLayerError(ctx.file, cls, name);
  }
}

export interface GraphNode {
  id: number;
  /** null for the input node */
  layer: KerasLayer | null;
  inputs: number[];
  label: string;
}

/** The Keras graph, in an order where every node comes after its inputs, pruned to what the output needs. */
export class Graph {
  constructor(
    readonly nodes: GraphNode[],
    readonly inputNode: number,
    public outputNode: number,
    /** Keras input shape without the batch: [H, W, C] (entries may be null). */
    readonly inputShape: (number | null)[],
    readonly file: string,
  ) {}

  run(x: Tensor): Tensor {
    const order = this.order();
    const uses = new Map<number, number>();
    for (const n of order) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
    const values = new Map<number, Tensor>([[this.inputNode, x]]);
    try {
      for (const n of order) {
        if (n.layer === null) continue;
        const args = n.inputs.map((i) => values.get(i)!);
        let y: Tensor;
        try {
          y = tidy(() => n.layer!.call(args));
        } catch (e) {
          if (e instanceof VaeguardError && !(e instanceof ShapeError)) throw e;
          const shapes = args.map((a) => fmt(kerasShape(a))).join(", ");
          throw new ShapeError(
            `layer '${n.layer.kerasName}' (${n.layer.className}) failed on input ${shapes}: ${(e as Error).message}`,
            { cause: e },
          );
        }
        values.set(n.id, y);
        for (const i of n.inputs) {
          const left = uses.get(i)! - 1;
          uses.set(i, left);
          if (left === 0 && i !== this.inputNode && i !== this.outputNode) {
            values.get(i)?.dispose();
            values.delete(i);
          }
        }
      }
      const out = values.get(this.outputNode)!;
      values.delete(this.outputNode);
      return out;
    } finally {
      for (const [id, t] of values) if (id !== this.inputNode) t.dispose();
    }
  }

  /** Nodes the output depends on, inputs first. */
  order(): GraphNode[] {
    const byId = new Map(this.nodes.map((n) => [n.id, n]));
    const state = new Map<number, 1 | 2>();
    const out: GraphNode[] = [];
    const visit = (id: number) => {
      const s = state.get(id);
      if (s === 2) return;
      const n = byId.get(id)!;
      if (s === 1) throw new CheckpointError(this.file, `the model graph has a cycle through layer '${n.label}'`);
      state.set(id, 1);
      for (const i of n.inputs) visit(i);
      state.set(id, 2);
      out.push(n);
    };
    visit(this.outputNode);
    if (!state.has(this.inputNode)) {
      throw new CheckpointError(this.file, "the model output does not depend on the model input");
    }
    return out;
  }
}

/** Shape in Keras's order (rank 4: NHWC), for messages. */
export function kerasShape(t: Tensor): number[] {
  const d = t.shape;
  return d.length === 4 ? [d[0], d[2], d[3], d[1]] : d;
}

/** [layer name, node index, tensor index] references of one inbound node, in Keras 2 or Keras 3 form. */
export function inboundRefs(node: unknown, layer: string, file: string): [string, number, number][] {
  const refs: [string, number, number][] = [];
  const bad = (): never => {
    throw new CheckpointError(
      file,
      `layer '${layer}' has an inbound node that cannot be read: ${JSON.stringify(node)}`,
    );
  };
  if (Array.isArray(node)) {
    // Keras 2: [[name, nodeIndex, tensorIndex, kwargs], ...]
    for (const r of node) {
      if (!Array.isArray(r) || typeof r[0] !== "string") bad();
      refs.push([r[0], Number(r[1] ?? 0), Number(r[2] ?? 0)]);
    }
    return refs;
  }
  if (isObj(node) && "args" in node) {
    // Keras 3: {args: [tensor or [tensors]], kwargs}; a tensor carries config.keras_history.
    const walk = (v: unknown) => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (isObj(v) && v.class_name === "__keras_tensor__" && isObj(v.config)) {
        const h = v.config.keras_history;
        if (!Array.isArray(h) || typeof h[0] !== "string") bad();
        refs.push([(h as unknown[])[0] as string, Number((h as unknown[])[1] ?? 0), Number((h as unknown[])[2] ?? 0)]);
      }
    };
    walk(node.args);
    return refs;
  }
  return bad();
}

export function inputShapeOf(config: Json): (number | null)[] | null {
  const s = config.batch_input_shape ?? config.batch_shape;
  if (Array.isArray(s)) return s.slice(1) as (number | null)[];
  if (Array.isArray(config.input_shape)) return config.input_shape as (number | null)[];
  return null;
}

export function firstRef(v: unknown): [string, number, number] | null {
  // [[name, 0, 0]] or [name, 0, 0] (Keras 3 with one input or output).
  if (Array.isArray(v) && typeof v[0] === "string") return [v[0], Number(v[1] ?? 0), Number(v[2] ?? 0)];
  if (Array.isArray(v) && v.length === 1 && Array.isArray(v[0]) && typeof v[0][0] === "string") {
    return [v[0][0], Number(v[0][1] ?? 0), Number(v[0][2] ?? 0)];
  }
  return null;
}

export function refCount(v: unknown): number {
  if (Array.isArray(v) && typeof v[0] === "string") return 1;
  return Array.isArray(v) ? v.length : 0;
}

/** Build the graph of a Functional or Sequential model config, registering each layer on `owner`. */
export function buildGraph(modelJson: Json, owner: LayerOwner, ctx: LayerContext): Graph {
  const cls = modelJson.class_name;
  const where = ctx.path.length > 0 ? `nested model '${ctx.path.join("/")}'` : "the model";
  const config = modelJson.config;
  if (cls === "Sequential") return buildSequentialGraph(config, where, owner, ctx);
  if (cls !== "Model" && cls !== "Functional") {
    throw new CheckpointError(
      ctx.file,
      `${where}: model class '${String(cls)}' is not supported (expected Model, Functional or Sequential)`,
    );
  }
  if (!isObj(config) || !Array.isArray(config.layers)) {
    throw new CheckpointError(ctx.file, `${where}: the model config has no layer list`);
  }
  return buildFunctionalGraph(config, where, owner, ctx);
}

/**
 * Register `layer` on `owner` under a module key derived from its Keras name.
 * Keys cannot hold '.' or '/' (they separate parameter paths), and Keras names
 * need not be unique across nested models, so clashes get a numeric suffix.
 */
function registerLayer(owner: LayerOwner, layer: KerasLayer): void {
  let key = layer.kerasName.replace(/[./]/g, "_") || "layer";
  const taken = new Set(owner.children().map(([n]) => n));
  if (taken.has(key)) {
    let i = 1;
    while (taken.has(`${key}_${i}`)) i++;
    key = `${key}_${i}`;
  }
  owner.adoptLayer(key, layer);
}

/** A Sequential model: a chain from one input node through each layer in turn. */
function buildSequentialGraph(config: unknown, where: string, owner: LayerOwner, ctx: LayerContext): Graph {
  // The layer list sits directly in the config (old Keras) or under config.layers.
  const layers = Array.isArray(config) ? config : isObj(config) && Array.isArray(config.layers) ? config.layers : null;
  if (!layers) throw new CheckpointError(ctx.file, `${where}: Sequential config has no layer list`);
  const nodes: GraphNode[] = [];
  let inputShape: (number | null)[] | null = null;
  let prev = 0;
  nodes.push({ id: 0, layer: null, inputs: [], label: "input" });
  for (const lj of layers as unknown[]) {
    if (!isObj(lj) || typeof lj.class_name !== "string") {
      throw new CheckpointError(ctx.file, `${where}: a layer entry has no class_name`);
    }
    const lc = isObj(lj.config) ? lj.config : {};
    // The input shape may be declared by an InputLayer or by the first real layer.
    if (inputShape === null) inputShape = inputShapeOf(lc);
    if (lj.class_name === "InputLayer") continue;
    const layer = createLayer(lj, ctx);
    registerLayer(owner, layer);
    const id = nodes.length;
    nodes.push({ id, layer, inputs: [prev], label: layer.kerasName });
    prev = id;
  }
  if (inputShape === null) {
    throw new CheckpointError(ctx.file, `${where}: the Sequential model does not declare its input shape`);
  }
  if (prev === 0) throw new CheckpointError(ctx.file, `${where}: the Sequential model has no layers`);
  return new Graph(nodes, 0, prev, inputShape, ctx.file);
}

/** Key of one (layer, inbound node) pair in FunctionalNodes.nodeOf. */
function nodeKey(name: string, idx: number): string {
  return `${name}\u0000${idx}`;
}

/** The nodes of a Functional model as read from its layer list, before their inputs are linked. */
interface FunctionalNodes {
  nodes: GraphNode[];
  nodeOf: Map<string, number>;
  /** Inputs still to resolve: they may name layers listed later. */
  pending: { id: number; refs: [string, number, number][]; layer: string }[];
  inputLayers: Map<string, (number | null)[] | null>;
}

/** A Functional model: nodes linked by the inbound references of each layer. */
function buildFunctionalGraph(config: Json, where: string, owner: LayerOwner, ctx: LayerContext): Graph {
  const found = readFunctionalLayers(config.layers as unknown[], where, owner, ctx);
  linkPendingInputs(found, ctx.file);
  return connectEndpoints(config, found, where, ctx.file);
}

/** Create every layer and one graph node per (layer, inbound node), inputs left pending. */
function readFunctionalLayers(layers: unknown[], where: string, owner: LayerOwner, ctx: LayerContext): FunctionalNodes {
  // One graph node per (layer, inbound node): a layer called twice shares its weights.
  const found: FunctionalNodes = { nodes: [], nodeOf: new Map(), pending: [], inputLayers: new Map() };
  const { nodes, nodeOf, pending, inputLayers } = found;
  const layerByName = new Map<string, KerasLayer | null>();
  for (const lj of layers) {
    if (!isObj(lj) || typeof lj.class_name !== "string") {
      throw new CheckpointError(ctx.file, `${where}: a layer entry has no class_name`);
    }
    const lc = isObj(lj.config) ? lj.config : {};
    const name = typeof lj.name === "string" ? lj.name : (lc.name as string);
    if (typeof name !== "string")
      throw new CheckpointError(ctx.file, `${where}: a '${lj.class_name}' layer has no name`);
    if (layerByName.has(name)) throw new CheckpointError(ctx.file, `${where}: two layers are named '${name}'`);
    if (lj.class_name === "InputLayer") {
      layerByName.set(name, null);
      inputLayers.set(name, inputShapeOf(lc));
      const id = nodes.length;
      nodes.push({ id, layer: null, inputs: [], label: name });
      nodeOf.set(nodeKey(name, 0), id);
      continue;
    }
    const layer = createLayer(lj, ctx);
    registerLayer(owner, layer);
    layerByName.set(name, layer);
    const inbound = Array.isArray(lj.inbound_nodes) ? lj.inbound_nodes : [];
    inbound.forEach((node: unknown, ni: number) => {
      const id = nodes.length;
      nodes.push({ id, layer, inputs: [], label: inbound.length > 1 ? `${name}#${ni}` : name });
      nodeOf.set(nodeKey(name, ni), id);
      pending.push({ id, refs: inboundRefs(node, name, ctx.file), layer: name });
    });
  }
  return found;
}

/** Resolve each pending inbound reference to the id of the node it names. */
function linkPendingInputs({ nodes, nodeOf, pending }: FunctionalNodes, file: string): void {
  for (const p of pending) {
    nodes[p.id].inputs = p.refs.map(([ln, ni, ti]) => {
      if (ti !== 0) {
        throw new CheckpointError(
          file,
          `layer '${p.layer}' uses output ${ti} of layer '${ln}'; only single-output layers are supported`,
        );
      }
      const id = nodeOf.get(nodeKey(ln, ni));
      if (id === undefined) {
        throw new CheckpointError(
          file,
          `layer '${p.layer}' takes its input from '${ln}' (node ${ni}), which is not in the model`,
        );
      }
      return id;
    });
  }
}

/** Find the single input and output nodes the config names, and check the graph between them. */
function connectEndpoints(config: Json, found: FunctionalNodes, where: string, file: string): Graph {
  const { nodes, nodeOf, inputLayers } = found;
  if (refCount(config.input_layers) !== 1 || refCount(config.output_layers) !== 1) {
    throw new CheckpointError(
      file,
      `${where} has ${refCount(config.input_layers)} inputs and ${refCount(config.output_layers)} outputs; an image classifier needs exactly one of each`,
    );
  }
  const inRef = firstRef(config.input_layers)!;
  const outRef = firstRef(config.output_layers)!;
  const inputNode = nodeOf.get(nodeKey(inRef[0], inRef[1]));
  if (inputNode === undefined || !inputLayers.has(inRef[0])) {
    throw new CheckpointError(file, `${where}: input layer '${inRef[0]}' is not an InputLayer of the model`);
  }
  const outputNode = nodeOf.get(nodeKey(outRef[0], outRef[1]));
  if (outputNode === undefined)
    throw new CheckpointError(file, `${where}: output layer '${outRef[0]}' is not in the model`);
  const inputShape = inputLayers.get(inRef[0]);
  if (!inputShape) throw new CheckpointError(file, `${where}: input layer '${inRef[0]}' does not declare its shape`);
  const g = new Graph(nodes, inputNode, outputNode, inputShape, file);
  g.order(); // checks for cycles and for an output that ignores the input
  return g;
}
