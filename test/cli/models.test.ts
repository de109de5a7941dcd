/** `vaeguard models import FILE.tflite`: the summary, --json, --out, and bad files (one line, exit 2). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const bin = join(process.cwd(), "bin", "vaeguard.js");
const fixtures = fileURLToPath(new URL("../../../test/fixtures/tflite/", import.meta.url));

function run(args: string[]) {
  const r = spawnSync(process.execPath, [bin, "models", "import", ...args], {
    encoding: "utf8",
    env: { ...process.env, VAEGUARD_THREADS: "1" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("models import prints ops, parameters, input and output", () => {
  const r = run([join(fixtures, "ops-uint8.tflite")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /operators: +10 \(CONV_2D 2, DEPTHWISE_CONV_2D 1, ADD 2, PAD 1, AVERAGE_POOL_2D 1, MEAN 1, RESHAPE 1, SOFTMAX 1\)/,
  );
  assert.match(r.stdout, /parameters: 240 \(quantised; dequantised to float32\)/);
  assert.match(
    r.stdout,
    /input: +'input' UINT8 \[1, 9, 9, 3\], scale 0\.0078125, zero point 128; takes images x in \[0, 1\] as x \* 1\.99219 - 1/,
  );
  assert.match(r.stdout, /output: +'probs' UINT8 \[1, 8\]; 8 logits \(taken before the final softmax\)/);
});

test("models import --json --out writes a checked copy", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-import-"));
  try {
    const out = join(dir, "sub", "copy.tflite");
    const r = run([join(fixtures, "perchannel-int8.tflite"), "--json", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { opCounts: Record<string, number>; numClasses: number; written: string };
    assert.deepEqual(s.opCounts, { QUANTIZE: 1, CONV_2D: 1, DEPTHWISE_CONV_2D: 1, MEAN: 1, DEQUANTIZE: 1 });
    assert.equal(s.numClasses, 4);
    assert.equal(s.written, out);
    assert.deepEqual(readFileSync(out), readFileSync(join(fixtures, "perchannel-int8.tflite")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad files: one line naming the file, exit code 2, nothing written", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-import-"));
  try {
    const cut = join(dir, "cut.tflite");
    writeFileSync(cut, readFileSync(join(fixtures, "ops-float.tflite")).subarray(0, 1500));
    const cases: [string[], RegExp][] = [
      [[join(fixtures, "unsupported.tflite")], /unsupported\.tflite: unsupported op 'MAX_POOL_2D' \(operator 1\)/],
      [[cut, "--out", join(dir, "never.tflite")], /cut\.tflite: .*(outside|truncated)/],
      [[join(dir, "missing.tflite")], /missing\.tflite: file not found/],
      [[join(fixtures, "golden.json")], /Expected a \.tflite file for models import/],
    ];
    for (const [args, message] of cases) {
      const r = run(args);
      assert.equal(r.code, 2, `${args[0]}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, message);
    }
    assert.equal(existsSync(join(dir, "never.tflite")), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
