/**
 * JPEG round trips of a batch of grayscale images in one encode and one decode.
 *
 * Why: a sharp call costs about 5 ms whatever the image's size, so a batch of 100 MNIST digits paid 100 calls per
 * forward pass, and attacks that query the defense thousands of times (Square, BPDA PGD) spent nearly all their
 * time there. Tiling the batch into one mosaic pays one call.
 *
 * Why it is exact for one-component (grayscale) JPEGs: libjpeg codes each 8x8 block on its own (the DCT,
 * quantisation and inverse DCT see one block; the DC prediction between blocks is lossless entropy coding, and a
 * single component is never subsampled or upsampled). An image whose sides are not multiples of 8 is padded
 * inside libjpeg by repeating its last column and last row; each tile here is padded the same way before it goes
 * into the mosaic, so every block libjpeg sees is the block it would have seen for the image alone. Colour JPEGs
 * are not tiled: 4:2:0 fancy upsampling mixes pixels across block edges, so a neighbour would leak in.
 * test/defenses/jpeg.test.ts checks the mosaic against one call per image, byte for byte.
 */

/** Most images per mosaic, and the longest side a mosaic may have (JPEG's limit is 65,535). */
const MAX_TILES = 256;
const MAX_SIDE = 16384;

/** Encode-and-decode of one 8-bit grayscale image (HW bytes), as jpeg.ts's jpegRoundTrip gives it. */
export type GrayRoundTrip = (pixels: Uint8Array, height: number, width: number) => Promise<Uint8Array>;

/**
 * The round trips of `n` grayscale images of `height` x `width` (bytes, image after image), through as few calls
 * of `roundTrip` as MAX_TILES allows. Returns the decoded bytes in the same layout.
 */
export async function grayRoundTripsByMosaic(
  bytes: Uint8Array,
  n: number,
  height: number,
  width: number,
  roundTrip: GrayRoundTrip,
): Promise<Uint8Array> {
  const out = new Uint8Array(n * height * width);
  const perMosaic = tilesPerMosaic(height, width);
  for (let first = 0; first < n; first += perMosaic) {
    const count = Math.min(perMosaic, n - first);
    const layout = mosaicLayout(count, height, width);
    const mosaic = tile(bytes, first, count, height, width, layout);
    const decoded = await roundTrip(mosaic, layout.rows * layout.tileHeight, layout.columns * layout.tileWidth);
    untile(decoded, out, first, count, height, width, layout);
  }
  return out;
}

interface MosaicLayout {
  columns: number;
  rows: number;
  /** The image's sides rounded up to whole 8x8 blocks. */
  tileHeight: number;
  tileWidth: number;
}

const blocks = (side: number) => Math.ceil(side / 8) * 8;

/** How many tiles of an image's size fit side by side and one above another within MAX_SIDE (at least one). */
function fit(height: number, width: number): { across: number; down: number } {
  return {
    across: Math.max(1, Math.floor(MAX_SIDE / blocks(width))),
    down: Math.max(1, Math.floor(MAX_SIDE / blocks(height))),
  };
}

/** As many tiles as fit in MAX_SIDE both ways (an image larger than that goes alone). */
function tilesPerMosaic(height: number, width: number): number {
  const { across, down } = fit(height, width);
  return Math.min(MAX_TILES, across * down);
}

/** Close to square, but never more rows or columns than MAX_SIDE holds (count <= tilesPerMosaic). */
function mosaicLayout(count: number, height: number, width: number): MosaicLayout {
  const { across, down } = fit(height, width);
  const columns = Math.min(across, Math.max(Math.ceil(Math.sqrt(count)), Math.ceil(count / down)));
  return { columns, rows: Math.ceil(count / columns), tileHeight: blocks(height), tileWidth: blocks(width) };
}

/** Where tile k starts in the mosaic's bytes, and the mosaic's row length. */
function tileOrigin(k: number, m: MosaicLayout): { start: number; stride: number } {
  const stride = m.columns * m.tileWidth;
  const top = Math.floor(k / m.columns) * m.tileHeight;
  return { start: top * stride + (k % m.columns) * m.tileWidth, stride };
}

/** Images first .. first+count-1 into one mosaic, each padded by repeating its last row and column (libjpeg's rule). */
function tile(
  bytes: Uint8Array,
  first: number,
  count: number,
  height: number,
  width: number,
  m: MosaicLayout,
): Uint8Array {
  const mosaic = new Uint8Array(m.rows * m.tileHeight * m.columns * m.tileWidth);
  for (let k = 0; k < count; k++) {
    const source = (first + k) * height * width;
    const { start, stride } = tileOrigin(k, m);
    for (let y = 0; y < m.tileHeight; y++) {
      const row = source + Math.min(y, height - 1) * width;
      const target = start + y * stride;
      mosaic.set(bytes.subarray(row, row + width), target);
      mosaic.fill(bytes[row + width - 1], target + width, target + m.tileWidth);
    }
  }
  return mosaic;
}

/** The decoded images back out of the mosaic, cropped to their own size. */
function untile(
  mosaic: Uint8Array,
  out: Uint8Array,
  first: number,
  count: number,
  height: number,
  width: number,
  m: MosaicLayout,
): void {
  for (let k = 0; k < count; k++) {
    const target = (first + k) * height * width;
    const { start, stride } = tileOrigin(k, m);
    for (let y = 0; y < height; y++) {
      const row = start + y * stride;
      out.set(mosaic.subarray(row, row + width), target + y * width);
    }
  }
}
