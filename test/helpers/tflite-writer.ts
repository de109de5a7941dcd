/**
 * A small TFLite flatbuffer writer for test fixtures, with the npm
 * `flatbuffers` Builder. Field indices follow tensorflow/lite/schema/schema.fbs
 * (written out again here, independently of src/models/tflite/schema.ts; the
 * fixtures are also read by Arm NN's parser in test/fixtures/tflite/make_golden.py,
 * which checks both sides against the real schema).
 */
import { Builder } from "flatbuffers";

export type WType = "FLOAT32" | "INT32" | "UINT8" | "INT8" | "INT64";
const TYPE_CODE: Record<WType, number> = { FLOAT32: 0, INT32: 2, UINT8: 3, INT64: 4, INT8: 9 };

export interface WQuant {
  scale: number[];
  zeroPoint: number[];
  dimension?: number;
}

export interface WTensor {
  name: string;
  shape: number[];
  type: WType;
  /** Constant data (raw little-endian bytes of `type`), or none for computed values. */
  data?: Uint8Array;
  quant?: WQuant;
}

export interface WOp {
  /** BuiltinOperator code (schema.fbs). */
  code: number;
  inputs: number[];
  outputs: number[];
  /** BuiltinOptions union member and a function that writes its table (all scalars). */
  options?: { type: number; fields: [index: number, kind: "i8" | "i32" | "f32" | "bool", value: number][] };
  /** ReshapeOptions.new_shape (the only vector option used). */
  newShape?: number[];
}

export interface WModel {
  tensors: WTensor[];
  inputs: number[];
  outputs: number[];
  ops: WOp[];
  description?: string;
}

function vecI32(b: Builder, v: readonly number[]): number {
  b.startVector(4, v.length, 4);
  for (let i = v.length - 1; i >= 0; i--) b.addInt32(v[i]);
  return b.endVector();
}
function vecF32(b: Builder, v: readonly number[]): number {
  b.startVector(4, v.length, 4);
  for (let i = v.length - 1; i >= 0; i--) b.addFloat32(v[i]);
  return b.endVector();
}
function vecI64(b: Builder, v: readonly number[]): number {
  b.startVector(8, v.length, 8);
  for (let i = v.length - 1; i >= 0; i--) b.addInt64(BigInt(v[i]));
  return b.endVector();
}
function vecU8(b: Builder, v: Uint8Array): number {
  b.startVector(1, v.length, 16);
  for (let i = v.length - 1; i >= 0; i--) b.addInt8(v[i]);
  return b.endVector();
}
function vecOffsets(b: Builder, v: readonly number[]): number {
  b.startVector(4, v.length, 4);
  for (let i = v.length - 1; i >= 0; i--) b.addOffset(v[i]);
  return b.endVector();
}

/** Serialise a model; returns the file's bytes. */
export function writeTflite(m: WModel): Uint8Array {
  const b = new Builder(4096);
  // Buffers: 0 is the empty sentinel; each constant tensor gets its own.
  const bufferData: (Uint8Array | null)[] = [null];
  const tensorBuffer = m.tensors.map((t) => {
    if (!t.data) return 0;
    bufferData.push(t.data);
    return bufferData.length - 1;
  });
  const buffers = bufferData.map((d) => {
    const data = d ? vecU8(b, d) : 0;
    b.startObject(1); // Buffer: data 0
    if (d) b.addFieldOffset(0, data, 0);
    return b.endObject();
  });
  const tensors = m.tensors.map((t, i) => {
    const name = b.createString(t.name);
    const shape = vecI32(b, t.shape);
    let quant = 0;
    if (t.quant) {
      const scale = vecF32(b, t.quant.scale);
      const zp = vecI64(b, t.quant.zeroPoint);
      // QuantizationParameters: min 0, max 1, scale 2, zero_point 3, details_type 4, details 5, quantized_dimension 6
      b.startObject(7);
      b.addFieldOffset(2, scale, 0);
      b.addFieldOffset(3, zp, 0);
      b.addFieldInt32(6, t.quant.dimension ?? 0, 0);
      quant = b.endObject();
    }
    // Tensor: shape 0, type 1, buffer 2, name 3, quantization 4
    b.startObject(5);
    b.addFieldOffset(0, shape, 0);
    b.addFieldInt8(1, TYPE_CODE[t.type], 0);
    b.addFieldInt32(2, tensorBuffer[i], 0);
    b.addFieldOffset(3, name, 0);
    if (quant) b.addFieldOffset(4, quant, 0);
    return b.endObject();
  });
  const codes = [...new Set(m.ops.map((o) => o.code))];
  const opcodes = codes.map((c) => {
    // OperatorCode: deprecated_builtin_code 0 (byte), custom_code 1, version 2, builtin_code 3 (int32)
    b.startObject(4);
    b.addFieldInt8(0, Math.min(c, 127), 0);
    b.addFieldInt32(2, 1, 1);
    b.addFieldInt32(3, c, 0);
    return b.endObject();
  });
  const ops = m.ops.map((o) => {
    const inputs = vecI32(b, o.inputs);
    const outputs = vecI32(b, o.outputs);
    let options = 0;
    if (o.options) {
      const newShape = o.newShape ? vecI32(b, o.newShape) : 0;
      b.startObject(8);
      if (newShape) b.addFieldOffset(0, newShape, 0);
      for (const [idx, kind, value] of o.options.fields) {
        if (kind === "i8" || kind === "bool") b.addFieldInt8(idx, value, null);
        else if (kind === "i32") b.addFieldInt32(idx, value, null);
        else b.addFieldFloat32(idx, value, null);
      }
      options = b.endObject();
    }
    // Operator: opcode_index 0, inputs 1, outputs 2, builtin_options_type 3, builtin_options 4
    b.startObject(5);
    b.addFieldInt32(0, codes.indexOf(o.code), 0);
    b.addFieldOffset(1, inputs, 0);
    b.addFieldOffset(2, outputs, 0);
    if (o.options) {
      b.addFieldInt8(3, o.options.type, 0);
      b.addFieldOffset(4, options, 0);
    }
    return b.endObject();
  });
  const tensorsVec = vecOffsets(b, tensors);
  const inputsVec = vecI32(b, m.inputs);
  const outputsVec = vecI32(b, m.outputs);
  const opsVec = vecOffsets(b, ops);
  const sgName = b.createString("main");
  // SubGraph: tensors 0, inputs 1, outputs 2, operators 3, name 4
  b.startObject(5);
  b.addFieldOffset(0, tensorsVec, 0);
  b.addFieldOffset(1, inputsVec, 0);
  b.addFieldOffset(2, outputsVec, 0);
  b.addFieldOffset(3, opsVec, 0);
  b.addFieldOffset(4, sgName, 0);
  const subgraph = b.endObject();
  const opcodesVec = vecOffsets(b, opcodes);
  const subgraphsVec = vecOffsets(b, [subgraph]);
  const buffersVec = vecOffsets(b, buffers);
  const description = b.createString(m.description ?? "vaeguard test fixture");
  // Model: version 0, operator_codes 1, subgraphs 2, description 3, buffers 4
  b.startObject(5);
  b.addFieldInt32(0, 3, 0);
  b.addFieldOffset(1, opcodesVec, 0);
  b.addFieldOffset(2, subgraphsVec, 0);
  b.addFieldOffset(3, description, 0);
  b.addFieldOffset(4, buffersVec, 0);
  const model = b.endObject();
  b.finish(model, "TFL3");
  return b.asUint8Array().slice();
}

// ---------------------------------------------------------------- raw data helpers

export function f32Bytes(v: readonly number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(v).buffer);
}
export function i32Bytes(v: readonly number[]): Uint8Array {
  return new Uint8Array(Int32Array.from(v).buffer);
}
export function u8Bytes(v: readonly number[]): Uint8Array {
  return Uint8Array.from(v);
}
export function i8Bytes(v: readonly number[]): Uint8Array {
  return new Uint8Array(Int8Array.from(v).buffer);
}
