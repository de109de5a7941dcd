/**
 * The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/):
 * magic bytes 0x00 0x00 <type> <ndims>, then ndims big-endian uint32 sizes,
 * then the elements, big-endian, row-major. Files may be gzipped, as they are
 * distributed; gzip is recognised by its own magic (1f 8b), not by the name.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import { ArgumentError, DataError } from "../core/errors.js";
import { writeFileAtomic } from "./atomic.js";
import { readFileOr } from "./read-file.js";

/** Element types, named like tensor dtypes so an IdxArray converts to a tensor directly. */
export type IdxType = "uint8" | "int8" | "int16" | "int32" | "float32" | "float64";
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  type: IdxType;
  shape: number[];
  /** Row-major elements in host byte order. */
  data: IdxData;
}

interface TypeInfo {
  code: number;
  bytes: number;
  make: (n: number) => IdxData;
  read: (v: DataView, offset: number) => number;
  write: (v: DataView, offset: number, x: number) => void;
}

const TYPES: Record<IdxType, TypeInfo> = {
  uint8: {
    code: 0x08,
    bytes: 1,
    make: (n) => new Uint8Array(n),
    read: (v, o) => v.getUint8(o),
    write: (v, o, x) => v.setUint8(o, x),
  },
  int8: {
    code: 0x09,
    bytes: 1,
    make: (n) => new Int8Array(n),
    read: (v, o) => v.getInt8(o),
    write: (v, o, x) => v.setInt8(o, x),
  },
  int16: {
    code: 0x0b,
    bytes: 2,
    make: (n) => new Int16Array(n),
    read: (v, o) => v.getInt16(o),
    write: (v, o, x) => v.setInt16(o, x),
  },
  int32: {
    code: 0x0c,
    bytes: 4,
    make: (n) => new Int32Array(n),
    read: (v, o) => v.getInt32(o),
    write: (v, o, x) => v.setInt32(o, x),
  },
  float32: {
    code: 0x0d,
    bytes: 4,
    make: (n) => new Float32Array(n),
    read: (v, o) => v.getFloat32(o),
    write: (v, o, x) => v.setFloat32(o, x),
  },
  float64: {
    code: 0x0e,
    bytes: 8,
    make: (n) => new Float64Array(n),
    read: (v, o) => v.getFloat64(o),
    write: (v, o, x) => v.setFloat64(o, x),
  },
};

const TYPE_OF_CODE = new Map<number, IdxType>(Object.entries(TYPES).map(([name, t]) => [t.code, name as IdxType]));

const REDOWNLOAD = "download the file again";

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** Parse IDX bytes, gzipped or not. `source` names the file in error messages. */
export function decodeIdx(bytes: Uint8Array, source = "<bytes>"): IdxArray {
  const fail = (message: string): never => {
    throw new DataError(source, message);
  };
  if (isGzip(bytes)) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      return fail(`is a damaged gzip file (${(e as Error).message}); ${REDOWNLOAD}`);
    }
  }
  if (bytes.byteLength < 4) fail(`is ${bytes.byteLength} bytes long, too short for an IDX header; ${REDOWNLOAD}`);
  const type = TYPE_OF_CODE.get(bytes[2]);
  if (bytes[0] !== 0 || bytes[1] !== 0 || type === undefined) {
    fail(
      `is not an IDX file: it starts with ${hex(bytes.subarray(0, 4))} but IDX files start with 00 00, a type byte ` +
        `(08, 09, 0b, 0c, 0d or 0e) and the number of dimensions; check that the path points at an IDX file`,
    );
  }
  const info = TYPES[type!];
  const ndims = bytes[3];
  if (ndims === 0) fail(`IDX header declares 0 dimensions, so it holds no array; ${REDOWNLOAD}`);
  const dataStart = 4 + 4 * ndims;
  if (bytes.byteLength < dataStart) {
    fail(
      `is truncated inside its header (${ndims} dimensions need ${dataStart} header bytes, the file has ${bytes.byteLength}); ${REDOWNLOAD}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  for (let i = 0; i < ndims; i++) shape.push(view.getUint32(4 + 4 * i));
  const count = shape.reduce((a, b) => a * b, 1);
  const need = count * info.bytes;
  const have = bytes.byteLength - dataStart;
  const dims = shape.join("x");
  if (have < need)
    fail(
      `is truncated: shape ${dims} of ${type} needs ${need} data bytes but only ${have} follow the header; ${REDOWNLOAD}`,
    );
  if (have > need) {
    fail(
      `has ${have - need} unexpected bytes after the ${need} data bytes of shape ${dims}; the file is damaged or its header is wrong`,
    );
  }

  // Byte arrays need no swapping; wider types are big-endian on disk.
  let data: IdxData;
  if (info.bytes === 1) {
    // new Uint8Array(...) copies; Buffer#slice would only make a view of the whole file.
    const copy = new Uint8Array(bytes.subarray(dataStart, dataStart + need));
    data = type === "int8" ? new Int8Array(copy.buffer) : copy;
  } else {
    data = info.make(count);
    for (let i = 0; i < count; i++) data[i] = info.read(view, dataStart + i * info.bytes);
  }
  return { type: type!, shape, data };
}

/** Serialise an array to IDX bytes (gzipped when asked). */
export function encodeIdx(array: IdxArray, options: { gzip?: boolean } = {}): Uint8Array {
  const info = TYPES[array.type];
  if (info === undefined)
    throw new ArgumentError(
      `Expected one of ${Object.keys(TYPES).join(", ")} for type but received ${String(array.type)}`,
    );
  const { shape, data } = array;
  if (
    !Array.isArray(shape) ||
    shape.length < 1 ||
    shape.length > 255 ||
    !shape.every((d) => Number.isInteger(d) && d >= 0 && d < 2 ** 32)
  ) {
    throw new ArgumentError(
      `Expected 1 to 255 dimensions between 0 and 2^32-1 for shape but received [${String(shape)}]`,
    );
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count)
    throw new ArgumentError(`IDX: shape [${shape.join(", ")}] needs ${count} elements but data has ${data.length}`);
  const dataStart = 4 + 4 * shape.length;
  const out = new Uint8Array(dataStart + count * info.bytes);
  const view = new DataView(out.buffer);
  out[2] = info.code;
  out[3] = shape.length;
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  for (let i = 0; i < count; i++) info.write(view, dataStart + i * info.bytes, data[i]);
  return options.gzip ? gzipSync(out) : out;
}

/** Read an IDX file (plain or gzipped). */
export function readIdx(path: string): IdxArray {
  return decodeIdx(
    readFileOr(path, (message, cause) => new DataError(path, message, { cause })),
    path,
  );
}

/** Write an IDX file atomically (gzipped when asked). */
export function writeIdx(path: string, array: IdxArray, options: { gzip?: boolean } = {}): void {
  writeFileAtomic(path, encodeIdx(array, options));
}
