/**
 * Child-process script for test/native/binding.test.ts: throws garbage at
 * every function of the raw addon (strings, undefined, plain objects, wrong
 * arity, NaN and huge shapes, disposed and fake tensors) and prints a JSON
 * summary. It must end normally; a crash of the addon would kill it.
 *
 * It does nothing unless started with the argument --fuzz, so a test runner
 * that picks up every file under test/ runs it harmlessly.
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

type Fn = (...args: unknown[]) => unknown;

interface Summary {
  calls: number;
  threw: number;
  returned: number;
  nonErrorThrows: number;
  functions: number;
  neverThrew: string[];
  messagesWithoutName: string[];
  wrappedCalls: number;
  wrappedNotTorchError: string[];
  special: Record<string, string>;
}

/** A small deterministic generator (mulberry32) so that every run makes the same calls. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function isHandle(v: unknown, ctor: new () => unknown): v is { dispose(): void } {
  return typeof v === "object" && v !== null && v instanceof ctor;
}

function freeResult(v: unknown, ctor: new () => unknown): void {
  if (isHandle(v, ctor)) v.dispose();
  else if (Array.isArray(v)) for (const e of v) freeResult(e, ctor);
}

async function main(): Promise<void> {
  const addonPath =
    process.env.VAEGUARD_ADDON ??
    fileURLToPath(new URL("../../../native/build/Release/vaeguard.node", import.meta.url));
  const require = createRequire(import.meta.url);
  const raw = require(addonPath) as Record<string, unknown>;
  const NativeTensor = raw.NativeTensor as new () => { dispose(): void };
  const t = (name: string, ...args: unknown[]) => (raw[name] as Fn)(...args);

  // Valid handles of several kinds, so that calls get past the first argument.
  const f23 = t("fromBuffer", new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3], "float32");
  const i3 = t("fromBuffer", new BigInt64Array([0n, 1n, 2n]), [3], "int64");
  const img = t("rand", [1, 1, 3, 3], "float32");
  const sc = t("ones", [], "float32");
  const leaf = t("ones", [1], "float64");
  t("setRequiresGrad", leaf, true);
  const bool = t("zeros", [3], "bool");
  const disposed = t("ones", [2], "float32") as { dispose(): void };
  disposed.dispose();
  const empty = new NativeTensor();
  const fake = Object.create(NativeTensor.prototype) as unknown;
  const sab = new Float32Array(new SharedArrayBuffer(16));
  const detached = new Float32Array(4);
  structuredClone(detached.buffer, { transfer: [detached.buffer] });

  const values: unknown[] = [
    undefined,
    null,
    "",
    "str",
    "float32",
    "int64",
    "cpu",
    "cuda",
    "mean",
    "nearest",
    "constant",
    {},
    { shape: [2, 3] },
    [],
    [1, "x"],
    [NaN, 2],
    [1e12, 1e12],
    [2 ** 32, 2 ** 32],
    [-1, 3],
    [Infinity],
    [0.5],
    [2, 3],
    [1, 1],
    NaN,
    Infinity,
    -Infinity,
    -1,
    0,
    1,
    2,
    3,
    0.5,
    -0,
    2 ** 53,
    9.3e18,
    10n,
    2n ** 70n,
    true,
    false,
    Symbol("s"),
    () => 1,
    new Float32Array(3),
    new DataView(new ArrayBuffer(4)),
    sab,
    detached,
    new ArrayBuffer(8),
    f23,
    i3,
    img,
    sc,
    leaf,
    bool,
    disposed,
    empty,
    fake,
    [f23, f23],
    [f23, "x"],
    [disposed],
  ];

  const fnNames = Object.keys(raw).filter(
    (k) => typeof raw[k] === "function" && k !== "NativeTensor" && k !== "NativeModule",
  );
  const summary: Summary = {
    calls: 0,
    threw: 0,
    returned: 0,
    nonErrorThrows: 0,
    functions: fnNames.length,
    neverThrew: [],
    messagesWithoutName: [],
    wrappedCalls: 0,
    wrappedNotTorchError: [],
    special: {},
  };
  const threwBy = new Map<string, number>();

  const call = (name: string, args: unknown[]) => {
    summary.calls++;
    try {
      const r = (raw[name] as Fn)(...args);
      summary.returned++;
      freeResult(r, NativeTensor);
    } catch (e) {
      summary.threw++;
      threwBy.set(name, (threwBy.get(name) ?? 0) + 1);
      if (!(e instanceof Error)) summary.nonErrorThrows++;
      else if (!e.message.startsWith(`${name}: `) && summary.messagesWithoutName.length < 20) {
        // Node-API's own checks (for example a fake wrapper) may use their own message.
        summary.messagesWithoutName.push(`${name}: ${e.message}`);
      }
    }
  };

  // 1. Every function with no arguments, each single garbage value, and each value repeated to arity 8.
  for (const name of fnNames) {
    call(name, []);
    for (const v of values) {
      call(name, [v]);
      call(name, new Array(8).fill(v));
      call(name, [f23, v, v, v]);
      call(name, [img, v, [1, 1], [0, 0], [1, 1], false, true, 1]);
    }
  }
  // 2. Random argument lists.
  const rnd = prng(12345);
  const pick = () => values[Math.floor(rnd() * values.length)];
  for (let i = 0; i < 40000; i++) {
    const name = fnNames[Math.floor(rnd() * fnNames.length)];
    const n = Math.floor(rnd() * 10);
    call(name, Array.from({ length: n }, pick));
  }
  // 3. Methods called on the wrong receiver (and on a right one, which must work).
  const own = t("ones", [1], "float32");
  const receivers: [string, unknown][] = [
    ["a plain object", {}],
    ["a fake tensor", fake],
    ["null", null],
    ["a tensor", own],
  ];
  for (const [label, receiver] of receivers) {
    for (const m of ["isDisposed", "dispose"]) {
      try {
        const r = (NativeTensor.prototype as unknown as Record<string, Fn>)[m].call(receiver);
        summary.special[`${m} on ${label}`] = `returned ${String(r)}`;
      } catch (e) {
        summary.special[`${m} on ${label}`] = `${(e as Error).constructor.name}: ${(e as Error).message}`;
      }
    }
  }
  // 4. The named cases of the issue.
  const named: [string, () => unknown][] = [
    ["zeros [1e12, 1e12]", () => t("zeros", [1e12, 1e12], "float32")],
    ["rand [1e12, 1e12]", () => t("rand", [1e12, 1e12], "float32")],
    ["fromBuffer overflowing shape", () => t("fromBuffer", new Float32Array(0), [2 ** 32, 2 ** 32], "float32")],
    ["zeros [NaN]", () => t("zeros", [NaN], "float32")],
    ["reshape [1e12, 1e12]", () => t("reshape", f23, [1e12, 1e12])],
    ["expand [1e12, 1e12]", () => t("expand", f23, [1e12, 1e12, 2, 3])],
    ["add with a string", () => t("add", f23, "1")],
    ["add with undefined", () => t("add", undefined, f23)],
    ["matmul with a plain object", () => t("matmul", f23, { handle: 1 })],
    ["conv2d with one argument", () => t("conv2d", img)],
    ["fake tensor", () => t("neg", fake)],
  ];
  for (const [label, fn] of named) {
    try {
      const r = fn();
      freeResult(r, NativeTensor);
      summary.special[label] = "returned";
    } catch (e) {
      summary.special[label] = `${(e as Error).constructor.name}: ${(e as Error).message}`;
    }
  }
  // 5. The same through src/binding.ts: every failure must arrive as a TorchError.
  const { binding } = await import("../../src/binding.js");
  const { TorchError } = await import("../../src/core/errors.js");
  const wrapped = binding as unknown as Record<string, Fn>;
  for (let i = 0; i < 5000; i++) {
    const name = fnNames[Math.floor(rnd() * fnNames.length)];
    const args = Array.from({ length: Math.floor(rnd() * 8) }, pick);
    summary.wrappedCalls++;
    try {
      freeResult(wrapped[name](...args), NativeTensor);
    } catch (e) {
      if (!(e instanceof TorchError) && summary.wrappedNotTorchError.length < 20) {
        summary.wrappedNotTorchError.push(`${name}: ${String(e)}`);
      }
    }
  }
  summary.neverThrew = fnNames.filter((n) => !threwBy.has(n));
  for (const h of [f23, i3, img, sc, leaf, bool]) (h as { dispose(): void }).dispose();
  process.stdout.write(JSON.stringify(summary) + "\n");
}

if (process.argv.includes("--fuzz")) {
  main().catch((e: unknown) => {
    process.stderr.write(`fuzz script failed: ${String((e as Error)?.stack ?? e)}\n`);
    process.exitCode = 3;
  });
}
