import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  MAX_HEADER_BYTES,
  readSafetensorsMetadata,
  saveSafetensors,
  type RawTensor,
} from "../../src/io/safetensors.js";
import { CheckpointError, ArgumentError } from "../../src/core/errors.js";
import { memory, tidy } from "../../src/core/engine.js";
import { tensor, type Tensor } from "../../src/core/tensor.js";

/** Run `fn` in a fresh temporary folder and check that it leaves no tensor alive. */
function withTmp(fn: (dir: string) => void): () => void {
  return () => {
    const before = memory().numTensors;
    const dir = mkdtempSync(join(tmpdir(), "vaeguard-safetensors-"));
    try {
      fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(memory().numTensors, before, "tensors leaked");
  };
}

/** A file from its parts: the JSON header text (unpadded), the data bytes, optionally a forged length. */
function build(
  header: string | object | Uint8Array,
  data: Uint8Array = new Uint8Array(0),
  length?: bigint,
): Uint8Array {
  const json =
    header instanceof Uint8Array
      ? header
      : Buffer.from(typeof header === "string" ? header : JSON.stringify(header), "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(length ?? BigInt(json.byteLength));
  return Buffer.concat([len, json, data]);
}

function throwsCheckpoint(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected CheckpointError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

function bytesOf(t: Tensor): Uint8Array {
  const a = t.dataSync();
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

test(
  "every dtype survives a save/load round trip bit for bit, with metadata",
  withTmp((dir) => {
    const file = join(dir, "all.safetensors");
    const originals = tidy(() => {
      const f = tensor(new Float32Array([0, -1.5, 3.25, 1e-30, -Infinity, 65504, 0.1, 7]), [2, 4]);
      return {
        f32: f,
        f64: tensor(new Float64Array([Math.PI, -0, 1e300, Number.MIN_VALUE]), [4]),
        f16: f.to("float16"),
        bf16: f.to("bfloat16"),
        i64: tensor(new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n, 42n]), [2, 2]),
        i32: tensor(new Int32Array([-(2 ** 31), 2 ** 31 - 1, 5]), [3]),
        i16: tensor(new Int16Array([-32768, 32767, 1, -1]), [1, 4]),
        i8: tensor(new Int8Array([-128, 127, 0]), [3]),
        u8: tensor(new Uint8Array([0, 255, 128, 1, 2, 3]), [2, 3]),
        bool: tensor(new Uint8Array([1, 0, 0, 1, 1]), [5]).to("bool"),
        scalar: tensor(new Float32Array([2.5]), []),
        empty: tensor(new Float32Array(0), [0, 3]),
      };
    });
    try {
      saveSafetensors(file, originals, { format: "pt", note: "ünïcödé ✓" });
      assert.deepEqual(readdirSync(dir), ["all.safetensors"], "the atomic write leaves no temporary file behind");
      const { tensors, metadata } = loadSafetensors(file);
      try {
        assert.deepEqual(metadata, { format: "pt", note: "ünïcödé ✓" });
        assert.deepEqual([...tensors.keys()].sort(), Object.keys(originals).sort());
        for (const [name, t] of Object.entries(originals)) {
          const back = tensors.get(name)!;
          assert.equal(back.dtype, t.dtype, name);
          assert.deepEqual(back.shape, t.shape, name);
          assert.deepEqual(bytesOf(back), bytesOf(t), name);
        }
        assert.deepEqual(tensors.get("bool")!.toArray(), [1, 0, 0, 1, 1]);
        assert.deepEqual(tensors.get("i64")!.dataSync(), new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n, 42n]));
      } finally {
        for (const t of tensors.values()) t.dispose();
      }
    } finally {
      for (const t of Object.values(originals)) t.dispose();
    }
  }),
);

test(
  "a Map of tensors saves too, and a file saved twice is byte-identical",
  withTmp((dir) => {
    const a = tensor(new Float32Array([1, 2]), [2]);
    try {
      saveSafetensors(join(dir, "1.safetensors"), new Map([["w", a]]));
      saveSafetensors(join(dir, "2.safetensors"), { w: a });
      assert.deepEqual(readFileSync(join(dir, "1.safetensors")), readFileSync(join(dir, "2.safetensors")));
    } finally {
      a.dispose();
    }
  }),
);

test("a file built byte by byte from the specification loads with the right values", () => {
  const before = memory().numTensors;
  // Data buffer: "w" F32 [2, 2] at 0..16, "n" I64 [2] at 16..32, "h" BF16 [2] at 32..36,
  // "m" BOOL [3] at 36..39. Header entries deliberately not in offset order.
  const data = new Uint8Array(39);
  const v = new DataView(data.buffer);
  [1.5, -2, 0.25, 1024].forEach((x, i) => v.setFloat32(4 * i, x, true));
  v.setBigInt64(16, -5n, true);
  v.setBigInt64(24, 2n ** 40n, true);
  v.setUint16(32, 0x3f80, true); // bfloat16 1.0
  v.setUint16(34, 0xc040, true); // bfloat16 -3.0
  data.set([1, 0, 1], 36);
  const header =
    '{"m":{"dtype":"BOOL","shape":[3],"data_offsets":[36,39]},' +
    '"__metadata__":{"epoch":"3"},' +
    '"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},' +
    '"h":{"dtype":"BF16","shape":[2],"data_offsets":[32,36]},' +
    '"n":{"dtype":"I64","shape":[2],"data_offsets":[16,32]}}   ';
  const decoded = decodeSafetensors(build(header, data));
  assert.deepEqual(decoded.metadata, { epoch: "3" });
  assert.deepEqual([...decoded.tensors.keys()], ["w", "n", "h", "m"], "tensors come in offset order");

  const dir = mkdtempSync(join(tmpdir(), "vaeguard-safetensors-"));
  try {
    const file = join(dir, "spec.safetensors");
    writeFileSync(file, build(header, data));
    const { tensors } = loadSafetensors(file);
    try {
      const w = tensors.get("w")!;
      assert.equal(w.dtype, "float32");
      assert.deepEqual(w.shape, [2, 2]);
      assert.deepEqual(w.toArray(), [1.5, -2, 0.25, 1024]);
      assert.deepEqual(tensors.get("n")!.dataSync(), new BigInt64Array([-5n, 2n ** 40n]));
      const h = tensors.get("h")!;
      assert.equal(h.dtype, "bfloat16");
      const hf = h.float();
      assert.deepEqual(hf.toArray(), [1, -3]);
      hf.dispose();
      const m = tensors.get("m")!;
      assert.equal(m.dtype, "bool");
      assert.deepEqual(m.toArray(), [1, 0, 1]);
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before, "tensors leaked");
});

test("encoding matches the reference library's own test vectors byte for byte", () => {
  // From huggingface/safetensors, safetensors/src/tensor.rs, tests test_serialization and test_empty.
  const data = new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);
  const out = encodeSafetensors({ "attn.0": { dtype: "F32", shape: [1, 2, 3], data } });
  const expectedHeader = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
  assert.deepEqual(Buffer.from(out), Buffer.concat([build(expectedHeader), data]));
  assert.equal(out[0], 64);

  assert.deepEqual([...encodeSafetensors({})], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  assert.deepEqual(
    Buffer.from(encodeSafetensors({}, { framework: "pt" })),
    Buffer.from([40, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from('{"__metadata__":{"framework":"pt"}}     ')]),
  );

  // attn0 is one character shorter, so the header is padded with spaces to 72 bytes.
  const padded = encodeSafetensors({ attn0: { dtype: "F32", shape: [1, 1, 2, 3], data } });
  assert.equal(padded[0], 72);
  assert.equal(Buffer.from(padded.subarray(8, 80)).toString("latin1").endsWith("}}       "), true);
});

test("the header lists __metadata__ first, then tensors by descending dtype width and then by name", () => {
  const raw = (dtype: RawTensor["dtype"], bytes: number): RawTensor => ({
    dtype,
    shape: [bytes],
    data: new Uint8Array(bytes),
  });
  const out = encodeSafetensors(
    { b: raw("U8", 1), a: raw("U8", 3), z: raw("BOOL", 1), k: { dtype: "I64", shape: [1], data: new Uint8Array(8) } },
    { z: "1", a: "2" },
  );
  const n = Number(Buffer.from(out).readBigUInt64LE(0));
  assert.equal(n % 8, 0, "the header is padded to 8 bytes");
  const text = Buffer.from(out.subarray(8, 8 + n)).toString("utf8");
  assert.equal(
    text.trimEnd(),
    '{"__metadata__":{"a":"2","z":"1"},' +
      '"k":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},' +
      '"a":{"dtype":"U8","shape":[3],"data_offsets":[8,11]},' +
      '"b":{"dtype":"U8","shape":[1],"data_offsets":[11,12]},' +
      '"z":{"dtype":"BOOL","shape":[1],"data_offsets":[12,13]}}',
  );
  const back = decodeSafetensors(out);
  assert.deepEqual([...back.tensors.keys()], ["k", "a", "b", "z"]);
});

test("encoding rejects invalid input with ArgumentError", () => {
  const data = new Uint8Array(4);
  assert.throws(() => encodeSafetensors({ __metadata__: { dtype: "U8", shape: [4], data } }), /reserved/);
  assert.throws(() => encodeSafetensors({ a: { dtype: "U8", shape: [5], data } }), /needs 5 bytes but its data has 4/);
  assert.throws(() => encodeSafetensors({ a: { dtype: "C64" as "U8", shape: [4], data } }), ArgumentError);
  assert.throws(() => encodeSafetensors({ a: { dtype: "U8", shape: [-4], data } }), /non-negative integers/);
  assert.throws(() => encodeSafetensors({}, { epoch: 3 as unknown as string }), /Expected string for metadata "epoch"/);
});

test("damaged or hostile bytes give a CheckpointError that says what is wrong", () => {
  const f32 = (offsets: number[], shape = [2]) => ({ x: { dtype: "F32", shape, data_offsets: offsets } });
  const cases: [string, Uint8Array, RegExp][] = [
    ["empty file", new Uint8Array(0), /0 bytes is shorter than the 8-byte header length/],
    ["7 bytes", new Uint8Array(7), /7 bytes is shorter than the 8-byte header length/],
    [
      "header longer than the file",
      build("{}", new Uint8Array(0), 1000n),
      /header length 1000 runs past the end of the 10-byte file/,
    ],
    [
      "absurd header length",
      build("{}", new Uint8Array(0), BigInt(MAX_HEADER_BYTES) + 1n),
      /exceeds the 100000000-byte limit/,
    ],
    ["header length 2^64-1", build("{}", new Uint8Array(0), 2n ** 64n - 1n), /exceeds the 100000000-byte limit/],
    ["invalid JSON", build('{"x": {"dtype": '), /header is not valid JSON/],
    ["invalid UTF-8", build(new Uint8Array([0x7b, 0xff, 0x7d])), /not valid UTF-8/],
    ["array header", build("[1, 2]"), /header must be a JSON object but is \[1,2\]/],
    ["null header", build("null"), /header must be a JSON object but is null/],
    [
      "tensor info not an object",
      build({ x: 3 }),
      /tensor "x": expected an object with dtype, shape and data_offsets but found 3/,
    ],
    [
      "unknown dtype",
      build({ x: { dtype: "C64", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /tensor "x": unsupported dtype "C64"/,
    ],
    [
      "missing dtype",
      build({ x: { shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /tensor "x": unsupported dtype undefined/,
    ],
    [
      "negative shape",
      build(f32([0, 8], [-2]), new Uint8Array(8)),
      /tensor "x": shape must be an array of non-negative integers but is \[-2\]/,
    ],
    [
      "fractional shape",
      build(f32([0, 8], [1.5]), new Uint8Array(8)),
      /shape must be an array of non-negative integers but is \[1.5\]/,
    ],
    ["shape not an array", build(f32([0, 8], "2" as unknown as number[]), new Uint8Array(8)), /shape must be an array/],
    [
      "offsets reversed",
      build(f32([8, 0]), new Uint8Array(8)),
      /data_offsets must be \[begin, end\] with 0 <= begin <= end but is \[8,0\]/,
    ],
    ["offsets not a pair", build(f32([0]), new Uint8Array(8)), /data_offsets must be \[begin, end\]/],
    ["offsets past the data", build(f32([0, 8]), new Uint8Array(4)), /data_offsets \[0, 8\] run past the 4 data bytes/],
    ["huge offsets", build(f32([0, 2 ** 60]), new Uint8Array(8)), /data_offsets must be \[begin, end\]|run past/],
    [
      "overlapping tensors",
      build({ ...f32([0, 8]), y: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)),
      /tensor "y": data_offsets \[4, 12\] overlap the previous tensor, which ends at 8/,
    ],
    [
      "gap before a tensor",
      build(f32([4, 12]), new Uint8Array(12)),
      /tensor "x": data_offsets \[4, 12\] leave a gap after byte 0/,
    ],
    [
      "byte count disagrees with shape",
      build(f32([0, 12]), new Uint8Array(12)),
      /F32 \[2\] needs 8 bytes but data_offsets \[0, 12\] hold 12/,
    ],
    [
      "absurd shape",
      build(f32([0, 8], [2 ** 40, 2 ** 40]), new Uint8Array(8)),
      /shape \[1099511627776, 1099511627776\] is too large|needs .* bytes/,
    ],
    [
      "trailing garbage",
      build(f32([0, 8]), new Uint8Array(11)),
      /3 bytes after the last tensor are not described by the header/,
    ],
    [
      "metadata not strings",
      build({ __metadata__: { epoch: 3 } }),
      /__metadata__ must map strings to strings but is \{"epoch":3\}/,
    ],
  ];
  for (const [what, bytes, pattern] of cases) {
    assert.throws(
      () => decodeSafetensors(bytes, "bad.safetensors"),
      (e: unknown) => {
        assert.ok(e instanceof CheckpointError, `${what}: expected CheckpointError, got ${String(e)}`);
        assert.equal(e.file, "bad.safetensors", what);
        assert.match(e.message, /^bad\.safetensors: /, what);
        assert.match(e.message, pattern, what);
        return true;
      },
      what,
    );
  }
});

test("a hostile key such as __proto__ stays plain data", () => {
  const out = decodeSafetensors(build('{"__metadata__":{"__proto__":"x","a":"b"}}'));
  assert.equal(Object.getPrototypeOf(out.metadata), Object.prototype);
  assert.deepEqual(Object.entries(out.metadata), [
    ["__proto__", "x"],
    ["a", "b"],
  ]);
});

test(
  "loading a damaged or missing file names the file and creates no tensor",
  withTmp((dir) => {
    const good = encodeSafetensors({
      a: { dtype: "F32", shape: [2], data: new Uint8Array(8) },
      b: { dtype: "I32", shape: [1], data: new Uint8Array(4) },
    });
    const truncated = join(dir, "truncated.safetensors");
    writeFileSync(truncated, good.subarray(0, good.byteLength - 1));
    throwsCheckpoint(
      () => loadSafetensors(truncated),
      /truncated\.safetensors: tensor "b": data_offsets \[8, 12\] run past the 11 data bytes/,
    );

    const missing = join(dir, "missing.safetensors");
    throwsCheckpoint(() => loadSafetensors(missing), /missing\.safetensors: file not found/);
    throwsCheckpoint(() => loadSafetensors(dir), /is a folder, not a file/);
  }),
);

test("saving rejects what is not a tensor", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-safetensors-"));
  try {
    assert.throws(
      () => saveSafetensors(join(dir, "x.safetensors"), { w: [1, 2] as unknown as Tensor }),
      /Expected a tensor for "w"/,
    );
    assert.deepEqual(readdirSync(dir), [], "nothing is written when an argument is wrong");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  "the metadata is read from the header alone; a damaged or missing file names itself",
  withTmp((dir) => {
    const file = join(dir, "m.safetensors");
    const t = tensor(new Float32Array([1, 2, 3]));
    try {
      saveSafetensors(file, { w: t }, { training: '{"epoch":2,"complete":false}', arch: "x" });
    } finally {
      t.dispose();
    }
    const loaded = loadSafetensors(file);
    for (const x of loaded.tensors.values()) x.dispose();
    assert.deepEqual(readSafetensorsMetadata(file), loaded.metadata);
    // Only the header is needed: the tensors' bytes may be cut off.
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 4));
    assert.deepEqual(readSafetensorsMetadata(file), loaded.metadata);
    writeFileSync(file, bytes.subarray(0, 20));
    assert.throws(
      () => readSafetensorsMetadata(file),
      (e: unknown) => e instanceof CheckpointError && /runs past the end/.test(e.message),
    );
    writeFileSync(file, "junk");
    assert.throws(() => readSafetensorsMetadata(file), /m\.safetensors: not a safetensors file: 4 bytes/);
    assert.throws(() => readSafetensorsMetadata(join(dir, "none")), /none: cannot read the file \(ENOENT\)/);
  }),
);
