/**
 * Constant tensors of a TFLite file as float values: raw little-endian
 * decoding by tensor type, then TFLite's affine dequantisation
 * real = scale * (q - zero_point), per tensor or per channel along the
 * tensor's quantized_dimension (conv filters: 0, depthwise filters: 3).
 */
import type { TensorTypeName, TfliteTensor } from "./schema.js";

const ELEMENT_BYTES: Partial<Record<TensorTypeName, number>> = {
  FLOAT32: 4,
  FLOAT16: 2,
  INT32: 4,
  UINT8: 1,
  INT64: 8,
  INT16: 2,
  INT8: 1,
};

/** Element count of a TFLite shape (a scalar has shape [] and one element). */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function elementBytes(type: TensorTypeName): number | undefined {
  return ELEMENT_BYTES[type];
}

function float16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * The stored values of a constant tensor, undequantised. Returns a message
 * instead of values when the buffer's length does not fit the shape.
 */
export function rawValues(t: TfliteTensor, data: Uint8Array): Float64Array | string {
  const size = ELEMENT_BYTES[t.type];
  if (size === undefined) return `has type ${t.type}, which this importer cannot read`;
  const n = elementCount(t.shape);
  if (data.byteLength !== n * size) {
    return `holds ${data.byteLength} bytes but its shape [${t.shape.join(", ")}] of ${t.type} needs ${n * size}`;
  }
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    switch (t.type) {
      case "FLOAT32":
        out[i] = dv.getFloat32(4 * i, true);
        break;
      case "FLOAT16":
        out[i] = float16(dv.getUint16(2 * i, true));
        break;
      case "INT32":
        out[i] = dv.getInt32(4 * i, true);
        break;
      case "UINT8":
        out[i] = dv.getUint8(i);
        break;
      case "INT8":
        out[i] = dv.getInt8(i);
        break;
      case "INT16":
        out[i] = dv.getInt16(2 * i, true);
        break;
      case "INT64":
        out[i] = Number(dv.getBigInt64(8 * i, true));
        break;
    }
  }
  return out;
}

/**
 * Float values of a constant tensor: integer types with quantisation
 * parameters are dequantised (per channel when there are several scales),
 * float types are returned as they are. Returns a message for parameters
 * that do not fit the tensor.
 */
export function dequantize(t: TfliteTensor, raw: Float64Array): Float32Array | string {
  const q = t.quantization;
  const out = new Float32Array(raw.length);
  if (t.type === "FLOAT32" || t.type === "FLOAT16" || !q) {
    out.set(raw);
    return out;
  }
  const { scale, zeroPoint } = q;
  const channels = scale.length;
  if (zeroPoint.length !== 0 && zeroPoint.length !== channels) {
    return `has ${channels} quantisation scales but ${zeroPoint.length} zero points`;
  }
  if (!scale.every((s) => Number.isFinite(s))) return "has a quantisation scale that is not a finite number";
  const zp = (c: number) => (zeroPoint.length === 0 ? 0 : zeroPoint[c]);
  if (channels === 1) {
    const s = scale[0];
    const z = zp(0);
    for (let i = 0; i < raw.length; i++) out[i] = s * (raw[i] - z);
    return out;
  }
  const axis = q.quantizedDimension;
  if (axis < 0 || axis >= t.shape.length || t.shape[axis] !== channels) {
    return `has ${channels} per-channel scales along dimension ${axis}, which does not fit its shape [${t.shape.join(", ")}]`;
  }
  // Element i's channel: (i / inner) % channels, with inner = product of the dimensions after the axis.
  const inner = elementCount(t.shape.slice(axis + 1));
  for (let i = 0; i < raw.length; i++) {
    const c = Math.floor(i / inner) % channels;
    out[i] = scale[c] * (raw[i] - zp(c));
  }
  return out;
}
