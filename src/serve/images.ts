/**
 * Image bytes in and out of the service, with hostile input in mind: the
 * format is sniffed from the first bytes (only PNG, JPEG and WebP ever reach
 * the decoder: no SVG, no TIFF, nothing that libvips would parse with a
 * larger attack surface), sharp's `limitInputPixels` refuses an image with
 * too many pixels from its header, before any decoding (decompression
 * bombs), and a truncated or damaged file is a 400 with one line, never a crash.
 */
import sharp from "sharp";
import { HttpError, badRequest } from "./errors.js";
import { decodePlainPng, encodePlainPng } from "./png.js";

export const ACCEPTED_FORMATS = ["png", "jpeg", "webp"] as const;
export type AcceptedFormat = (typeof ACCEPTED_FORMATS)[number];
export const ACCEPTED_CONTENT_TYPES = ["image/png", "image/jpeg", "image/webp"] as const;

/** An image as the models take it: CHW float32 in [0, 1]. */
export interface PixelImage {
  data: Float32Array;
  shape: [number, number, number];
}

const startsWith = (b: Uint8Array, sig: number[], at = 0) => sig.every((v, i) => b[at + i] === v);
const ascii = (b: Uint8Array, from: number, to: number) => String.fromCharCode(...b.subarray(from, to));

/** The format of an image from its magic bytes: an accepted one, another known one, or undefined. */
export function sniffFormat(b: Uint8Array): string | undefined {
  if (startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  if (startsWith(b, [0xff, 0xd8, 0xff])) return "jpeg";
  if (b.length >= 12 && ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 12) === "WEBP") return "webp";
  if (ascii(b, 0, 4) === "GIF8") return "gif";
  if (startsWith(b, [0x49, 0x49, 0x2a, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2a])) return "tiff";
  if (ascii(b, 0, 2) === "BM") return "bmp";
  if (b.length >= 12 && ascii(b, 4, 8) === "ftyp") return "heif/avif";
  const head = ascii(b, 0, Math.min(b.length, 256)).trimStart().toLowerCase();
  if (head.startsWith("<svg") || (head.startsWith("<?xml") && head.includes("<svg"))) return "svg";
  return undefined;
}

export interface DecodeOptions {
  /** Most pixels (width x height) an image may have. */
  maxPixels: number;
  /** Channels the model takes: 1 (grayscale) or 3 (sRGB). */
  channels: 1 | 3;
  /** Resize to this [height, width] (letterboxed on black, aspect kept); undefined keeps the image's size. */
  size?: readonly [number, number];
  /** What the bytes are called in messages ("the request body", "images[2]"). */
  what?: string;
}

/** Check the magic bytes: empty (400), not an image (400), another format (415). */
function checkFormat(bytes: Uint8Array, what: string): AcceptedFormat {
  if (bytes.length === 0) throw badRequest("empty_image", `${cap(what)} is empty; send PNG, JPEG or WebP bytes`);
  const format = sniffFormat(bytes);
  if (format === undefined) {
    throw badRequest("invalid_image", `${cap(what)} is not a PNG, JPEG or WebP image`);
  }
  if (!(ACCEPTED_FORMATS as readonly string[]).includes(format)) {
    throw new HttpError(415, "unsupported_image_format", `${cap(what)} is a ${format} image; send PNG, JPEG or WebP`);
  }
  return format as AcceptedFormat;
}

/** 413 naming the image's size, read from its header (no pixels are decoded to read it). */
async function tooManyPixels(bytes: Uint8Array, format: string, what: string, maxPixels: number): Promise<HttpError> {
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    return badRequest("invalid_image", `${cap(what)} is a damaged ${format} image (${firstLine(e)})`);
  }
  const [w, h] = [meta.width ?? 0, meta.height ?? 0];
  return new HttpError(
    413,
    "too_many_pixels",
    `${cap(what)} has ${w}x${h} = ${w * h} pixels; the limit is ${maxPixels}`,
  );
}

/**
 * Decode PNG/JPEG/WebP bytes to a CHW float image for a model. sharp refuses
 * an image over the pixel limit from its header, before decoding anything;
 * only then is the header read again, for the message.
 */
export async function decodeImage(bytes: Uint8Array, o: DecodeOptions): Promise<PixelImage> {
  const what = o.what ?? "the request body";
  const format = checkFormat(bytes, what);
  if (format === "png") {
    // Plain 8-bit PNGs already of the wanted channels and size skip libvips (see png.ts); everything else goes to sharp.
    const plain = decodePlainPng(bytes, o.maxPixels);
    if (
      plain !== undefined &&
      plain.channels === o.channels &&
      (o.size === undefined || (o.size[0] === plain.height && o.size[1] === plain.width))
    ) {
      return {
        data: hwcToChw(plain.data, plain.height, plain.width, plain.channels),
        shape: [plain.channels, plain.height, plain.width],
      };
    }
  }
  let img = sharp(bytes, { limitInputPixels: o.maxPixels, failOn: "truncated" })
    .rotate()
    // Transparent parts become black: MNIST-style digits are light on a dark ground.
    .flatten({ background: "#000000" });
  if (o.size) {
    img = img.resize(o.size[1], o.size[0], { fit: "contain", background: "#000000", kernel: "lanczos3" });
  }
  img = img.toColourspace(o.channels === 1 ? "b-w" : "srgb").removeAlpha();
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    out = await img.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    if (/pixel limit/i.test(firstLine(e))) throw await tooManyPixels(bytes, format, what, o.maxPixels);
    throw badRequest("invalid_image", `${cap(what)} is a truncated or damaged ${format} image (${firstLine(e)})`);
  }
  const { width, height, channels } = out.info;
  if (channels !== o.channels) {
    throw badRequest("invalid_image", `${cap(what)} decoded to ${channels} channels instead of ${o.channels}`);
  }
  return { data: hwcToChw(out.data, height, width, channels), shape: [channels, height, width] };
}

function hwcToChw(hwc: Uint8Array, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(c * h * w);
  if (c === 1) {
    for (let i = 0; i < h * w; i++) out[i] = hwc[i] / 255;
    return out;
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < c; k++) out[k * h * w + y * w + x] = hwc[(y * w + x) * c + k] / 255;
    }
  }
  return out;
}

/** A CHW float image in [0, 1] as 8-bit HWC bytes. */
export function chwToBytes(data: Float32Array, shape: readonly [number, number, number]): Uint8Array {
  const [c, h, w] = shape;
  const out = new Uint8Array(c * h * w);
  for (let k = 0; k < c; k++) {
    for (let i = 0; i < h * w; i++) {
      const v = data[k * h * w + i];
      out[i * c + k] = Math.round(Math.min(1, Math.max(0, Number.isNaN(v) ? 0 : v)) * 255);
    }
  }
  return out;
}

export async function encodePng(img: PixelImage): Promise<Buffer> {
  const [c, h, w] = img.shape;
  // Node's zlib writes a 28x28 PNG in microseconds; sharp's pipeline costs about 0.5 ms whatever the size.
  if (c === 1 || c === 3) return encodePlainPng(chwToBytes(img.data, img.shape), w, h, c);
  return sharp(chwToBytes(img.data, img.shape), { raw: { width: w, height: h, channels: c as 1 | 3 } })
    .toColourspace(c === 1 ? "b-w" : "srgb")
    .png()
    .toBuffer();
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Raw float32 little-endian CHW bytes (for `format=tensor`). */
export function tensorBytes(img: PixelImage): Buffer {
  if (LITTLE_ENDIAN)
    return Buffer.from(img.data.buffer.slice(img.data.byteOffset, img.data.byteOffset + img.data.byteLength));
  const out = Buffer.alloc(img.data.length * 4);
  for (let i = 0; i < img.data.length; i++) out.writeFloatLE(img.data[i], i * 4);
  return out;
}

/** Strict base64 (standard alphabet, optional padding, optionally a data: URL prefix). */
export function fromBase64(text: unknown, what: string): Buffer {
  if (typeof text !== "string") throw badRequest("invalid_base64", `${cap(what)} must be a base64 string`);
  const body = text.replace(/^data:image\/[a-z]+;base64,/, "");
  if (body.length % 4 === 1 || !/^[A-Za-z0-9+/]*={0,2}$/.test(body)) {
    throw badRequest("invalid_base64", `${cap(what)} is not valid base64`);
  }
  return Buffer.from(body, "base64");
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e)
    .split("\n")[0]
    .trim();
}
