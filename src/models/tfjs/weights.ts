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
  manifest.forEach((group: unknown, gi) => {
    if (!isObj(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new CheckpointError(file, `weightsManifest[${gi}] needs 'paths' and 'weights' arrays`);
    }
    const paths = group.paths as unknown[];
    const parts: Uint8Array[] = [];
    for (const p of paths) {
      if (typeof p !== "string") throw new CheckpointError(file, `weightsManifest[${gi}].paths holds a non-string`);
      parts.push(readShard(p));
    }
    const total = parts.reduce((a, b) => a + b.byteLength, 0);
    const data = Buffer.concat(parts, total);
    const shardNames = (paths as string[]).map((p) => `'${p}'`).join(", ");
    let offset = 0;
    for (const [wi, spec] of (group.weights as unknown[]).entries()) {
      if (
        !isObj(spec) ||
        typeof spec.name !== "string" ||
        !Array.isArray(spec.shape) ||
        !spec.shape.every((d) => Number.isInteger(d) && d >= 0) ||
        typeof spec.dtype !== "string"
      ) {
        throw new CheckpointError(file, `weightsManifest[${gi}].weights[${wi}] needs a name, a shape and a dtype`);
      }
      const shape = spec.shape as number[];
      const n = product(shape);
      const q = spec.quantization;
      let bytes: number;
      if (q !== undefined && q !== null) {
        if (!isObj(q) || typeof q.dtype !== "string" || !(q.dtype in QUANT_BYTES)) {
          throw new CheckpointError(
            file,
            `weight '${spec.name}' has unsupported quantization ${JSON.stringify(q)} (expected dtype uint8, uint16 or float16)`,
          );
        }
        if (q.dtype !== "float16" && (typeof q.scale !== "number" || typeof q.min !== "number")) {
          throw new CheckpointError(
            file,
            `weight '${spec.name}': ${q.dtype} quantization needs numbers 'scale' and 'min'`,
          );
        }
        bytes = n * QUANT_BYTES[q.dtype];
      } else {
        if (!(spec.dtype in DTYPE_BYTES)) {
          throw new CheckpointError(
            file,
            `weight '${spec.name}' has unsupported dtype '${spec.dtype}' (expected float32 or int32)`,
          );
        }
        bytes = n * DTYPE_BYTES[spec.dtype];
      }
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
      let values: Float32Array;
      if (q !== undefined && q !== null) {
        const qq = q as unknown as TfjsQuantization;
        if (qq.dtype === "float16") {
          values = decodeFloat16(new Uint16Array(raw.buffer));
        } else {
          const ints = qq.dtype === "uint8" ? raw : new Uint16Array(raw.buffer);
          values = new Float32Array(n);
          const scale = qq.scale!;
          const min = qq.min!;
          for (let i = 0; i < n; i++) values[i] = ints[i] * scale + min;
        }
      } else if (spec.dtype === "int32") {
        values = Float32Array.from(new Int32Array(raw.buffer));
      } else {
        values = new Float32Array(raw.buffer);
      }
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
  });
  return out;
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
