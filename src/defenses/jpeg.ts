/**
 * JPEG compression (Das et al. 2017; Shaham et al. 2018), the paper's baseline
 * at qualities 10 and 23 (section 2.2).
 *
 * Each image is rounded to 8 bits, encoded and decoded by libjpeg (sharp, the
 * mozjpeg build with its extensions off), and scaled back to [0, 1]. The
 * settings reproduce what the authors' code gets from PIL's
 * `Image.save(f, "jpeg", quality=q)`: the standard IJG / Annex K quantisation
 * tables scaled by quality (quantisationTable 0), 4:2:0 chroma subsampling at
 * every quality (PIL's default; libvips would otherwise turn subsampling off
 * from quality 90), baseline, islow DCT, and one-component JPEGs for grayscale
 * images. Decoded pixels match PIL 9.4 (libjpeg-turbo) exactly at qualities
 * 1 to 100 on the images tested (test/defenses/make_jpeg_golden.py). A batch of
 * grayscale images goes through the codec as one mosaic (jpeg-mosaic.ts), with
 * the same pixels as one call per image.
 *
 * Not differentiable: attacks see it through BPDA with the identity.
 * Input [N, 1 | 3, H, W] in [0, 1] (clamped); output the same shape, on the
 * input's device and dtype.
 */
import sharp from "sharp";
import { noGrad, tidy } from "../core/engine.js";
import { ShapeError, VaeguardError } from "../core/errors.js";
import { readOptions, type OptionsOf, type Schema } from "../core/params.js";
import { Tensor, tensor } from "../core/tensor.js";
import { checkInt } from "../core/validate.js";
import { BpdaDefense, checkImages } from "./common.js";
import { grayRoundTripsByMosaic } from "./jpeg-mosaic.js";
import type { DefenseDefinition } from "./types.js";

const PARAMS = {
  quality: {
    type: "int",
    min: 1,
    max: 100,
    default: 23,
    positional: true,
    doc: "libjpeg quality (the paper: 10 and 23)",
  },
} as const satisfies Schema;

export type JpegOptions = OptionsOf<typeof PARAMS>;

export const JPEG_DEFINITION: DefenseDefinition = {
  kind: "jpeg",
  description:
    "JPEG encode/decode at quality 1..100 (default 23), PIL-equivalent libjpeg settings; BPDA identity gradient",
  params: PARAMS,
  build: (o) => new JpegDefense(o as JpegOptions),
};

/** The encoder settings, fixed: see the header comment for why each. */
const JPEG_SETTINGS = {
  quantisationTable: 0,
  chromaSubsampling: "4:2:0",
  progressive: false,
  optimiseCoding: false,
  trellisQuantisation: false,
  overshootDeringing: false,
  optimiseScans: false,
  mozjpeg: false,
} as const;

/** Encode and decode one 8-bit image (HWC bytes); returns the decoded HWC bytes. */
export async function jpegRoundTrip(
  pixels: Uint8Array,
  height: number,
  width: number,
  channels: 1 | 3,
  quality: number,
): Promise<Uint8Array> {
  checkInt(quality, "quality", 1, 100);
  const space = channels === 1 ? "b-w" : "srgb";
  const encoded = await sharp(pixels, { raw: { width, height, channels } })
    .toColourspace(space)
    .jpeg({ quality, ...JPEG_SETTINGS })
    .toBuffer();
  const { data, info } = await sharp(encoded).toColourspace(space).raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== channels || info.width !== width || info.height !== height) {
    throw new VaeguardError(
      `JPEG: decoding gave ${info.width}x${info.height}x${info.channels} for a ${width}x${height}x${channels} image`,
    );
  }
  return data;
}

export class JpegDefense extends BpdaDefense {
  readonly name: string;
  readonly quality: number;

  constructor(options: JpegOptions = {}) {
    super();
    this.quality = readOptions("JPEG", PARAMS, options).quality;
    this.name = `JPEG ${this.quality}`;
  }

  async apply(x: Tensor): Promise<Tensor> {
    checkImages(x, this.name);
    const [n, c, h, w] = x.dims;
    if (c !== 1 && c !== 3) {
      throw new ShapeError(
        `${this.name}: expected 1 (grayscale) or 3 (RGB) channels but received shape [${x.shape.join(", ")}]`,
      );
    }
    // Round (not truncate) to the 8 bits the codec works on; NHWC is the codec's layout.
    const bytes = noGrad(() =>
      tidy(() => x.clamp(0, 1).mul(255).round().to("uint8").permute(0, 2, 3, 1).contiguous().dataSync()),
    ) as Uint8Array;
    const out = c === 1 ? await this.grayBatch(bytes, n, h, w) : await this.colourBatch(bytes, n, h, w);
    return noGrad(() =>
      tidy(() => {
        let y = tensor(out, [n, h, w, c]).to(x.dtype).div(255).permute(0, 3, 1, 2).contiguous();
        if (x.device !== "cpu") y = y.to(x.device);
        return y;
      }),
    );
  }

  /** Grayscale: the whole batch in one mosaic (exact; see jpeg-mosaic.ts). */
  private async grayBatch(bytes: Uint8Array, n: number, h: number, w: number): Promise<Uint8Array> {
    return grayRoundTripsByMosaic(bytes, n, h, w, (pixels, height, width) =>
      jpegRoundTrip(pixels, height, width, 1, this.quality),
    ).catch((e: unknown) => {
      throw new VaeguardError(`${this.name}: a batch of ${n} images failed: ${(e as Error).message}`, { cause: e });
    });
  }

  /** RGB: one round trip per image (a mosaic would not be exact with chroma subsampling). */
  private async colourBatch(bytes: Uint8Array, n: number, h: number, w: number): Promise<Uint8Array> {
    const per = h * w * 3;
    const decoded = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        jpegRoundTrip(bytes.subarray(i * per, (i + 1) * per), h, w, 3, this.quality).catch((e: unknown) => {
          throw new VaeguardError(`${this.name}: image ${i} of the batch failed: ${(e as Error).message}`, {
            cause: e,
          });
        }),
      ),
    );
    const out = new Uint8Array(n * per);
    decoded.forEach((d, i) => out.set(d, i * per));
    return out;
  }

  describe(): Record<string, number | string | boolean> {
    return {
      defense: "jpeg",
      quality: this.quality,
      quantisationTable: "IJG (Annex K)",
      chromaSubsampling: JPEG_SETTINGS.chromaSubsampling,
      gradient: this.gradient,
    };
  }
}
