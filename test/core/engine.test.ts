/**
 * Tensor lifetime (tidy, keep, dispose, the live-tensor counter, the GC
 * safety net) and grad mode (noGrad, enableGrad).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate as nextTurn } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  dispose,
  enableGrad,
  enableGradAsync,
  getNumThreads,
  isGradEnabled,
  iterateAsync,
  keep,
  memory,
  noGrad,
  noGradAsync,
  setNumThreads,
  tidy,
  tidyAsync,
} from "../../src/core/engine.js";
import { ArgumentError, DisposedError, TorchError, VaeguardError } from "../../src/core/errors.js";
import { availableParallelism } from "node:os";
import { Tensor, ones, tensor, zeros } from "../../src/core/tensor.js";
import { binding } from "../../src/binding.js";
import { assertThrowsWith, leakFree } from "../helpers/assert.js";

const live = () => memory().numTensors;

describe("grad mode", () => {
  test(
    "noGrad turns recording off inside and restores it after",
    leakFree(() => {
      assert.equal(isGradEnabled(), true);
      tidy(() => {
        const x = ones([2]).requiresGrad_();
        const y = noGrad(() => {
          assert.equal(isGradEnabled(), false);
          return x.mul(2);
        });
        assert.equal(y.requiresGrad, false);
        assert.equal(y.gradFn, null);
        const z = x.mul(2);
        assert.equal(z.requiresGrad, true);
        assert.match(z.gradFn ?? "", /^MulBackward/);
      });
      assert.equal(isGradEnabled(), true);
    }),
  );

  test("noGrad restores the previous mode when its function throws", () => {
    assert.throws(() =>
      noGrad(() => {
        throw new Error("boom");
      }),
    );
    assert.equal(isGradEnabled(), true);
  });

  test("enableGrad inside noGrad turns recording back on and restores off, also on a throw", () => {
    noGrad(() => {
      const inner = enableGrad(() => isGradEnabled());
      assert.equal(inner, true);
      assert.equal(isGradEnabled(), false);
      assert.throws(
        () =>
          enableGrad(() => {
            throw new RangeError("inner");
          }),
        RangeError,
      );
      assert.equal(isGradEnabled(), false);
      // Nested noGrad inside noGrad stays off afterwards.
      noGrad(() => undefined);
      assert.equal(isGradEnabled(), false);
    });
    assert.equal(isGradEnabled(), true);
    assert.throws(() =>
      enableGrad(() => {
        throw new Error("x");
      }),
    );
    assert.equal(isGradEnabled(), true);
  });

  test("noGrad and enableGrad return their function's value", () => {
    assert.equal(
      noGrad(() => 42),
      42,
    );
    assert.deepEqual(
      enableGrad(() => ({ a: 1 })),
      { a: 1 },
    );
  });
});

describe("tidy", () => {
  test("frees every tensor created inside except the returned one", () => {
    const start = live();
    let inner: Tensor | undefined;
    const out = tidy(() => {
      inner = ones([3]);
      const b = inner.add(1);
      const c = b.mul(2);
      return c.sub(1);
    });
    assert.equal(live(), start + 1);
    assert.equal(inner!.isDisposed, true);
    assert.equal(out.isDisposed, false);
    assert.deepEqual(out.toArray(), [3, 3, 3]);
    out.dispose();
    assert.equal(live(), start);
  });

  test("keeps tensors returned in arrays, plain objects and Maps, frees the rest", () => {
    const start = live();
    const r = tidy(() => {
      const a = ones([1]);
      const b = zeros([1]);
      zeros([5]);
      const m = new Map([["m", ones([2])]]);
      return { list: [a, { deep: b }], m, n: 3, s: "text" };
    });
    assert.equal(live(), start + 3);
    assert.equal(r.n, 3);
    assert.deepEqual((r.list[0] as Tensor).toArray(), [1]);
    dispose(r);
    assert.equal(live(), start);
  });

  test("nested scopes: the inner result moves to the outer scope", () => {
    const start = live();
    let innerResult: Tensor | undefined;
    const out = tidy(() => {
      innerResult = tidy(() => {
        ones([1]);
        return ones([2]);
      });
      assert.equal(live(), start + 1);
      assert.equal(innerResult.isDisposed, false);
      return tidy(() => innerResult!.add(1));
    });
    // The inner result was not returned from the outer scope, so it is gone.
    assert.equal(innerResult!.isDisposed, true);
    assert.equal(live(), start + 1);
    assert.deepEqual(out.toArray(), [2, 2]);
    out.dispose();
    assert.equal(live(), start);
  });

  test("a throw inside tidy frees everything created inside, and the error propagates", () => {
    const start = live();
    const made: Tensor[] = [];
    assert.throws(
      () =>
        tidy(() => {
          made.push(ones([4]), zeros([4]));
          tidy(() => made.push(ones([1])));
          throw new Error("failure inside tidy");
        }),
      /failure inside tidy/,
    );
    assert.equal(live(), start);
    assert.ok(made.every((t) => t.isDisposed));
  });

  test("a failing op inside tidy frees everything", () => {
    const start = live();
    assert.throws(() =>
      tidy(() => {
        const a = ones([2, 3]);
        return a.matmul(ones([4, 2]));
      }),
    );
    assert.equal(live(), start);
  });

  test("keep() exempts a tensor from every enclosing scope", () => {
    const start = live();
    let kept: Tensor | undefined;
    tidy(() => {
      tidy(() => {
        kept = keep(ones([3]));
        ones([3]);
      });
    });
    assert.equal(live(), start + 1);
    assert.equal(kept!.isDisposed, false);
    kept!.dispose();
    assert.equal(live(), start);
  });

  test("tidy refuses an async function and frees what it created synchronously", async () => {
    const start = live();
    assert.throws(
      () =>
        tidy(async () => {
          ones([1]);
          await nextTurn();
        }),
      VaeguardError,
    );
    await nextTurn();
    assert.equal(live(), start);
  });

  test("tensors created outside any scope live until disposed", () => {
    const start = live();
    const t = ones([2]);
    tidy(() => t.add(1).dispose());
    assert.equal(t.isDisposed, false);
    assert.equal(live(), start + 1);
    t.dispose();
    assert.equal(live(), start);
  });
});

describe("tidyAsync", () => {
  test("the scope survives await: tensors made after an await are freed, the result moves out", async () => {
    const before = live();
    const out = await tidyAsync(async () => {
      const a = ones([3]);
      await nextTurn();
      const b = a.add(1);
      await nextTurn();
      return b.mul(2);
    });
    assert.equal(live(), before + 1);
    assert.deepEqual(out.toArray(), [4, 4, 4]);
    out.dispose();
    assert.equal(live(), before);
  });

  test("a rejection frees everything created inside, across awaits, and propagates", async () => {
    const before = live();
    await assert.rejects(
      tidyAsync(async () => {
        ones([2]);
        await nextTurn();
        ones([2]).add(1);
        throw new VaeguardError("injected failure");
      }),
      /injected failure/,
    );
    assert.equal(live(), before);
  });

  test("nested: the inner result moves to the outer scope; sync tidy inside works on the async scope", async () => {
    const before = live();
    const out = await tidyAsync(async () => {
      const inner = await tidyAsync(async () => {
        await nextTurn();
        return tidy(() => ones([2]).mul(3));
      });
      assert.equal(live(), before + 1);
      await nextTurn();
      return inner.add(1);
    });
    assert.equal(live(), before + 1);
    assert.deepEqual(out.toArray(), [4, 4]);
    out.dispose();
  });

  test("concurrent scopes do not collect each other's tensors", async () => {
    const before = live();
    const slow = tidyAsync(async () => {
      const a = ones([2]);
      await nextTurn();
      await nextTurn();
      // `a` must still be alive although the fast scope closed in between.
      return a.add(1);
    });
    const fast = tidyAsync(async () => {
      await nextTurn();
      return zeros([2]);
    });
    const [s, f] = await Promise.all([slow, fast]);
    assert.deepEqual(s.toArray(), [2, 2]);
    assert.deepEqual(f.toArray(), [0, 0]);
    dispose([s, f]);
    assert.equal(live(), before);
  });

  test("a tensor created outside and returned from inside is left alone", async () => {
    const x = ones([2]);
    const before = live();
    const out = await tidyAsync(async () => {
      await nextTurn();
      return x;
    });
    assert.equal(out, x);
    assert.equal(live(), before);
    x.dispose();
  });
});

describe("iterateAsync", () => {
  test("holds one iterate at a time and never frees the caller's initial value", async () => {
    const x = zeros([2]);
    const before = live();
    const counts: number[] = [];
    const out = await iterateAsync(x, 4, async (current, i) => {
      counts.push(live());
      await nextTurn();
      return current.add(i + 1);
    });
    // Each step starts with x and at most the previous iterate alive.
    assert.deepEqual(counts, [before, before + 1, before + 1, before + 1]);
    assert.deepEqual(out.toArray(), [10, 10]);
    assert.equal(live(), before + 1);
    out.dispose();
    assert.deepEqual(x.toArray(), [0, 0]);
    x.dispose();
  });

  test("a step may return its input unchanged; a failing step frees the last iterate", async () => {
    const x = zeros([2]);
    const before = live();
    const same = await iterateAsync(x, 3, async (current) => current);
    assert.equal(same, x);
    await assert.rejects(
      iterateAsync(x, 3, async (current, i) => {
        if (i === 2) throw new VaeguardError("injected failure");
        return current.add(1);
      }),
      /injected failure/,
    );
    assert.equal(live(), before);
    x.dispose();
  });

  test("objects of tensors: tensors the next value still holds survive", async () => {
    const before = live();
    const out = await tidyAsync(() =>
      iterateAsync({ a: ones([1]), b: ones([1]) }, 3, async (v) => ({ a: v.a.add(1), b: v.b })),
    );
    assert.deepEqual([out.a.toArray(), out.b.toArray()], [[4], [1]]);
    dispose(out);
    assert.equal(live(), before);
  });
});

describe("grad mode across await", () => {
  test("noGradAsync / enableGradAsync hold the mode until the promise settles, then restore it", async () => {
    assert.equal(isGradEnabled(), true);
    const seen = await noGradAsync(async () => {
      await nextTurn();
      const off = isGradEnabled();
      const on = await enableGradAsync(async () => {
        await nextTurn();
        return isGradEnabled();
      });
      return [off, on, isGradEnabled()];
    });
    assert.deepEqual(seen, [false, true, false]);
    assert.equal(isGradEnabled(), true);
    await assert.rejects(
      noGradAsync(async () => {
        await nextTurn();
        throw new VaeguardError("injected failure");
      }),
      /injected failure/,
    );
    assert.equal(isGradEnabled(), true);
  });

  test("the sync helpers refuse an async function instead of restoring the mode too early", () => {
    assertThrowsWith(
      () => noGrad(async () => 1),
      VaeguardError,
      /noGrad\(\) cannot wrap an async function: use noGradAsync\(\)/,
    );
    assertThrowsWith(() => enableGrad(async () => 1), VaeguardError, /use enableGradAsync\(\)/);
    assert.equal(isGradEnabled(), true);
  });
});

describe("dispose", () => {
  test("is idempotent and counts each tensor once", () => {
    const start = live();
    const bytes = memory().numBytes;
    const t = ones([10]);
    assert.equal(live(), start + 1);
    assert.equal(memory().numBytes, bytes + 40);
    t.dispose();
    t.dispose();
    dispose([t, t]);
    assert.equal(live(), start);
    assert.equal(memory().numBytes, bytes);
    assert.equal(t.isDisposed, true);
    assert.equal(t.toString(), "Tensor(disposed)");
  });

  test(
    "using a disposed tensor throws DisposedError",
    leakFree(() => {
      const t = tensor([1, 2, 3]);
      const other = tensor([1, 2, 3]);
      t.dispose();
      const uses: [string, () => unknown][] = [
        ["add", () => t.add(1)],
        ["as an argument", () => other.add(t)],
        ["toArray", () => t.toArray()],
        ["item", () => t.item()],
        ["dtype", () => t.dtype],
        ["reshape", () => t.reshape(3, 1)],
        ["requiresGrad_", () => t.requiresGrad_()],
        ["backward", () => tidy(() => t.backward(ones([3])))],
        ["add_", () => t.add_(1)],
      ];
      for (const [what, use] of uses) {
        assert.throws(use, DisposedError, what);
      }
      assert.throws(() => other.add(t), /disposed/);
      other.dispose();
    }),
  );

  test("the raw binding rejects a disposed handle with a TorchError, not a crash", () => {
    const h = binding.ones([2], "float32");
    h.dispose();
    h.dispose();
    assert.equal(h.isDisposed(), true);
    assertThrowsWith(() => binding.add(h, 1), TorchError, /add: tensor for argument 0 \(input\) was disposed/);
  });

  test("dispose() of a nested value frees every tensor in it", () => {
    const start = live();
    const value = { a: ones([1]), b: [zeros([1]), { c: ones([1]) }], d: new Map([["e", ones([1])]]) };
    assert.equal(live(), start + 4);
    dispose(value);
    assert.equal(live(), start);
  });
});

describe("memory counter and GC safety net", () => {
  test(
    "views and in-place ops are counted as the handles they are",
    leakFree(() => {
      const start = live();
      const a = ones([4]);
      const v = a.reshape(2, 2);
      a.add_(1);
      assert.equal(live(), start + 2);
      v.dispose();
      assert.deepEqual(a.toArray(), [2, 2, 2, 2]);
      a.dispose();
    }),
  );

  test("a tensor dropped without dispose() is freed by the garbage collector", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const start = live();
    (() => {
      for (let i = 0; i < 50; i++) ones([1000]);
    })();
    assert.equal(live(), start + 50);
    for (let i = 0; i < 20 && live() > start; i++) {
      gc();
      await nextTurn();
    }
    assert.equal(live(), start);
  });
});

describe("threads", () => {
  test("setNumThreads sets libtorch's intra-op threads and validates its argument", () => {
    const before = getNumThreads();
    try {
      setNumThreads(1);
      assert.equal(getNumThreads(), 1);
      const cores = availableParallelism();
      assertThrowsWith(
        () => setNumThreads(0),
        ArgumentError,
        `Expected integer between 1 and ${4 * cores} for threads but received 0 (at most 4 threads per core, ${cores} cores)`,
      );
      assertThrowsWith(() => setNumThreads(1.5), VaeguardError, /received 1.5/);
      // Bounded: a million threads hung the machine before the cap.
      assertThrowsWith(() => setNumThreads(4 * cores + 1), ArgumentError, /between 1 and \d+ for threads but received/);
      assertThrowsWith(() => setNumThreads(1_000_000), ArgumentError, /received 1000000 \(at most 4 threads per core/);
      assert.equal(getNumThreads(), 1);
    } finally {
      setNumThreads(before);
    }
    assert.equal(getNumThreads(), before);
  });
});
