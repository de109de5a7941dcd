/**
 * Tensor creation and the tensor ops (elementwise, comparisons, where, clamp,
 * unary functions, reductions, matmul, shape ops) against PyTorch golden values
 * from test/golden/make_golden.py.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, tidy } from "../../src/core/engine.js";
import {
  Tensor,
  arange,
  cat,
  full,
  ones,
  rand,
  randint,
  randn,
  randperm,
  scalar,
  stack,
  tensor,
  where,
  zeros,
  type DType,
} from "../../src/core/tensor.js";
import { assertClose, assertMatches, leakFree } from "../helpers/assert.js";
import { inputsOf, loadCases, readGolden, type TensorSpec } from "../helpers/golden.js";

const cases = loadCases("ops.json");
const used = new Set<string>();

/** Run `fn` on the inputs of golden case `name` and compare every output. */
function golden(
  name: string,
  fn: (t: Record<string, Tensor>) => Tensor | Record<string, Tensor>,
  tol = { atol: 1e-6, rtol: 1e-5 },
): void {
  used.add(name);
  test(
    name,
    leakFree(() => {
      const c = cases[name];
      assert.ok(c, `no golden case ${name}`);
      tidy(() => {
        const out = fn(inputsOf(c));
        const outs = out instanceof Tensor ? { out } : out;
        assert.deepEqual(Object.keys(outs).sort(), Object.keys(c.expected).sort());
        for (const [k, spec] of Object.entries(c.expected)) assertMatches(outs[k], spec, tol, `${name}.${k}`);
      });
    }),
  );
}

describe("creation", () => {
  const typed: [string, () => ArrayBufferView, DType, number[]][] = [
    ["Float32Array", () => new Float32Array([1.5, -2.25, 3]), "float32", [1.5, -2.25, 3]],
    ["Float64Array", () => new Float64Array([0.1, -1e300, 3]), "float64", [0.1, -1e300, 3]],
    ["BigInt64Array", () => new BigInt64Array([1n, -2n, 2n ** 40n]), "int64", [1, -2, 2 ** 40]],
    ["Int32Array", () => new Int32Array([7, -8, 2 ** 30]), "int32", [7, -8, 2 ** 30]],
    ["Int16Array", () => new Int16Array([-32768, 0, 32767]), "int16", [-32768, 0, 32767]],
    ["Int8Array", () => new Int8Array([-128, 5, 127]), "int8", [-128, 5, 127]],
    ["Uint8Array", () => new Uint8Array([0, 200, 255]), "uint8", [0, 200, 255]],
  ];
  for (const [label, make, dtype, values] of typed) {
    test(
      `tensor from ${label} keeps dtype ${dtype} and values`,
      leakFree(() => {
        const t = tensor(make() as Float32Array, [3]);
        assert.equal(t.dtype, dtype);
        assert.deepEqual(t.shape, [3]);
        assert.deepEqual(t.toArray(), values);
        assert.equal(t.dataSync().constructor.name, dtype === "int64" ? "BigInt64Array" : label);
        t.dispose();
      }),
    );
  }

  test(
    "tensor from a typed array with a shape, and a dtype conversion",
    leakFree(() => {
      tidy(() => {
        const t = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
        assert.deepEqual(t.shape, [2, 3]);
        const i = tensor(new Float32Array([1.7, -1.7, 2.5]), [3], { dtype: "int32" });
        assert.equal(i.dtype, "int32");
        assert.deepEqual(i.toArray(), [1, -1, 2]);
        const b = tensor(new Uint8Array([0, 1, 2]), [3], { dtype: "bool" });
        assert.equal(b.dtype, "bool");
        assert.deepEqual(b.toArray(), [0, 1, 1]);
        const h = tensor(new Float32Array([0.5, -2]), [2], { dtype: "float16" });
        assert.equal(h.dtype, "float16");
        assert.deepEqual(h.to("float32").toArray(), [0.5, -2]);
        const bf = tensor(new Float32Array([1, 3]), [2], { dtype: "bfloat16" });
        assert.equal(bf.dtype, "bfloat16");
        assert.deepEqual(bf.to("float64").toArray(), [1, 3]);
        // A typed array that views part of a larger buffer.
        const big = new Float32Array([9, 9, 1, 2, 9]);
        assert.deepEqual(tensor(big.subarray(2, 4)).toArray(), [1, 2]);
      });
    }),
  );

  test(
    "tensor from nested arrays infers the shape; numbers and booleans become float32",
    leakFree(() => {
      tidy(() => {
        const t = tensor([
          [
            [1, 2],
            [3, 4],
          ],
          [
            [5, 6],
            [7, 8],
          ],
        ]);
        assert.deepEqual(t.shape, [2, 2, 2]);
        assert.equal(t.dtype, "float32");
        assert.deepEqual(t.toArray(), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert.deepEqual(tensor([[true, false]]).toArray(), [1, 0]);
        const s = tensor(2.5);
        assert.deepEqual(s.shape, []);
        assert.equal(s.item(), 2.5);
        assert.deepEqual(scalar(3, { dtype: "int64" }).shape, []);
        assert.equal(tensor([1, 2, 3, 4], [2, 2], { dtype: "int64" }).dtype, "int64");
        assert.deepEqual(tensor([1, 2, 3, 4], [2, 2]).shape, [2, 2]);
        assert.deepEqual(tensor([]).shape, [0]);
        assert.deepEqual(tensor([0.1], [1], { dtype: "float64" }).toArray(), [0.1]);
      });
    }),
  );

  test(
    "zeros, ones, full",
    leakFree(() => {
      tidy(() => {
        const z = zeros([2, 3]);
        assert.deepEqual(z.shape, [2, 3]);
        assert.equal(z.dtype, "float32");
        assert.deepEqual(z.toArray(), [0, 0, 0, 0, 0, 0]);
        const o = ones([4], { dtype: "int32" });
        assert.equal(o.dtype, "int32");
        assert.deepEqual(o.toArray(), [1, 1, 1, 1]);
        const f = full([2, 2], -1.5, { dtype: "float64" });
        assert.equal(f.dtype, "float64");
        assert.deepEqual(f.toArray(), [-1.5, -1.5, -1.5, -1.5]);
        const fb = full([3], true, { dtype: "bool" });
        assert.deepEqual(fb.toArray(), [1, 1, 1]);
        assert.deepEqual(zeros([0, 3]).shape, [0, 3]);
        assert.deepEqual(zeros([]).shape, []);
      });
    }),
  );

  test(
    "arange: integer and fractional steps, one-argument form",
    leakFree(() => {
      tidy(() => {
        const a = arange(5);
        assert.equal(a.dtype, "int64");
        assert.deepEqual(a.toArray(), [0, 1, 2, 3, 4]);
        assert.deepEqual(arange(2, 11, 3).toArray(), [2, 5, 8]);
        assert.deepEqual(arange(5, 0, -2).toArray(), [5, 3, 1]);
        const f = arange(0, 1, 0.25);
        assert.equal(f.dtype, "float32");
        assert.deepEqual(f.toArray(), [0, 0.25, 0.5, 0.75]);
        assertClose(arange(1, 2, 0.3).toArray(), [1, 1.3, 1.6, 1.9], { atol: 1e-6 });
        assert.equal(arange(0, 3, 1, { dtype: "float64" }).dtype, "float64");
      });
    }),
  );

  test(
    "rand lies in [0, 1) with a spread like uniform",
    leakFree(() => {
      const v = tidy(() => rand([10000]).toArray());
      assert.ok(v.every((x) => x >= 0 && x < 1));
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const varc = v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length;
      assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`);
      assert.ok(Math.abs(varc - 1 / 12) < 0.01, `variance ${varc}`);
      assert.ok(Math.min(...v) < 0.01 && Math.max(...v) > 0.99);
      assert.equal(
        tidy(() => rand([3], { dtype: "float64" }).dtype),
        "float64",
      );
    }),
  );

  test(
    "randn has mean 0 and standard deviation 1",
    leakFree(() => {
      const v = tidy(() => randn([20000]).toArray());
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
      assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
      assert.ok(Math.abs(sd - 1) < 0.03, `sd ${sd}`);
      const beyond2 = v.filter((x) => Math.abs(x) > 2).length / v.length;
      assert.ok(Math.abs(beyond2 - 0.0455) < 0.01, `P(|x|>2) = ${beyond2}`);
    }),
  );

  test(
    "randint stays within [low, high) and reaches both ends",
    leakFree(() => {
      const t = randint(-3, 4, [5000]);
      assert.equal(t.dtype, "int64");
      const v = t.toArray();
      t.dispose();
      assert.ok(v.every((x) => Number.isInteger(x) && x >= -3 && x < 4));
      assert.deepEqual(
        [...new Set(v)].sort((a, b) => a - b),
        [-3, -2, -1, 0, 1, 2, 3],
      );
      const p = randperm(10);
      assert.deepEqual(
        p.toArray().sort((a, b) => a - b),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      p.dispose();
    }),
  );

  test(
    "manualSeed makes random tensors reproducible and equal to PyTorch's",
    leakFree(() => {
      const g = readGolden<{ cases: { seed1234: Record<string, TensorSpec> } }>("random.json").cases.seed1234;
      const draw = () =>
        tidy(() => ({
          rand5: rand([5]).toArray(),
          randn5: randn([5]).toArray(),
          randn20: randn([20]).toArray(),
          randint: randint(0, 10, [12]).toArray(),
          rand64: rand([2, 3], { dtype: "float64" }).toArray(),
        }));
      manualSeed(1234);
      const first = draw();
      manualSeed(1234);
      const second = draw();
      assert.deepEqual(second, first);
      manualSeed(1235);
      assert.notDeepEqual(draw().rand5, first.rand5);
      // Same generator as PyTorch's CPU generator, so the same numbers.
      assertClose(first.rand5, g.rand5.data, { atol: 0, rtol: 0 }, "rand");
      assertClose(first.randn5, g.randn5.data, { atol: 1e-7, rtol: 0 }, "randn (scalar path)");
      assertClose(first.randn20, g.randn20.data, { atol: 1e-6, rtol: 0 }, "randn (vectorised path)");
      assertClose(first.randint, g.randint_0_10.data, { atol: 0, rtol: 0 }, "randint");
      assertClose(first.rand64, g.rand_2x3_float64.data, { atol: 0, rtol: 0 }, "rand float64");
    }),
  );
});

describe("elementwise and scalar arithmetic", () => {
  golden("add_broadcast", ({ a, b }) => a.add(b));
  golden("sub_broadcast", ({ a, b }) => a.sub(b));
  golden("mul_broadcast", ({ a, b }) => a.mul(b));
  golden("div_broadcast", ({ a, d }) => a.div(d));
  golden("add_scalar", ({ a }) => a.add(2.5));
  golden("sub_scalar", ({ a }) => a.sub(1.5));
  golden("mul_scalar", ({ a }) => a.mul(-3));
  golden("div_scalar", ({ a }) => a.div(4));
  golden("pow_scalar", ({ p }) => p.pow(2.5));
  golden("pow_tensor", ({ p, q }) => p.pow(q));
  golden("maximum_tensor", ({ a, b }) => a.maximum(b));
  golden("minimum_tensor", ({ a, b }) => a.minimum(b));
  golden("maximum_scalar", ({ a }) => a.maximum(0.1));
  golden("neg", ({ a }) => a.neg());

  test(
    "integer arithmetic stays integer; mixing with floats promotes",
    leakFree(() => {
      tidy(() => {
        const i = tensor([1, 2, 3], [3], { dtype: "int64" });
        assert.equal(i.add(1).dtype, "int64");
        assert.deepEqual(i.mul(i).toArray(), [1, 4, 9]);
        assert.equal(i.add(ones([3])).dtype, "float32");
        assert.equal(i.div(2).dtype, "float32");
        assert.deepEqual(i.div(2).toArray(), [0.5, 1, 1.5]);
        assert.deepEqual(tensor([-7, 7]).remainder(3).toArray(), [2, 1]);
        // An integral JS number acts as PyTorch's integer literal, a fractional one as a float literal.
        assert.equal(i.pow(2).dtype, "int64");
        assert.equal(i.maximum(2).dtype, "int64");
        assert.deepEqual(i.sub(0.5).toArray(), [0.5, 1.5, 2.5]);
        assert.equal(i.sub(0.5).dtype, "float32");
        assert.equal(i.add_(1), i);
        assert.deepEqual(i.toArray(), [2, 3, 4]);
        assert.equal(tensor([1, 0], [2], { dtype: "bool" }).add(1).dtype, "int64");
        assert.equal(tensor([1, 2], [2], { dtype: "float16" }).mul(3).dtype, "float16");
        // -0 stays a float: 1 / -0 is -Infinity.
        assert.equal(1 / zeros([1]).add(-0).item(), Infinity);
        assert.equal(1 / full([1], -0).item(), -Infinity);
      });
    }),
  );

  test(
    "in-place ops change the tensor itself and return it",
    leakFree(() => {
      tidy(() => {
        const t = tensor([1, 2, 3]);
        assert.equal(t.add_(1), t);
        assert.deepEqual(t.toArray(), [2, 3, 4]);
        t.mul_(2)
          .sub_(tensor([1, 1, 1]), 2)
          .div_(2);
        assert.deepEqual(t.toArray(), [1, 2, 3]);
        t.addcmul_(tensor([1, 2, 3]), tensor([2, 2, 2]), 0.5);
        assert.deepEqual(t.toArray(), [2, 4, 6]);
        t.clamp_(3, 5);
        assert.deepEqual(t.toArray(), [3, 4, 5]);
        t.fill_(4).sqrt_();
        assert.deepEqual(t.toArray(), [2, 2, 2]);
        t.zero_();
        assert.deepEqual(t.toArray(), [0, 0, 0]);
      });
    }),
  );
});

describe("comparisons and where", () => {
  for (const op of ["eq", "ne", "lt", "le", "gt", "ge"] as const) {
    golden(op, ({ a, b }) => a[op](b));
  }
  golden("gt_scalar", ({ a }) => a.gt(1.5));
  golden("eq_scalar", ({ a }) => a.eq(2));
  golden("where_tensors", ({ c, a, b }) => where(c, a, b));
  golden("where_tensor_scalar", ({ c, a }) => where(c, a, 0));
  golden("where_scalars", ({ c }) => where(c, 1, -1));

  test(
    "logical ops on booleans",
    leakFree(() => {
      tidy(() => {
        const a = tensor([1, 1, 0, 0], [4], { dtype: "bool" });
        const b = tensor([1, 0, 1, 0], [4], { dtype: "bool" });
        assert.deepEqual(a.logicalAnd(b).toArray(), [1, 0, 0, 0]);
        assert.deepEqual(a.logicalOr(b).toArray(), [1, 1, 1, 0]);
        assert.deepEqual(a.logicalNot().toArray(), [0, 0, 1, 1]);
        assert.equal(a.logicalAnd(b).dtype, "bool");
        assert.equal(a.any().item(), 1);
        assert.equal(a.all().item(), 0);
      });
    }),
  );
});

describe("clamp", () => {
  golden("clamp_numbers", ({ a }) => a.clamp(-0.5, 0.5));
  golden("clamp_min_only", ({ a }) => a.clamp(0));
  golden("clamp_max_only", ({ a }) => a.clamp(null, 0.25));
  golden("clamp_tensors", ({ a, lo, hi }) => a.clamp(lo, hi));
  golden("clamp_tensor_min_number_max", ({ a, lo }) => a.clamp(lo, 0.5));
});

describe("unary functions", () => {
  golden("sign", ({ u }) => u.sign());
  golden("abs", ({ u }) => u.abs());
  golden("exp", ({ a }) => a.exp());
  golden("log", ({ p }) => p.log());
  golden("sqrt", ({ p }) => p.sqrt());
  golden("relu", ({ u }) => u.relu());
  golden("sigmoid", ({ u }) => u.sigmoid());
  golden("tanh", ({ u }) => u.tanh());
  golden("leaky_relu_default", ({ u }) => u.leakyRelu());
  golden("leaky_relu_0.2", ({ u }) => u.leakyRelu(0.2));
  golden("softplus_default", ({ u }) => u.softplus());
  golden("softplus_beta2_threshold5", ({ u }) => u.softplus(2, 5));
});

describe("reductions", () => {
  golden("sum_all", ({ r }) => r.sum());
  golden("sum_dim1", ({ r }) => r.sum(1));
  golden("sum_dims02_keepdim", ({ r }) => r.sum([0, 2], true));
  golden("mean_all", ({ r }) => r.mean());
  golden("mean_dim_neg1", ({ r }) => r.mean(-1));
  golden("mean_dims01_keepdim", ({ r }) => r.mean([0, 1], true));
  golden("max_all", ({ r }) => r.max());
  golden("max_dim1_keepdim", ({ r }) => r.max(1, true));
  golden("max_dims12", ({ r }) => r.max([1, 2]));
  golden("min_all", ({ r }) => r.min());
  golden("min_dim0", ({ r }) => r.min(0));
  golden("max_dim_values_indices", ({ r }) => r.maxDim(2));
  golden("argmax_all", ({ r }) => r.argmax());
  golden("argmax_dim2", ({ r }) => r.argmax(2));
  golden("argmax_dim1_keepdim", ({ r }) => r.argmax(1, true));
  golden("argmin_dim0", ({ r }) => r.argmin(0));
  golden("norm2_per_sample", ({ x }) => x.norm(2, [1, 2, 3]));
  golden("norminf_per_sample", ({ x }) => x.norm(Infinity, [1, 2, 3]));
  golden("norm2_per_sample_keepdim", ({ x }) => x.norm(2, [1, 2, 3], true));
  golden("norm2_all", ({ x }) => x.norm());
  golden("norm1_dim1", ({ x }) => x.norm(1, 1));
});

describe("matmul", () => {
  golden("matmul_2d", ({ a, b }) => a.matmul(b));
  golden("matmul_batched", ({ a, b }) => a.matmul(b));
  golden("matmul_vector", ({ a, v }) => a.matmul(v));
  golden("matmul_batched_both", ({ a, b }) => a.matmul(b));
});

describe("shape ops", () => {
  const exact = { atol: 0, rtol: 0 };
  golden("reshape_infer", ({ s }) => s.reshape(4, -1), exact);
  golden("permute", ({ s }) => s.permute(2, 0, 1), exact);
  golden("transpose", ({ s }) => s.transpose(0, 2), exact);
  golden("flatten_from1", ({ s }) => s.flatten(1), exact);
  golden("flatten_all", ({ s }) => s.flatten(), exact);
  golden("flatten_0_1", ({ s }) => s.flatten(0, 1), exact);
  golden("cat_dim1", ({ s, s2 }) => cat([s, s2], 1), exact);
  golden("cat_dim0", ({ s }) => cat([s, s.add(50)], 0), exact);
  golden("cat_dim_neg1", ({ s }) => cat([s, s.narrow(2, 0, 1)], -1), exact);
  golden("stack_dim0", ({ s }) => stack([s, s.mul(2)], 0), exact);
  golden("stack_dim2", ({ s }) => stack([s, s.mul(2), s.mul(3)], 2), exact);
  golden("narrow", ({ s }) => s.narrow(2, 1, 2), exact);
  golden("slice_step2", ({ s }) => s.slice(1, 0, null, 2), exact);
  golden("slice_negative", ({ s }) => s.slice(2, -3, -1), exact);
  golden("slice_start_end_step", ({ s }) => s.slice(2, 1, 4, 2), exact);
  golden("index_select", ({ s, i }) => s.indexSelect(1, i), exact);
  golden("pad_constant", ({ s }) => s.pad([1, 2], "constant", 0.5), exact);
  golden("pad_constant_2d", ({ s }) => s.pad([1, 0, 0, 2]), exact);
  golden("pad_reflect", ({ s }) => s.unsqueeze(0).pad([2, 1, 1, 1], "reflect"), exact);
  golden("pad_replicate", ({ s }) => s.unsqueeze(0).pad([1, 1, 2, 0], "replicate"), exact);
  golden("pad_circular", ({ s }) => s.unsqueeze(0).pad([1, 2, 1, 0], "circular"), exact);
  golden("expand", ({ e }) => e.expand(2, 3, 4), exact);
  golden("expand_keep", ({ e }) => e.expand([-1, 5]), exact);
  golden("squeeze_all", ({ t }) => t.squeeze(), exact);
  golden("squeeze_dim2", ({ t }) => t.squeeze(2), exact);
  golden("squeeze_noop_dim1", ({ t }) => t.squeeze(1), exact);
  golden("unsqueeze_1", ({ s }) => s.unsqueeze(1), exact);
  golden("unsqueeze_neg1", ({ s }) => s.unsqueeze(-1), exact);
  golden("contiguous_of_transpose", ({ s }) => s.transpose(1, 2).contiguous(), exact);
  golden("clone", ({ s }) => s.clone(), exact);

  test(
    "clone and contiguous copy; views share storage",
    leakFree(() => {
      tidy(() => {
        const s = tensor([1, 2, 3, 4], [2, 2]);
        const c = s.clone();
        const v = s.reshape(4);
        s.add_(10);
        assert.deepEqual(c.toArray(), [1, 2, 3, 4]);
        assert.deepEqual(v.toArray(), [11, 12, 13, 14]);
        const tcont = s.transpose(0, 1).contiguous();
        s.zero_();
        assert.deepEqual(tcont.toArray(), [11, 13, 12, 14]);
      });
    }),
  );

  test(
    "split, select, flip, repeat, gather, maskedFill, topk, cumsum",
    leakFree(() => {
      tidy(() => {
        const s = arange(6).reshape(2, 3);
        const parts = s.split(2, 1);
        assert.deepEqual(
          parts.map((p) => p.shape),
          [
            [2, 2],
            [2, 1],
          ],
        );
        assert.deepEqual(parts[1].toArray(), [2, 5]);
        assert.deepEqual(s.select(0, 1).toArray(), [3, 4, 5]);
        assert.deepEqual(s.flip(1).toArray(), [2, 1, 0, 5, 4, 3]);
        assert.deepEqual(s.repeat(1, 2).toArray(), [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]);
        assert.deepEqual(s.gather(1, tensor([[2], [0]], undefined, { dtype: "int64" })).toArray(), [2, 3]);
        assert.deepEqual(s.maskedFill(s.gt(3), -1).toArray(), [0, 1, 2, 3, -1, -1]);
        const k = tensor([3, 1, 4, 1, 5]).topk(2);
        assert.deepEqual(k.values.toArray(), [5, 4]);
        assert.deepEqual(k.indices.toArray(), [4, 2]);
        assert.deepEqual(tensor([1, 2, 3]).cumsum(0).toArray(), [1, 3, 6]);
      });
    }),
  );
});

test("every golden case of ops.json is exercised", () => {
  // golden() registers its case name when the suites above are defined.
  const missing = Object.keys(cases).filter((k) => !used.has(k));
  assert.deepEqual(missing, []);
});
