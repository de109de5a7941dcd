/**
 * The weights of a TF.js model: the manifest's binary shards decoded
 * (float32, int32, float16, uint8/uint16 affine quantization) and looked up
 * by layer, with every byte count checked.
 */
import { CheckpointError } from "../../core/errors.js";
import { LIMITS } from "../../core/limits.js";
import { fmt, isObj, product, type TfjsQuantization } from "./format.js";

export function decodeFloat16(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) out[i] = s * m * 2 ** -24;
    else if (e === 31) out[i] = m === 0 ? s * Infinity : NaN;
    else out[i] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

export interface DecodedWeight {
  name: string;
  shape: number[];
  data: Float32Array;
}

export const QUANT_BYTES: Record<string, number> = { uint8: 1, uint16: 2, float16: 2 };
export const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4 };

/**
 * Decode every weight of the manifest. Within a group the shards are
 * concatenated and the weights laid end to end, as TF.js writes them; the byte
 * counts must agree exactly.
 */
export function decodeWeights(
  manifest: unknown,
  readShard: (path: string) => Uint8Array,
  file: string,
): Map<string, DecodedWeight> {
  const out = new Map<string, DecodedWeight>();
  if (manifest === undefined || manifest === null) return out;
  if (!Array.isArray(manifest)) throw new CheckpointError(file, "weightsManifest is not an array");
  manifest.forEach((group: unknown, gi) => decodeWeightGroup(group, gi, readShard, file, out));
  return out;
}

/** The bytes of one weight group: its shards read and concatenated in order. */
interface GroupBytes {
  data: Uint8Array;
  total: number;
  /** The shard paths, quoted, for messages. */
  shardNames: string;
}

/** Decode the weights of manifest group `gi` into `out`, checking they fill its shards exactly. */
function decodeWeightGroup(
  group: unknown,
  gi: number,
  readShard: (path: string) => Uint8Array,
  file: string,
  out: Map<string, DecodedWeight>,
): void {
  if (!isObj(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
    throw new CheckpointError(file, `weightsManifest[${gi}] needs 'paths' and 'weights' arrays`);
  }
  const { data, total, shardNames } = readGroupShards(group.paths as unknown[], gi, readShard, file);
  let offset = 0;
  for (const [wi, spec] of (group.weights as unknown[]).entries()) {
    checkWeightSpec(spec, gi, wi, file);
    const shape = spec.shape;
    const n = product(shape);
    const bytes = weightByteCount(spec, n, file);
    if (bytes > LIMITS.tensorBytes) {
      throw new CheckpointError(
        file,
        `weight '${spec.name}' ${fmt(shape)} declares ${bytes} bytes, more than the limit of ${LIMITS.tensorBytes} for one tensor`,
      );
    }
    if (offset + bytes > total) {
      throw new CheckpointError(
        file,
        `weight '${spec.name}' ${fmt(shape)} needs bytes ${offset}..${offset + bytes} of weight group ${gi}, ` +
          `but its shards (${shardNames}) hold only ${total} bytes`,
      );
    }
    // Copy into an aligned buffer: weights need not start on a 4-byte boundary.
    const raw = new Uint8Array(bytes);
    raw.set(data.subarray(offset, offset + bytes));
    offset += bytes;
    const values = decodeWeightValues(raw, spec, n);
    // Optimizer state still takes up bytes in the shards, so it is skipped only after the offset moves.
    if (spec.group === "optimizer") continue;
    const name = spec.name.replace(/:0$/, "");
    if (out.has(name)) throw new CheckpointError(file, `weight '${name}' appears twice in the manifest`);
    out.set(name, { name, shape, data: values });
  }
  if (offset !== total) {
    throw new CheckpointError(
      file,
      `weight group ${gi}: the manifest describes ${offset} bytes but its shards (${shardNames}) hold ${total} bytes`,
    );
  }
}

/** Read the shards of group `gi` and concatenate them. */
function readGroupShards(
  paths: unknown[],
  gi: number,
  readShard: (path: string) => Uint8Array,
  file: string,
): GroupBytes {
  const parts: Uint8Array[] = [];
  for (const p of paths) {
    if (typeof p !== "string") throw new CheckpointError(file, `weightsManifest[${gi}].paths holds a non-string`);
    parts.push(readShard(p));
  }
  const total = parts.reduce((a, b) => a + b.byteLength, 0);
  const data = Buffer.concat(parts, total);
  const shardNames = (paths as string[]).map((p) => `'${p}'`).join(", ");
  return { data, total, shardNames };
}

/** A weight spec with the fields every weight needs; quantization and group are checked later, if present. */
type CheckedWeightSpec = Record<string, unknown> & { name: string; shape: number[]; dtype: string };

function checkWeightSpec(spec: unknown, gi: number, wi: number, file: string): asserts spec is CheckedWeightSpec {
  if (
    !isObj(spec) ||
    typeof spec.name !== "string" ||
    !Array.isArray(spec.shape) ||
    !spec.shape.every((d) => Number.isInteger(d) && d >= 0) ||
    typeof spec.dtype !== "string"
  ) {
    throw new CheckpointError(file, `weightsManifest[${gi}].weights[${wi}] needs a name, a shape and a dtype`);
  }
}

/** Bytes the weight takes in its shards: set by the quantization dtype when quantized, else by the dtype. */
function weightByteCount(spec: CheckedWeightSpec, n: number, file: string): number {
  const q = spec.quantization;
  if (q !== undefined && q !== null) {
    if (!isObj(q) || typeof q.dtype !== "string" || !(q.dtype in QUANT_BYTES)) {
      throw new CheckpointError(
        file,
        `weight '${spec.name}' has unsupported quantization ${JSON.stringify(q)} (expected dtype uint8, uint16 or float16)`,
      );
    }
    if (q.dtype !== "float16" && (typeof q.scale !== "number" || typeof q.min !== "number")) {
      throw new CheckpointError(file, `weight '${spec.name}': ${q.dtype} quantization needs numbers 'scale' and 'min'`);
    }
    return n * QUANT_BYTES[q.dtype];
  }
  if (!(spec.dtype in DTYPE_BYTES)) {
    throw new CheckpointError(
      file,
      `weight '${spec.name}' has unsupported dtype '${spec.dtype}' (expected float32 or int32)`,
    );
  }
  return n * DTYPE_BYTES[spec.dtype];
}

/** Turn the weight's aligned bytes into float32 values (weightByteCount has checked the dtypes). */
function decodeWeightValues(raw: Uint8Array, spec: CheckedWeightSpec, n: number): Float32Array {
  const q = spec.quantization;
  if (q !== undefined && q !== null) {
    const qq = q as unknown as TfjsQuantization;
    if (qq.dtype === "float16") return decodeFloat16(new Uint16Array(raw.buffer));
    const ints = qq.dtype === "uint8" ? raw : new Uint16Array(raw.buffer);
    const values = new Float32Array(n);
    const scale = qq.scale!;
    const min = qq.min!;
    for (let i = 0; i < n; i++) values[i] = ints[i] * scale + min;
    return values;
  }
  if (spec.dtype === "int32") return Float32Array.from(new Int32Array(raw.buffer));
  return new Float32Array(raw.buffer);
}

export class WeightStore {
  readonly used = new Set<string>();
  constructor(
    readonly all: Map<string, DecodedWeight>,
    readonly file: string,
  ) {}

  /**
   * The weight `kind` of layer `layer` inside nested models `path`: tried as
   * `outer/inner/layer/kind`, then with fewer model prefixes, then as the one
   * manifest name ending in `/layer/kind`.
   */
  find(path: readonly string[], layer: string, kind: string): DecodedWeight | undefined {
    for (let i = 0; i <= path.length; i++) {
      const name = [...path.slice(i), layer, kind].join("/");
      const w = this.all.get(name);
      if (w && !this.used.has(name)) {
        this.used.add(name);
        return w;
      }
    }
    const suffix = `/${layer}/${kind}`;
    const hits = [...this.all.keys()].filter((k) => k.endsWith(suffix) && !this.used.has(k));
    if (hits.length === 1) {
      this.used.add(hits[0]);
      return this.all.get(hits[0]);
    }
    return undefined;
  }

  unused(): string[] {
    return [...this.all.keys()].filter((k) => !this.used.has(k));
  }
}
