import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { decodeIdx, encodeIdx, isGzip, readIdx, writeIdx, type IdxArray } from "../../src/io/idx.js";
import { DataError } from "../../src/core/errors.js";

function inTmp(fn: (dir: string) => void): () => void {
  return () => {
    const dir = mkdtempSync(join(tmpdir(), "vaeguard-idx-"));
    try {
      fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

function throwsData(fn: () => unknown, file: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.match(e.message, pattern);
    return true;
  });
}

const SAMPLES: IdxArray[] = [
  { type: "uint8", shape: [2, 3, 2], data: Uint8Array.from({ length: 12 }, (_, i) => i * 21) },
  { type: "int8", shape: [4], data: new Int8Array([-128, -1, 0, 127]) },
  { type: "int16", shape: [2, 2], data: new Int16Array([-32768, -2, 258, 32767]) },
  { type: "int32", shape: [3], data: new Int32Array([-(2 ** 31), 65536 + 2, 2 ** 31 - 1]) },
  { type: "float32", shape: [1, 3], data: new Float32Array([-1.5, 3.25, Infinity]) },
  { type: "float64", shape: [2], data: new Float64Array([Math.PI, -1e-300]) },
];

test(
  "every IDX type round trips through plain and gzipped files",
  inTmp((dir) => {
    for (const sample of SAMPLES) {
      for (const gzip of [false, true]) {
        const file = join(dir, `${sample.type}${gzip ? ".gz" : ""}`);
        writeIdx(file, sample, { gzip });
        assert.equal(isGzip(readFileSync(file)), gzip);
        const back = readIdx(file);
        assert.equal(back.type, sample.type);
        assert.deepEqual(back.shape, sample.shape);
        assert.deepEqual(back.data, sample.data, `${sample.type} gzip=${gzip}`);
      }
    }
  }),
);

test("a file built byte by byte is read big-endian with the right shape", () => {
  // magic 00 00 0b (short) 02 dims, sizes 2 and 1, then 0x0102 and 0xfffe big-endian.
  const bytes = new Uint8Array([0, 0, 0x0b, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0x01, 0x02, 0xff, 0xfe]);
  const a = decodeIdx(bytes);
  assert.equal(a.type, "int16");
  assert.deepEqual(a.shape, [2, 1]);
  assert.deepEqual(a.data, new Int16Array([258, -2]));
  assert.deepEqual(encodeIdx(a), bytes, "the writer produces the same bytes");
  // The same file gzipped is recognised by its magic, whatever its name.
  assert.deepEqual(decodeIdx(gzipSync(bytes)), a);
});

test(
  "the data of a file read from disk does not alias the file's buffer",
  inTmp((dir) => {
    const file = join(dir, "bytes");
    writeIdx(file, { type: "uint8", shape: [3], data: new Uint8Array([7, 8, 9]) });
    const a = readIdx(file);
    assert.equal(a.data.byteOffset, 0);
    assert.equal(a.data.buffer.byteLength, 3);
  }),
);

test("damaged IDX data give a DataError saying what is wrong and what to do", () => {
  const good = encodeIdx({ type: "uint8", shape: [2, 3], data: new Uint8Array(6) });
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "truncated data",
      good.subarray(0, good.byteLength - 2),
      /is truncated: shape 2x3 of uint8 needs 6 data bytes but only 4 follow the header; download the file again/,
    ],
    [
      "truncated header",
      good.subarray(0, 9),
      /truncated inside its header \(2 dimensions need 12 header bytes, the file has 9\)/,
    ],
    ["too short", new Uint8Array([0, 0]), /is 2 bytes long, too short for an IDX header/],
    ["extra bytes", new Uint8Array([...good, 1, 2, 3]), /has 3 unexpected bytes after the 6 data bytes of shape 2x3/],
    [
      "wrong magic (zip)",
      new Uint8Array([0x50, 0x4b, 3, 4, 0, 0, 0, 0]),
      /is not an IDX file: it starts with 50 4b 03 04/,
    ],
    [
      "unknown type byte",
      new Uint8Array([0, 0, 0x0a, 1, 0, 0, 0, 0]),
      /is not an IDX file: it starts with 00 00 0a 01/,
    ],
    ["zero dimensions", new Uint8Array([0, 0, 8, 0, 5]), /declares 0 dimensions/],
    ["damaged gzip", gzipSync(good).subarray(0, 12), /is a damaged gzip file \(.*\); download the file again/],
    [
      "absurd sizes",
      new Uint8Array([0, 0, 0x0e, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1, 2]),
      /is truncated: shape 4294967295x4294967295x4294967295/,
    ],
  ];
  for (const [what, bytes, pattern] of cases) {
    try {
      throwsData(() => decodeIdx(bytes, "f.idx"), "f.idx", pattern);
    } catch (e) {
      assert.fail(`${what}: ${(e as Error).message}`);
    }
  }
});

test(
  "a truncated or missing file on disk names the file",
  inTmp((dir) => {
    const file = join(dir, "train-images-idx3-ubyte.gz");
    const full = encodeIdx({ type: "uint8", shape: [10, 4, 4], data: new Uint8Array(160) }, { gzip: true });
    writeFileSync(file, full.subarray(0, full.byteLength - 10));
    throwsData(() => readIdx(file), file, /damaged gzip file/);

    const plain = join(dir, "plain");
    writeFileSync(plain, encodeIdx({ type: "uint8", shape: [10, 4, 4], data: new Uint8Array(160) }).subarray(0, 100));
    throwsData(() => readIdx(plain), plain, /is truncated/);

    const missing = join(dir, "nope");
    throwsData(() => readIdx(missing), missing, /file not found/);
  }),
);

test("the writer rejects inconsistent arrays", () => {
  assert.throws(
    () => encodeIdx({ type: "uint8", shape: [2, 2], data: new Uint8Array(3) }),
    /needs 4 elements but data has 3/,
  );
  assert.throws(() => encodeIdx({ type: "uint8", shape: [], data: new Uint8Array(1) }), /Expected 1 to 255 dimensions/);
  assert.throws(
    () => encodeIdx({ type: "uint16" as "uint8", shape: [1], data: new Uint8Array(1) }),
    /for type but received uint16/,
  );
});
