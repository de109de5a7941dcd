/**
 * The plain-PNG fast path (src/serve/png.ts): it reads what sharp reads,
 * pixel for pixel, writes PNGs that sharp reads back, and hands everything
 * unusual (palette, interlace, 16-bit, damaged, over the pixel limit) back
 * to sharp by returning undefined.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import sharp from "sharp";
import { decodePlainPng, encodePlainPng } from "../../src/serve/png.js";

function pixels(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let k = 0; k < n; k++) b[k] = (k * 31 + seed * 17 + ((k * k) >> 3)) & 255;
  return b;
}

async function sharpPng(px: Buffer, w: number, h: number, c: 1 | 3, o: sharp.PngOptions = {}): Promise<Buffer> {
  return sharp(px, { raw: { width: w, height: h, channels: c } })
    .toColourspace(c === 1 ? "b-w" : "srgb")
    .png(o)
    .toBuffer();
}

test("decodes sharp's grayscale and RGB PNGs (every filter type) to the same bytes", async () => {
  for (const [w, h, c] of [
    [28, 28, 1],
    [1, 1, 1],
    [17, 9, 3],
    [40, 33, 3],
  ] as const) {
    for (const o of [
      {},
      { adaptiveFiltering: true },
      { compressionLevel: 0 },
      { compressionLevel: 9, adaptiveFiltering: true },
    ]) {
      const px = pixels(w * h * c, w + h);
      const d = decodePlainPng(await sharpPng(px, w, h, c, o), 1 << 22);
      assert.ok(d, `${w}x${h}x${c} ${JSON.stringify(o)} took the fast path`);
      assert.deepEqual([d.width, d.height, d.channels], [w, h, c]);
      assert.ok(Buffer.from(d.data).equals(px));
    }
  }
});

test("encodes PNGs that sharp reads back exactly, small (stored) and large (compressed)", async () => {
  for (const [w, h, c] of [
    [28, 28, 1],
    [32, 32, 3],
    [300, 300, 1],
  ] as const) {
    const px = pixels(w * h * c, 3);
    let img = sharp(encodePlainPng(px, w, h, c), { failOn: "truncated" });
    if (c === 1) img = img.toColourspace("b-w");
    const back = await img.raw().toBuffer({ resolveWithObject: true });
    assert.equal(back.info.channels, c);
    assert.ok(back.data.equals(px));
  }
});

test("anything unusual goes back to sharp: palette, interlace, 16-bit, alpha, damage, truncation, pixel limit", async () => {
  const px = pixels(28 * 28, 1);
  const plain = await sharpPng(px, 28, 28, 1);
  assert.ok(decodePlainPng(plain, 784));
  assert.equal(decodePlainPng(plain, 783), undefined);
  assert.equal(decodePlainPng(plain.subarray(0, plain.length - 20), 1 << 22), undefined);
  const damaged = Buffer.from(plain);
  damaged[45] ^= 1;
  assert.equal(decodePlainPng(damaged, 1 << 22), undefined);
  const rgb = pixels(28 * 28 * 3, 2);
  for (const o of [{ palette: true }, { progressive: true }]) {
    assert.equal(decodePlainPng(await sharpPng(rgb, 28, 28, 3, o), 1 << 22), undefined, JSON.stringify(o));
  }
  const sixteen = await sharp(px, { raw: { width: 28, height: 28, channels: 1 } })
    .toColourspace("grey16")
    .png()
    .toBuffer();
  assert.equal(decodePlainPng(sixteen, 1 << 22), undefined);
  const alpha = await sharp(pixels(28 * 28 * 4, 4), { raw: { width: 28, height: 28, channels: 4 } })
    .png()
    .toBuffer();
  assert.equal(decodePlainPng(alpha, 1 << 22), undefined);
  assert.equal(decodePlainPng(Buffer.from("not a png at all, not even close"), 1 << 22), undefined);
});
