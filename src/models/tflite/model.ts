/**
 * TensorFlow Lite import: a .tflite flatbuffer rebuilt as an ordinary,
 * differentiable vaeguard Module that is an ImageClassifier.
 *
 * Quantised files (uint8 or int8 weights, per tensor or per channel; int32
 * biases) are dequantised once at load time and then run in float32, so that
 * gradients exist for attacks. This is "float execution" of the quantised
 * network: it differs from TFLite's integer kernels by their rounding of
 * activations (measured in docs, see scripts/verify-tflite.py).
 *
 * The model takes images [N, C, H, W] in [0, 1]. The input tensor's
 * quantisation says what the network expects: a uint8 input q = 255 x means
 * the real value scale * (255 x - zero_point), so that scaling is the model's
 * first step. A final SOFTMAX (and any QUANTIZE/DEQUANTIZE after it) is left
 * out so that forward returns logits; `predictProbabilities` puts it back.
 */
import { resolve } from "node:path";
import { Tensor, zeros } from "../../core/tensor.js";
import { noGrad, tidy } from "../../core/engine.js";
import { CheckpointError, ShapeError, VaeguardError } from "../../core/errors.js";
import { checkNumber, fail } from "../../core/validate.js";
import { LIMITS } from "../../core/limits.js";
import { Module } from "../../nn/module.js";
import * as F from "../../nn/functional.js";
import { readFileOr } from "../../io/read-file.js";
import type { ImageClassifier } from "../classifiers.js";
import { FlatBufferError } from "./flatbuffer.js";
import {
  addActivation,
  conv2dOptions,
  depthwiseOptions,
  pool2dOptions,
  readTfliteModel,
  reducerKeepDims,
  reshapeNewShape,
  softmaxBeta,
  type TfliteModel,
  type TfliteOperator,
  type TfliteTensor,
} from "./schema.js";
import { dequantize, elementCount, rawValues } from "./dequantize.js";
import {
  AddOp,
  AvgPoolOp,
  ConvOp,
  IdentityOp,
  MeanOp,
  OpBuildError,
  PadOp,
  ReshapeOp,
  SoftmaxOp,
  alias,
  type FloatConstant,
  type TfliteOp,
} from "./ops.js";

/** The operators this importer rebuilds. */
export const SUPPORTED_OPS = [
  "CONV_2D",
  "DEPTHWISE_CONV_2D",
  "ADD",
  "AVERAGE_POOL_2D",
  "MEAN",
  "RESHAPE",
  "SOFTMAX",
  "PAD",
  "QUANTIZE",
  "DEQUANTIZE",
] as const;

/** Largest tensor the file may declare (elements, as float32 within LIMITS.tensorBytes). A corrupt shape must not become a huge allocation. */
export const MAX_TENSOR_ELEMENTS = LIMITS.tensorBytes / 8;

/** An op this importer does not rebuild, named with its index in the subgraph's operator list. */
export class UnsupportedOpError extends CheckpointError {
  constructor(
    file: string,
    readonly opName: string,
    readonly opIndex: number,
    others: number,
  ) {
    super(
      file,
      `unsupported op '${opName}' (operator ${opIndex})${others > 0 ? ` and ${others} more unsupported operator(s)` : ""}; ` +
        `supported: ${SUPPORTED_OPS.join(", ")}`,
    );
  }
}

export interface TfliteImportOptions {
  /** Name used in error messages (default: the file path, or "model.tflite"). */
  source?: string;
  /**
   * Override of the input scaling: the network's input is `x * scale + offset`
   * for images x in [0, 1]. Default: from the input tensor's quantisation
   * (uint8: scale 255 s, offset -s z); float inputs default to x itself.
   */
  inputScaling?: { scale: number; offset: number };
  /** Keep a final softmax, so that forward returns probabilities (default false: logits). */
  keepSoftmax?: boolean;
}

/** What `vaeguard models import` prints. */
export interface TfliteSummary {
  source: string;
  description: string | null;
  schemaVersion: number;
  operators: number;
  opCounts: Record<string, number>;
  parameters: number;
  quantized: boolean;
  /** TFLite order: [1, H, W, C]. */
  inputTensor: { name: string; shape: number[]; type: string; scale: number | null; zeroPoint: number | null };
  outputTensor: { name: string; shape: number[]; type: string };
  inputScaling: { scale: number; offset: number };
  endsWithSoftmax: boolean;
  numClasses: number;
}

function fmt(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

interface OpPlan {
  op: TfliteOp;
  /** Tensor indices of the values the op consumes at run time. */
  inputs: number[];
  output: number;
}

/** A TFLite model rebuilt on the engine. Inputs are images [N, C, H, W] in [0, 1]; starts in eval mode. */
export class TfliteClassifier extends Module implements ImageClassifier {
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  readonly source: string;
  readonly endsWithSoftmax: boolean;
  /** Whether forward returns logits (true unless built with keepSoftmax on a model that ends in a softmax). */
  readonly outputsLogits: boolean;
  readonly inputScaling: { scale: number; offset: number };
  readonly summary: TfliteSummary;
  private readonly plan: OpPlan[] = [];
  private readonly inputIndex: number;
  private readonly outputIndex: number;
  private readonly finalSoftmaxBeta: number;
  /** Tensor index -> the last plan step that reads it. */
  private readonly lastUse = new Map<number, number>();

  /** @internal use loadTfliteModel or tfliteModelFromBytes */
  constructor(bytes: Uint8Array, options: TfliteImportOptions = {}) {
    super();
    const file = options.source ?? "model.tflite";
    this.source = file;
    let m: TfliteModel;
    try {
      m = readTfliteModel(bytes);
    } catch (e) {
      if (e instanceof FlatBufferError) throw new CheckpointError(file, e.message, { cause: e });
      if (e instanceof VaeguardError) throw e;
      throw new CheckpointError(file, `cannot be parsed as a TFLite model (${(e as Error).message})`, { cause: e });
    }
    try {
      const built = this.build(m, file, options);
      this.inputIndex = built.input;
      this.outputIndex = built.output;
      this.endsWithSoftmax = built.softmaxBeta !== null;
      this.finalSoftmaxBeta = built.softmaxBeta ?? 1;
      this.outputsLogits = !(this.endsWithSoftmax && options.keepSoftmax);
      this.inputShape = built.inputShape;
      this.plan.forEach((p, step) => p.inputs.forEach((i) => this.lastUse.set(i, step)));
      this.inputScaling = built.scaling;
      this.eval();
      this.numClasses = this.probe(m, file);
      this.summary = this.summarise(m, file, built.scaling);
    } catch (e) {
      this.dispose();
      if (e instanceof FlatBufferError) throw new CheckpointError(file, e.message, { cause: e });
      if (e instanceof ShapeError) throw new CheckpointError(file, e.message, { cause: e });
      throw e;
    }
  }

  private build(
    m: TfliteModel,
    file: string,
    options: TfliteImportOptions,
  ): {
    input: number;
    output: number;
    softmaxBeta: number | null;
    inputShape: [number, number, number];
    scaling: { scale: number; offset: number };
  } {
    const tensorAt = (i: number, what: string): TfliteTensor => {
      const t = m.tensors[i];
      if (!t)
        throw new CheckpointError(file, `${what} refers to tensor ${i}, but the subgraph has ${m.tensors.length}`);
      return t;
    };
    // Shapes first: every declared tensor must fit the budget before anything is allocated.
    for (const t of m.tensors) {
      if (!t.shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new CheckpointError(file, `tensor ${t.index} ('${t.name}') has an invalid shape ${fmt(t.shape)}`);
      }
      const n = elementCount(t.shape);
      if (n > MAX_TENSOR_ELEMENTS) {
        throw new CheckpointError(
          file,
          `tensor ${t.index} ('${t.name}') declares shape ${fmt(t.shape)} (${n} elements), over the budget of ${MAX_TENSOR_ELEMENTS} elements (corrupt file?)`,
        );
      }
    }
    // Unsupported ops: reported together, by name and index, before building anything.
    const opName = (op: TfliteOperator): string => {
      const code = m.operatorCodes[op.opcodeIndex];
      if (!code) {
        throw new CheckpointError(
          file,
          `operator ${op.index} refers to operator code ${op.opcodeIndex}, but the file has ${m.operatorCodes.length}`,
        );
      }
      return code.name;
    };
    const unsupported = m.operators.filter((op) => !(SUPPORTED_OPS as readonly string[]).includes(opName(op)));
    if (unsupported.length > 0) {
      throw new UnsupportedOpError(file, opName(unsupported[0]), unsupported[0].index, unsupported.length - 1);
    }
    if (m.inputs.length !== 1 || m.outputs.length !== 1) {
      throw new CheckpointError(
        file,
        `has ${m.inputs.length} inputs and ${m.outputs.length} outputs; an image classifier needs exactly one of each`,
      );
    }
    const inT = tensorAt(m.inputs[0], "the subgraph input");
    const outT = tensorAt(m.outputs[0], "the subgraph output");
    if (inT.shape.length !== 4 || inT.shape[0] !== 1 || inT.shape.slice(1).some((d) => d < 1)) {
      throw new CheckpointError(
        file,
        `input '${inT.name}' has shape ${fmt(inT.shape)}; an image classifier needs [1, height, width, channels]`,
      );
    }
    const inputShape: [number, number, number] = [inT.shape[3], inT.shape[1], inT.shape[2]];
    const inputBytes = elementCount(inputShape) * 4;
    if (inputBytes > LIMITS.inputBytes) {
      throw new CheckpointError(
        file,
        `input '${inT.name}' ${fmt(inT.shape)} needs ${inputBytes} bytes per image as float32, more than the limit of ${LIMITS.inputBytes}`,
      );
    }

    // Constants: tensors with data, and DEQUANTIZE of such tensors (folded here).
    const folded = new Map<number, FloatConstant>();
    const isConstant = (i: number): boolean =>
      folded.has(i) || (m.tensors[i] !== undefined && m.buffer(m.tensors[i].buffer) !== null);
    const rawOf = (t: TfliteTensor, what: string): Float64Array => {
      const data = m.buffer(t.buffer);
      if (!data) throw new CheckpointError(file, `${what}: tensor ${t.index} ('${t.name}') has no data`);
      const v = rawValues(t, data);
      if (typeof v === "string") throw new CheckpointError(file, `${what}: tensor ${t.index} ('${t.name}') ${v}`);
      return v;
    };
    const floatOf = (i: number, what: string): FloatConstant => {
      const f = folded.get(i);
      if (f) return f;
      const t = tensorAt(i, what);
      const v = dequantize(t, rawOf(t, what));
      if (typeof v === "string") throw new CheckpointError(file, `${what}: tensor ${t.index} ('${t.name}') ${v}`);
      return { data: v, shape: t.shape };
    };
    const intsOf = (i: number, what: string): number[] => Array.from(rawOf(tensorAt(i, what), what));

    // The final softmax (through trailing QUANTIZE/DEQUANTIZE) is left out: forward returns logits.
    const producer = new Map<number, TfliteOperator>();
    for (const op of m.operators) for (const o of op.outputs) producer.set(o, op);
    const stripped = new Set<number>();
    let output = outT.index;
    let softmax: number | null = null;
    for (let p = producer.get(output); p; p = producer.get(output)) {
      const name = opName(p);
      if (name === "QUANTIZE" || name === "DEQUANTIZE") {
        stripped.add(p.index);
        output = p.inputs[0];
        continue;
      }
      if (name === "SOFTMAX" && softmax === null) {
        stripped.add(p.index);
        softmax = softmaxBeta(p.options);
        output = p.inputs[0];
        continue;
      }
      break;
    }
    if (softmax === null) {
      // Nothing to strip but QUANTIZE/DEQUANTIZE: keep the original output.
      stripped.clear();
      output = outT.index;
    }

    const channelsOf = new Map<number, number>([[inT.index, inT.shape[3]]]);
    const channels = (i: number): number => channelsOf.get(i) ?? tensorAt(i, "an operator").shape.at(-1) ?? 0;
    for (const op of m.operators) {
      if (stripped.has(op.index)) continue;
      const name = opName(op);
      const where = `operator ${op.index} (${name})`;
      if (op.outputs.length !== 1) {
        throw new CheckpointError(file, `${where} has ${op.outputs.length} outputs; expected one`);
      }
      const out = op.outputs[0];
      tensorAt(out, where);
      op.inputs.forEach((i) => i >= 0 && tensorAt(i, where));
      const arg = (k: number): number => {
        const i = op.inputs[k];
        if (i === undefined || i < 0) throw new CheckpointError(file, `${where} lacks its input ${k}`);
        return i;
      };
      const dynamic = (k: number): number => {
        const i = arg(k);
        if (isConstant(i))
          throw new CheckpointError(file, `${where}: input ${k} is a constant; expected a computed value`);
        return i;
      };
      try {
        let built: OpPlan;
        switch (name) {
          case "CONV_2D":
          case "DEPTHWISE_CONV_2D": {
            const x = dynamic(0);
            const o = name === "CONV_2D" ? conv2dOptions(op.options) : depthwiseOptions(op.options);
            const bias = op.inputs[2] !== undefined && op.inputs[2] >= 0 ? floatOf(op.inputs[2], where) : null;
            const conv = new ConvOp(
              name,
              op.index,
              {
                padding: o.padding,
                stride: [o.strideH, o.strideW],
                dilation: [o.dilationH, o.dilationW],
                activation: o.activation,
              },
              floatOf(arg(1), where),
              bias,
              channels(x),
              o.depthMultiplier,
            );
            built = { op: conv, inputs: [x], output: out };
            break;
          }
          case "AVERAGE_POOL_2D": {
            const o = pool2dOptions(op.options);
            built = {
              op: new AvgPoolOp(op.index, o.padding, [o.filterH, o.filterW], [o.strideH, o.strideW], o.activation),
              inputs: [dynamic(0)],
              output: out,
            };
            break;
          }
          case "ADD": {
            const a = arg(0);
            const b = arg(1);
            const ca = isConstant(a);
            const cb = isConstant(b);
            if (ca && cb) throw new OpBuildError("both inputs are constants");
            const constant = ca ? floatOf(a, where) : cb ? floatOf(b, where) : null;
            built = {
              op: new AddOp(op.index, addActivation(op.options), constant, ca ? 0 : 1),
              inputs: ca ? [b] : cb ? [a] : [a, b],
              output: out,
            };
            break;
          }
          case "MEAN":
            built = {
              op: new MeanOp(op.index, intsOf(arg(1), where), reducerKeepDims(op.options)),
              inputs: [dynamic(0)],
              output: out,
            };
            break;
          case "RESHAPE": {
            const target =
              op.inputs[1] !== undefined && op.inputs[1] >= 0 && isConstant(op.inputs[1])
                ? intsOf(op.inputs[1], where)
                : (reshapeNewShape(op.options) ?? m.tensors[out].shape);
            built = { op: new ReshapeOp(op.index, target), inputs: [dynamic(0)], output: out };
            break;
          }
          case "SOFTMAX":
            built = { op: new SoftmaxOp(op.index, softmaxBeta(op.options)), inputs: [dynamic(0)], output: out };
            break;
          case "PAD": {
            const p = intsOf(arg(1), where);
            if (p.length % 2 !== 0) throw new OpBuildError(`paddings hold ${p.length} values; expected pairs`);
            const pairs: [number, number][] = [];
            for (let k = 0; k < p.length; k += 2) pairs.push([p[k], p[k + 1]]);
            built = { op: new PadOp(op.index, pairs), inputs: [dynamic(0)], output: out };
            break;
          }
          case "QUANTIZE":
          case "DEQUANTIZE": {
            const x = arg(0);
            if (isConstant(x)) {
              // DEQUANTIZE of stored weights (float16 or int8 files): fold into a float constant.
              folded.set(out, floatOf(x, where));
              continue;
            }
            built = { op: new IdentityOp(name, op.index), inputs: [x], output: out };
            break;
          }
          default:
            throw new UnsupportedOpError(file, name, op.index, 0);
        }
        for (const i of built.inputs) {
          if (!this.plan.some((p) => p.output === i) && i !== inT.index) {
            throw new CheckpointError(file, `${where} reads tensor ${i}, which no earlier operator computes`);
          }
        }
        const outShape = m.tensors[out].shape;
        channelsOf.set(out, outShape.at(-1) ?? 0);
        this.registerModule(`op${op.index}`, built.op);
        this.plan.push(built);
      } catch (e) {
        if (e instanceof OpBuildError) throw new CheckpointError(file, `${where}: ${e.message}`, { cause: e });
        throw e;
      }
    }
    if (output !== inT.index && !this.plan.some((p) => p.output === output)) {
      throw new CheckpointError(file, `the output tensor ${output} is computed by no operator`);
    }

    let scaling: { scale: number; offset: number };
    if (options.inputScaling) {
      const s = options.inputScaling;
      scaling = {
        scale: checkNumber(s.scale, "inputScaling.scale"),
        offset: checkNumber(s.offset, "inputScaling.offset"),
      };
    } else {
      scaling = inputScalingOf(inT, file);
    }
    return { input: inT.index, output, softmaxBeta: softmax, inputShape, scaling };
  }

  /**
   * Run the graph on values (NCHW images), returning the output value. Each
   * intermediate handle is freed after its last reader, so that inference on a
   * large batch holds only the live activations (autograd keeps what it needs).
   */
  private runGraph(x: Tensor, check?: (index: number, value: Tensor, op: TfliteOp) => void): Tensor {
    const values = new Map<number, Tensor>([[this.inputIndex, x]]);
    this.plan.forEach((p, step) => {
      const ins = p.inputs.map((i) => values.get(i)!);
      const y = p.op.run(ins);
      check?.(p.output, y, p.op);
      values.set(p.output, y);
      for (const i of p.inputs) {
        if (this.lastUse.get(i) === step && i !== this.inputIndex && i !== this.outputIndex) {
          values.get(i)!.dispose();
          values.delete(i);
        }
      }
    });
    return values.get(this.outputIndex)!;
  }

  /** One run on zeros: checks every computed shape against the file and finds the number of classes. */
  private probe(m: TfliteModel, file: string): number {
    const [c, h, w] = this.inputShape;
    return noGrad(() =>
      tidy(() => {
        const check = (i: number, y: Tensor, op: TfliteOp) => {
          const declared = m.tensors[i].shape;
          if (declared.length === 0) return;
          const ours = y.rank === 4 ? [y.dims[0], y.dims[2], y.dims[3], y.dims[1]] : [...y.dims];
          if (fmt(ours) !== fmt(declared)) {
            throw new CheckpointError(
              file,
              `operator ${op.index} (${op.opName}) computes shape ${fmt(ours)} but the file declares ${fmt(declared)} for tensor ${i} ('${m.tensors[i].name}')`,
            );
          }
        };
        const out = this.runGraph(this.scale(zeros([1, c, h, w])), check);
        if (out.rank !== 2) {
          throw new CheckpointError(
            file,
            `the model output has shape ${fmt(out.dims)}; a classifier needs [N, classes]`,
          );
        }
        return out.dims[1];
      }),
    );
  }

  private scale(x: Tensor): Tensor {
    const { scale, offset } = this.inputScaling;
    if (scale === 1 && offset === 0) return alias(x);
    return x.mul(scale).add(offset);
  }

  private summarise(m: TfliteModel, file: string, scaling: { scale: number; offset: number }): TfliteSummary {
    const opCounts: Record<string, number> = {};
    for (const op of m.operators) {
      const n = m.operatorCodes[op.opcodeIndex].name;
      opCounts[n] = (opCounts[n] ?? 0) + 1;
    }
    const inT = m.tensors[m.inputs[0]];
    const outT = m.tensors[m.outputs[0]];
    return {
      source: file,
      description: m.description,
      schemaVersion: m.version,
      operators: m.operators.length,
      opCounts,
      parameters: this.numParameters(),
      quantized: m.tensors.some((t) => t.quantization !== null && t.type !== "FLOAT32"),
      inputTensor: {
        name: inT.name,
        shape: inT.shape,
        type: inT.type,
        scale: inT.quantization?.scale[0] ?? null,
        zeroPoint: inT.quantization?.zeroPoint[0] ?? null,
      },
      outputTensor: { name: outT.name, shape: outT.shape, type: outT.type },
      inputScaling: scaling,
      endsWithSoftmax: this.endsWithSoftmax,
      numClasses: this.numClasses,
    };
  }

  /** Logits [N, numClasses] (probabilities when built with keepSoftmax) for images [N, C, H, W] in [0, 1]. */
  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor)) fail("a tensor", "x", x);
    const [c, h, w] = this.inputShape;
    if (x.rank !== 4 || x.dims[1] !== c || x.dims[2] !== h || x.dims[3] !== w) {
      throw new ShapeError(`TfliteClassifier: expected images [N, ${c}, ${h}, ${w}] but received ${fmt(x.dims)}`);
    }
    return tidy(() => {
      const y = this.runGraph(this.scale(x));
      return this.outputsLogits ? y : F.softmax(y.mul(this.finalSoftmaxBeta), -1);
    });
  }

  /** What the original model outputs: the softmax of the logits when it ended in a softmax. */
  predictProbabilities(x: Tensor): Tensor {
    return tidy(() => {
      const y = this.forward(x);
      return this.endsWithSoftmax && this.outputsLogits ? F.softmax(y.mul(this.finalSoftmaxBeta), -1) : y;
    });
  }
}

/**
 * How images in [0, 1] become the input tensor's real values. A quantised
 * input holds q = round(255 x) (uint8) or q = round(255 x) - 128 (int8), whose
 * real value is scale * (q - zero_point).
 */
function inputScalingOf(t: TfliteTensor, file: string): { scale: number; offset: number } {
  const q = t.quantization;
  if (t.type === "FLOAT32" || t.type === "FLOAT16") return { scale: 1, offset: 0 };
  if (t.type !== "UINT8" && t.type !== "INT8") {
    throw new CheckpointError(file, `input '${t.name}' has type ${t.type}; expected UINT8, INT8 or FLOAT32`);
  }
  const s = q?.scale[0] ?? 1;
  const z = q?.zeroPoint[0] ?? 0;
  if (q && q.scale.length !== 1) throw new CheckpointError(file, `input '${t.name}' is quantised per channel`);
  const shift = t.type === "INT8" ? 128 : 0;
  return { scale: 255 * s, offset: -(z + shift) * s };
}

/** Build a model from the bytes of a .tflite file. */
export function tfliteModelFromBytes(bytes: Uint8Array, options: TfliteImportOptions = {}): TfliteClassifier {
  if (!(bytes instanceof Uint8Array)) fail("a Uint8Array", "bytes", bytes);
  return new TfliteClassifier(bytes, options);
}

/** Load a .tflite file. */
export function loadTfliteModel(path: string, options: TfliteImportOptions = {}): TfliteClassifier {
  if (typeof path !== "string" || path === "") fail("a path to a .tflite file", "path", path);
  const file = resolve(path);
  const buf = readFileOr(file, (msg, cause) => new CheckpointError(file, msg, { cause }));
  return tfliteModelFromBytes(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), {
    ...options,
    source: options.source ?? file,
  });
}
