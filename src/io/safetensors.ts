/**
 * The safetensors format (https://github.com/huggingface/safetensors), read and
 * written in TypeScript so checkpoints interoperate with PyTorch's
 * `safetensors.torch.save_file` / `load_file`.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {k: v}}`,
 * then the raw little-endian tensor bytes; offsets count from the first byte
 * after the header.
 *
 * Files are untrusted input: every size is checked against the bytes actually
 * present before anything is allocated, and every problem becomes a
 * CheckpointError naming the file.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { endianness } from "node:os";
import { binding } from "../binding.js";
import { ArgumentError, CheckpointError, VaeguardError } from "../core/errors.js";
import { tidy } from "../core/engine.js";
import { tensor, wrap, Tensor, type DType } from "../core/tensor.js";
import { writeFileAtomic } from "./atomic.js";
import { readFileOr } from "./read-file.js";

export const SAFETENSORS_DTYPES = ["BOOL", "U8", "I8", "I16", "F16", "BF16", "I32", "F32", "F64", "I64"] as const;
export type SafetensorsDtype = (typeof SAFETENSORS_DTYPES)[number];

/** A tensor as bytes: what the format stores, independent of libtorch. */
export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Row-major little-endian element bytes. */
  data: Uint8Array;
}

export interface DecodedSafetensors {
  /** In file (offset) order. The data are views into the decoded buffer, not copies. */
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

/** The same limit as the reference implementation: a larger header is a damaged or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = "__metadata__";

const ELEMENT_BYTES: Record<SafetensorsDtype, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  I16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
};

/**
 * Rank of each dtype in the reference library's `Dtype` enum (increasing
 * alignment). Its writer orders tensors by descending rank, then by name, so
 * the widest types come first and every tensor's data stays aligned; we do the
 * same so our files are byte-identical to PyTorch's.
 */
const ALIGNMENT_RANK: Record<SafetensorsDtype, number> = Object.fromEntries(
  SAFETENSORS_DTYPES.map((d, i) => [d, i]),
) as Record<SafetensorsDtype, number>;

const TO_TORCH: Record<SafetensorsDtype, DType> = {
  BOOL: "bool",
  U8: "uint8",
  I8: "int8",
  I16: "int16",
  F16: "float16",
  BF16: "bfloat16",
  I32: "int32",
  F32: "float32",
  F64: "float64",
  I64: "int64",
};

const FROM_TORCH = Object.fromEntries(Object.entries(TO_TORCH).map(([k, v]) => [v, k])) as Record<
  DType,
  SafetensorsDtype
>;

/** Compare two strings by UTF-8 bytes, as Rust's `str::cmp` does (differs from `<` outside the BMP). */
function compareUtf8(a: string, b: string): number {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return Buffer.compare(x, y);
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkEndianness(): void {
  // Typed arrays use the host byte order; the format is little-endian.
  if (endianness() !== "LE") throw new VaeguardError("safetensors: big-endian hosts are not supported");
}

// ---------------------------------------------------------------- encoding

function entriesOf<V>(m: Record<string, V> | Map<string, V>): [string, V][] {
  return m instanceof Map ? [...m.entries()] : Object.entries(m);
}

function checkRaw(name: string, raw: RawTensor): void {
  if (name === METADATA_KEY)
    throw new ArgumentError(`safetensors: "${METADATA_KEY}" is reserved and cannot name a tensor`);
  if (!(SAFETENSORS_DTYPES as readonly string[]).includes(raw.dtype)) {
    throw new ArgumentError(
      `Expected one of ${SAFETENSORS_DTYPES.join(", ")} for the dtype of tensor "${name}" but received ${String(raw.dtype)}`,
    );
  }
  if (!Array.isArray(raw.shape) || !raw.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ArgumentError(
      `Expected array of non-negative integers for the shape of tensor "${name}" but received ${String(raw.shape)}`,
    );
  }
  const need = elementCount(raw.shape) * ELEMENT_BYTES[raw.dtype];
  if (!(raw.data instanceof Uint8Array) || raw.data.byteLength !== need) {
    throw new ArgumentError(
      `safetensors: tensor "${name}" (${raw.dtype} [${raw.shape.join(", ")}]) needs ${need} bytes but its data has ${raw.data?.byteLength}`,
    );
  }
}

/** The file as parts (length, header, each tensor's data) so large checkpoints are written without one big copy. */
function encodeParts(
  tensors: Record<string, RawTensor> | Map<string, RawTensor>,
  metadata?: Record<string, string>,
): Uint8Array[] {
  const entries = entriesOf(tensors);
  for (const [name, raw] of entries) checkRaw(name, raw);
  entries.sort(([an, a], [bn, b]) => ALIGNMENT_RANK[b.dtype] - ALIGNMENT_RANK[a.dtype] || compareUtf8(an, bn));

  // Build the JSON by hand: the order of keys is part of the byte-for-byte format.
  const fields: string[] = [];
  if (metadata !== undefined) {
    const meta = Object.entries(metadata);
    for (const [k, v] of meta) {
      if (typeof v !== "string")
        throw new ArgumentError(`Expected string for metadata "${k}" but received ${typeof v}`);
    }
    // The reference writer emits a hash map in arbitrary order; sorted is reproducible.
    meta.sort(([a], [b]) => compareUtf8(a, b));
    const body = meta.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",");
    fields.push(`${JSON.stringify(METADATA_KEY)}:{${body}}`);
  }
  let offset = 0;
  for (const [name, raw] of entries) {
    const end = offset + raw.data.byteLength;
    fields.push(
      `${JSON.stringify(name)}:{"dtype":${JSON.stringify(raw.dtype)},"shape":[${raw.shape.join(",")}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = Buffer.from(`{${fields.join(",")}}`, "utf8");
  // Pad with spaces to a multiple of 8 so the data that follows starts aligned.
  const padded = Buffer.alloc(Math.ceil(json.byteLength / 8) * 8, 0x20);
  json.copy(padded);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(padded.byteLength));
  return [length, padded, ...entries.map(([, raw]) => raw.data)];
}

/** Serialise raw tensors (and optional string metadata) to safetensors bytes. */
export function encodeSafetensors(
  tensors: Record<string, RawTensor> | Map<string, RawTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  return Buffer.concat(encodeParts(tensors, metadata));
}

// ---------------------------------------------------------------- decoding

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 60)}...` : s;
}

interface HeaderEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

function parseEntry(source: string, name: string, info: unknown): HeaderEntry {
  const bad = (what: string) => new CheckpointError(source, `tensor "${name}": ${what}`);
  if (!isPlainObject(info))
    throw bad(`expected an object with dtype, shape and data_offsets but found ${describe(info)}`);
  const { dtype, shape, data_offsets: offsets } = info;
  if (typeof dtype !== "string" || !(SAFETENSORS_DTYPES as readonly string[]).includes(dtype)) {
    throw bad(`unsupported dtype ${describe(dtype)} (supported: ${SAFETENSORS_DTYPES.join(", ")})`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`shape must be an array of non-negative integers but is ${describe(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[1] < offsets[0]
  ) {
    throw bad(`data_offsets must be [begin, end] with 0 <= begin <= end but is ${describe(offsets)}`);
  }
  return { name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin: offsets[0], end: offsets[1] };
}

/**
 * Parse safetensors bytes. `source` names the file in error messages. The
 * returned tensors' data are views into `bytes`.
 */
export function decodeSafetensors(bytes: Uint8Array, source = "<bytes>"): DecodedSafetensors {
  const { header, dataStart } = readHeader(bytes, source);
  const { metadata, entries } = splitHeader(header, source);
  const tensors = sliceTensors(entries, bytes, dataStart, source);
  return { tensors, metadata };
}

/** Throw a CheckpointError naming `source`; typed `never` so callers can `return` it. */
function failIn(source: string, message: string): never {
  throw new CheckpointError(source, message);
}

/** The header JSON object, and where the data bytes start, after checking the header length against the file. */
function readHeader(bytes: Uint8Array, source: string): { header: Record<string, unknown>; dataStart: number } {
  const fail = (message: string): never => failIn(source, message);
  if (bytes.byteLength < 8) {
    fail(`not a safetensors file: ${bytes.byteLength} bytes is shorter than the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Compared as a BigInt first: a u64 beyond 2^53 would lose precision as a number.
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    fail(
      `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit; the file is damaged or not safetensors`,
    );
  }
  const n = Number(headerLength);
  if (8 + n > bytes.byteLength) {
    fail(
      `header length ${n} runs past the end of the ${bytes.byteLength}-byte file; the file is truncated or not safetensors`,
    );
  }

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    return fail("header is not valid UTF-8");
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header)) return fail(`header must be a JSON object but is ${describe(header)}`);
  return { header, dataStart: 8 + n };
}

/** Separate the header's metadata from its tensor entries, checking each entry. */
function splitHeader(
  header: Record<string, unknown>,
  source: string,
): { metadata: Record<string, string>; entries: HeaderEntry[] } {
  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [key, value] of Object.entries(header)) {
    if (key === METADATA_KEY) {
      if (!isPlainObject(value) || !Object.values(value).every((v) => typeof v === "string")) {
        failIn(source, `${METADATA_KEY} must map strings to strings but is ${describe(value)}`);
      }
      // defineProperty, not assignment: a key such as "__proto__" must stay data.
      for (const [k, v] of Object.entries(value as Record<string, string>)) {
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
    } else {
      entries.push(parseEntry(source, key, value));
    }
  }
  return { metadata, entries };
}

/** Each entry's bytes as a view into `bytes`; sorts `entries` by offset. */
function sliceTensors(
  entries: HeaderEntry[],
  bytes: Uint8Array,
  dataStart: number,
  source: string,
): Map<string, RawTensor> {
  const fail = (message: string): never => failIn(source, message);
  // Like the reference reader: tensors must tile the data buffer exactly, in offset order.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataLength = bytes.byteLength - dataStart;
  let expected = 0;
  const tensors = new Map<string, RawTensor>();
  for (const e of entries) {
    if (e.begin !== expected) {
      fail(
        e.begin < expected
          ? `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] overlap the previous tensor, which ends at ${expected}`
          : `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] leave a gap after byte ${expected}`,
      );
    }
    if (e.end > dataLength) {
      fail(
        `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] run past the ${dataLength} data bytes in the file (truncated?)`,
      );
    }
    const count = elementCount(e.shape);
    const need = count * ELEMENT_BYTES[e.dtype];
    if (!Number.isSafeInteger(need)) fail(`tensor "${e.name}": shape [${e.shape.join(", ")}] is too large to be real`);
    if (need !== e.end - e.begin) {
      fail(
        `tensor "${e.name}": ${e.dtype} [${e.shape.join(", ")}] needs ${need} bytes but data_offsets [${e.begin}, ${e.end}] hold ${e.end - e.begin}`,
      );
    }
    tensors.set(e.name, {
      dtype: e.dtype,
      shape: e.shape,
      data: bytes.subarray(dataStart + e.begin, dataStart + e.end),
    });
    expected = e.end;
  }
  if (expected !== dataLength) {
    fail(
      `${dataLength - expected} bytes after the last tensor are not described by the header (trailing garbage or a damaged header)`,
    );
  }
  return tensors;
}

// ---------------------------------------------------------------- tensors

/** Copy a tensor's data out as safetensors bytes (from any device). */
export function tensorToRaw(t: Tensor): RawTensor {
  checkEndianness();
  const dtype = FROM_TORCH[t.dtype];
  if (dtype === undefined) throw new ArgumentError(`safetensors: tensors of dtype ${t.dtype} cannot be saved`);
  const arr = t.dataSync();
  return { dtype, shape: t.shape, data: new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength) };
}

/** Make a CPU tensor from safetensors bytes (the bytes are copied). */
export function rawToTensor(raw: RawTensor): Tensor {
  checkEndianness();
  const dtype = TO_TORCH[raw.dtype];
  // A fresh, aligned copy: typed arrays of wide types need aligned offsets. (Not
  // raw.data.slice(): on a Node Buffer that is a view of the whole file.)
  const buf = new Uint8Array(raw.data).buffer;
  switch (dtype) {
    case "float16":
    case "bfloat16":
      // No JS typed array holds half floats; hand the bits to libtorch as they are.
      return wrap(binding.fromBuffer(new Uint8Array(buf), raw.shape, dtype));
    case "bool":
      // Through uint8 so a stray byte other than 0/1 still becomes a valid bool.
      return tidy(() => tensor(new Uint8Array(buf), raw.shape).to("bool"));
    case "float32":
      return tensor(new Float32Array(buf), raw.shape);
    case "float64":
      return tensor(new Float64Array(buf), raw.shape);
    case "int64":
      return tensor(new BigInt64Array(buf), raw.shape);
    case "int32":
      return tensor(new Int32Array(buf), raw.shape);
    case "int16":
      return tensor(new Int16Array(buf), raw.shape);
    case "int8":
      return tensor(new Int8Array(buf), raw.shape);
    case "uint8":
      return tensor(new Uint8Array(buf), raw.shape);
  }
}

/**
 * Save tensors (with optional string metadata) to a safetensors file,
 * atomically: a crash never leaves a half-written checkpoint behind.
 */
export function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  const raw = new Map<string, RawTensor>();
  for (const [name, t] of entriesOf(tensors)) {
    if (!(t instanceof Tensor)) throw new ArgumentError(`Expected a tensor for "${name}" but received ${describe(t)}`);
    raw.set(name, tensorToRaw(t));
  }
  writeFileAtomic(path, encodeParts(raw, metadata));
}

/**
 * The metadata of a safetensors file, reading only its header: what a
 * checkpoint says about its training without loading its tensors.
 */
export function readSafetensorsMetadata(path: string): Record<string, string> {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new CheckpointError(path, `cannot read the file (${(e as NodeJS.ErrnoException).code ?? e})`, { cause: e });
  }
  try {
    const head = Buffer.alloc(8);
    const got = readSync(fd, head, 0, 8, 0);
    const length = got === 8 ? head.readBigUInt64LE(0) : 0n;
    // A length past the limit is refused by readHeader from the first 8 bytes alone.
    const bytes = Buffer.alloc(got < 8 || length > BigInt(MAX_HEADER_BYTES) ? got : 8 + Number(length));
    const read = readSync(fd, bytes, 0, bytes.length, 0);
    const { header } = readHeader(bytes.subarray(0, read), path);
    return splitHeader(header, path).metadata;
  } finally {
    closeSync(fd);
  }
}

/** Load every tensor of a safetensors file onto the CPU. The caller owns (and disposes) the tensors. */
export function loadSafetensors(path: string): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const bytes = readFileOr(path, (message, cause) => new CheckpointError(path, message, { cause }));
  const decoded = decodeSafetensors(bytes, path);
  const tensors = new Map<string, Tensor>();
  try {
    for (const [name, raw] of decoded.tensors) tensors.set(name, rawToTensor(raw));
  } catch (e) {
    // Do not leak the tensors made before the failure.
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return { tensors, metadata: decoded.metadata };
}
