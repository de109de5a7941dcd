/**
 * A fast path for the small, plain PNGs a purification service mostly sees
 * (MNIST digits: 28x28, 8-bit grayscale), beside sharp. sharp (libvips) costs
 * about 0.5 ms of CPU per image whatever its size, several times the VAE's
 * own cost per image; here a 28x28 PNG is read or written in a few
 * microseconds with Node's zlib.
 *
 * The decoder is deliberately narrow: 8-bit grayscale or RGB, not
 * interlaced, only chunks that do not change the pixels (no palette, no
 * transparency, no colour profile, gamma or orientation), every CRC right,
 * the pixel count within the limit before anything is inflated, and the
 * inflated size exactly what the header says. Anything else returns
 * undefined and goes to sharp as before, so hostile, damaged and unusual
 * files meet the same checks and messages as ever.
 */
import { crc32, inflateSync, deflateSync, constants } from "node:zlib";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Ancillary chunks that leave the pixels as they are (text, time, resolution, sRGB intent). */
const HARMLESS = new Set(["pHYs", "tEXt", "zTXt", "iTXt", "tIME", "sRGB"]);

export interface RawImage {
  width: number;
  height: number;
  channels: 1 | 3;
  /** HWC bytes. */
  data: Uint8Array;
}

/** Decode a plain 8-bit grayscale or RGB PNG with at most `maxPixels` pixels; undefined for anything else. */
export function decodePlainPng(b: Uint8Array, maxPixels: number): RawImage | undefined {
  if (b.length < 8 + 25 + 12 || !SIGNATURE.equals(b.subarray(0, 8))) return undefined;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels: 1 | 3 = 1;
  const idat: Uint8Array[] = [];
  let ended = false;
  let first = true;
  while (pos + 12 <= b.length) {
    const len = view.getUint32(pos);
    if (len > b.length - pos - 12) return undefined;
    const type = String.fromCharCode(b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7]);
    const data = b.subarray(pos + 8, pos + 8 + len);
    if (crc32(data, crc32(b.subarray(pos + 4, pos + 8))) !== view.getUint32(pos + 8 + len)) return undefined;
    pos += 12 + len;
    if (first) {
      if (type !== "IHDR" || len !== 13) return undefined;
      first = false;
      width = view.getUint32(pos - len - 4);
      height = view.getUint32(pos - len);
      const [depth, colour, compression, filter, interlace] = data.subarray(8, 13);
      if (depth !== 8 || compression !== 0 || filter !== 0 || interlace !== 0) return undefined;
      if (colour !== 0 && colour !== 2) return undefined;
      channels = colour === 0 ? 1 : 3;
      if (width === 0 || height === 0 || width * height > maxPixels) return undefined;
      continue;
    }
    if (type === "IDAT") idat.push(data);
    else if (type === "IEND") {
      ended = true;
      break;
    } else if (!HARMLESS.has(type)) return undefined;
  }
  if (!ended || idat.length === 0) return undefined;
  const stride = width * channels;
  const expected = (stride + 1) * height;
  let raw: Buffer;
  try {
    raw = inflateSync(idat.length === 1 ? idat[0] : Buffer.concat(idat), { maxOutputLength: expected + 1 });
  } catch {
    return undefined;
  }
  if (raw.length !== expected) return undefined;
  const out = new Uint8Array(stride * height);
  if (!unfilter(raw, out, stride, height, channels)) return undefined;
  return { width, height, channels, data: out };
}

/** Undo the PNG row filters (bytes per pixel = channels at 8 bits); false on an unknown filter. */
function unfilter(raw: Uint8Array, out: Uint8Array, stride: number, height: number, bpp: number): boolean {
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const dst = y * stride;
    const up = dst - stride;
    switch (f) {
      case 0:
        out.set(raw.subarray(src, src + stride), dst);
        break;
      case 1:
        for (let i = 0; i < stride; i++) out[dst + i] = raw[src + i] + (i >= bpp ? out[dst + i - bpp] : 0);
        break;
      case 2:
        for (let i = 0; i < stride; i++) out[dst + i] = raw[src + i] + (y > 0 ? out[up + i] : 0);
        break;
      case 3:
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? out[dst + i - bpp] : 0;
          const b = y > 0 ? out[up + i] : 0;
          out[dst + i] = raw[src + i] + ((a + b) >> 1);
        }
        break;
      case 4:
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? out[dst + i - bpp] : 0;
          const b = y > 0 ? out[up + i] : 0;
          const c = i >= bpp && y > 0 ? out[up + i - bpp] : 0;
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          out[dst + i] = raw[src + i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
        }
        break;
      default:
        return false;
    }
  }
  return true;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Images up to this many filtered bytes are stored without compression (see encodePlainPng). */
export const STORED_LIMIT = 64 * 1024;

/**
 * A zlib stream of stored (uncompressed) deflate blocks: no zlib state to set
 * up, which for a small image costs far more than compressing it (Node's
 * deflateSync allocates and frees its ~256 KiB of state on every call).
 */
function storedZlib(data: Uint8Array): Buffer {
  const blocks = Math.max(1, Math.ceil(data.length / 65535));
  const out = Buffer.alloc(2 + data.length + 5 * blocks + 4);
  out[0] = 0x78;
  out[1] = 0x01;
  let o = 2;
  for (let i = 0; i < blocks; i++) {
    const part = data.subarray(i * 65535, Math.min(data.length, (i + 1) * 65535));
    out[o] = i === blocks - 1 ? 1 : 0;
    out.writeUInt16LE(part.length, o + 1);
    out.writeUInt16LE(~part.length & 0xffff, o + 3);
    out.set(part, o + 5);
    o += 5 + part.length;
  }
  let a = 1;
  let b = 0;
  for (let i = 0; i < data.length; i++) {
    a = (a + data[i]) % 65521;
    b = (b + a) % 65521;
  }
  out.writeUInt32BE(((b << 16) | a) >>> 0, o);
  return out;
}

/**
 * Encode 8-bit HWC grayscale or RGB bytes as a PNG (filter "up" on every row
 * but the first). Small images (a 28x28 digit: 812 bytes) are stored
 * uncompressed, larger ones compressed at zlib's default level.
 */
export function encodePlainPng(hwc: Uint8Array, width: number, height: number, channels: 1 | 3): Buffer {
  const stride = width * channels;
  const rows = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const o = y * (stride + 1);
    const s = y * stride;
    if (y === 0) {
      rows[o] = 0;
      rows.set(hwc.subarray(s, s + stride), o + 1);
    } else {
      rows[o] = 2;
      for (let i = 0; i < stride; i++) rows[o + 1 + i] = (hwc[s + i] - hwc[s - stride + i]) & 0xff;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, channels === 1 ? 0 : 2, 0, 0, 0], 8);
  return Buffer.concat([
    SIGNATURE,
    chunk("IHDR", ihdr),
    chunk(
      "IDAT",
      rows.length <= STORED_LIMIT ? storedZlib(rows) : deflateSync(rows, { level: constants.Z_DEFAULT_COMPRESSION }),
    ),
    chunk("IEND", new Uint8Array(0)),
  ]);
}
