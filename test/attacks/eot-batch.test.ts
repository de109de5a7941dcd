/**
 * Batched EOT: the K draws of lossAndGradient / evaluateObjective go through
 * the model as one batch of K x N images (split under eotBatchValues) instead
 * of K passes. These tests compare it with the one-pass-per-draw path
 * (eotBatchValues: 0), which is the computation before batching.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { enableGrad, manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { Tensor, grad, rand, randn, stack, tensor, cat } from "../../src/core/tensor.js";
import {
  DEFAULT_EOT_BATCH_VALUES,
  attackObjective,
  eotCopiesPerPass,
  eotNoisePerRow,
  evaluateObjective,
  getEotBatchValues,
  lossAndGradient,
  setEotBatchValues,
} from "../../src/attacks/gradient.js";
import { PGD } from "../../src/attacks/pgd.js";
import { SquareAttack } from "../../src/attacks/square.js";
import { VaeDefense } from "../../src/defenses/vae.js";
import { PatchVaeDefense } from "../../src/defenses/patch-vae.js";
import { DefendedModel } from "../../src/defenses/defended-model.js";
import { Module } from "../../src/nn/module.js";
import { Flatten, Linear, ReLU, Sequential } from "../../src/nn/layers.js";
import type { AttackableModel } from "../../src/attacks/types.js";
import { LinearModel, Recorder } from "./helpers.js";
import { leakFree } from "../helpers/assert.js";
import { tinyVae } from "../defenses/helpers.js";

const W3 = [
  [0.5, -1, 0.25, 2],
  [-1, 0.5, 1, 0],
  [0.3, 0.2, -0.7, 1],
];

/** A small MLP on 1x8x8 images, random weights, in eval mode. */
function mlp(seed: number, classes = 4): Sequential {
  manualSeed(seed);
  const m = new Sequential(new Flatten(), new Linear(64, 16), new ReLU(), new Linear(16, classes));
  m.eval();
  return m;
}

/** Largest |a - b| relative to the largest |b|. */
function relDiff(a: Tensor, b: Tensor): number {
  return noGrad(() => tidy(() => a.sub(b).abs().max().item() / Math.max(b.abs().max().item(), 1e-30)));
}

/** Randomized: adds sigma times `draw(x)` to its input, and records its calls and their batch sizes. */
class CountingNoiseModel implements AttackableModel {
  readonly randomized = true;
  calls = 0;
  rows: number[] = [];
  constructor(
    readonly inner: Module,
    readonly sigma: number,
    private readonly draw: (x: Tensor) => Tensor,
  ) {}
  get training(): boolean {
    return this.inner.training;
  }
  train(on = true): unknown {
    return this.inner.train(on);
  }
  forward(x: Tensor): Tensor {
    this.calls++;
    this.rows.push(x.dims[0]);
    return tidy(() => this.inner.forward(x.add(this.draw(x).mul(this.sigma))) as Tensor);
  }
}

/**
 * Randomized, drawing its noise row by row (one randn per row, in row order):
 * with a fixed seed, the draws do not depend on how the rows are grouped into
 * passes, so batched, split and one-pass-per-draw runs see identical noise.
 */
class RowNoiseModel extends CountingNoiseModel {
  constructor(inner: Module, sigma: number) {
    super(inner, sigma, (x) =>
      cat(
        Array.from({ length: x.dims[0] }, () => randn([1, ...x.dims.slice(1)])),
        0,
      ),
    );
  }
}

/** Randomized, but one noise draw for the whole batch (broadcast): batched EOT must notice and fall back. */
class SharedNoiseModel extends CountingNoiseModel {
  constructor(inner: Module, sigma: number) {
    super(inner, sigma, (x) => randn([1, ...x.dims.slice(1)]));
  }
}

/** Per-element mean and variance over repeated estimates. */
function moments(samples: Tensor[]): { mean: Tensor; variance: Tensor } {
  return noGrad(() =>
    tidy(() => {
      const s = stack(samples);
      return { mean: s.mean(0), variance: s.var(0) };
    }),
  );
}

describe("batched EOT", () => {
  it("splits the copies under the cap: at least one copy, at most K", () => {
    assert.equal(eotCopiesPerPass(10, 16, 784, DEFAULT_EOT_BATCH_VALUES), 10);
    assert.equal(eotCopiesPerPass(10, 128, 784, DEFAULT_EOT_BATCH_VALUES), 5);
    assert.equal(eotCopiesPerPass(10, 128, 784, 128 * 784 * 4), 4);
    assert.equal(eotCopiesPerPass(10, 128, 784, 128 * 784 * 4 + 5), 4);
    assert.equal(eotCopiesPerPass(10, 128, 784, 100), 1);
    assert.equal(eotCopiesPerPass(10, 128, 784, 0), 1);
    assert.equal(eotCopiesPerPass(1, 1, 784, DEFAULT_EOT_BATCH_VALUES), 1);
    assert.equal(getEotBatchValues(), DEFAULT_EOT_BATCH_VALUES);
    const previous = setEotBatchValues(1000);
    assert.equal(getEotBatchValues(), 1000);
    setEotBatchValues(previous);
    assert.throws(() => setEotBatchValues(-1), /eotBatchValues/);
    assert.throws(() => setEotBatchValues(1.5), /eotBatchValues/);
  });

  it("(a) on a deterministic model equals one pass per draw, in one forward call", async () => {
    const inner = mlp(1);
    manualSeed(2);
    const x = rand([5, 1, 8, 8]);
    const y = tensor([0, 1, 2, 3, 1], [5], { dtype: "int64" });
    for (const loss of ["ce", "margin"] as const) {
      for (const targeted of [false, true]) {
        const batched = new Recorder(inner);
        const sequential = new Recorder(inner);
        const opts = { eotSamples: 6, loss, targeted };
        const a = await lossAndGradient(batched, x, y, opts);
        const b = await lossAndGradient(sequential, x, y, { ...opts, eotBatchValues: 0 });
        assert.equal(batched.calls, 1, "one forward pass of 6 x 5 images");
        assert.equal(sequential.calls, 6);
        assert.ok(relDiff(a.gradient, b.gradient) < 1e-5, `gradient (${loss}, targeted ${targeted})`);
        assert.ok(relDiff(a.loss, b.loss) < 1e-5, `loss (${loss}, targeted ${targeted})`);
        // evaluateObjective: the same objective and prediction.
        const e1 = await evaluateObjective(batched, x, y, targeted, 6, "test", loss);
        const e2 = await evaluateObjective(sequential, x, y, targeted, 6, "test", loss, { eotBatchValues: 0 });
        assert.equal(batched.calls, 2);
        assert.ok(relDiff(e1.loss, e2.loss) < 1e-5);
        assert.deepEqual(e1.predicted.toArray(), e2.predicted.toArray());
        assert.ok(relDiff(e1.loss, a.loss) < 1e-5, "evaluateObjective's loss is lossAndGradient's");
        for (const t of [a.gradient, a.loss, b.gradient, b.loss, e1.loss, e1.predicted, e2.loss, e2.predicted])
          t.dispose();
      }
    }
    x.dispose();
    y.dispose();
    inner.dispose();
  });

  it("with eotSamples 1 is bit-identical to a single forward/backward pass", async () => {
    const inner = mlp(3);
    manualSeed(4);
    const x = rand([4, 1, 8, 8]);
    const y = tensor([3, 2, 1, 0], [4], { dtype: "int64" });
    const r = await lossAndGradient(inner, x, y, { eotSamples: 1 });
    const [g, l] = enableGrad(() =>
      tidy(() => {
        const xi = noGrad(() => x.detach()).requiresGrad_(true);
        const objective = attackObjective(inner.forward(xi), y, false);
        return [grad(objective.sum(), [xi])[0], objective.detach()];
      }),
    );
    assert.deepEqual(r.gradient.toArray(), g.toArray());
    assert.deepEqual(r.loss.toArray(), l.toArray());
    for (const t of [r.gradient, r.loss, g, l, x, y]) t.dispose();
    inner.dispose();
  });

  it("(c) split into several passes gives what one pass gives, with identical draws", async () => {
    const inner = mlp(5);
    manualSeed(6);
    const x = rand([3, 1, 8, 8]);
    const y = tensor([0, 1, 2], [3], { dtype: "int64" });
    const run = async (eotBatchValues: number | undefined) => {
      const model = new RowNoiseModel(inner, 0.3);
      manualSeed(42);
      const r = await lossAndGradient(model, x, y, { eotSamples: 7, eotBatchValues });
      manualSeed(43);
      const e = await evaluateObjective(model, x, y, false, 7, "test", "ce", { eotBatchValues });
      return { ...r, objective: e.loss, predicted: e.predicted, rows: model.rows };
    };
    const whole = await run(undefined);
    const split = await run(3 * 64 * 3); // 3 copies per pass: 3 + 3 + 1
    const single = await run(0);
    assert.deepEqual(whole.rows, [21, 21]);
    assert.deepEqual(split.rows, [9, 9, 3, 9, 9, 3]);
    assert.deepEqual(single.rows, Array(14).fill(3));
    for (const other of [split, single]) {
      assert.ok(relDiff(other.gradient, whole.gradient) < 1e-5, "gradient");
      assert.ok(relDiff(other.loss, whole.loss) < 1e-5, "loss");
      assert.ok(relDiff(other.objective, whole.objective) < 1e-5, "evaluateObjective");
      assert.deepEqual(other.predicted.toArray(), whole.predicted.toArray());
    }
    for (const r of [whole, split, single]) for (const t of [r.gradient, r.loss, r.objective, r.predicted]) t.dispose();
    x.dispose();
    y.dispose();
    inner.dispose();
  });

  it("(b) through the VAE defense: same mean and variance as one pass per draw; one draw per copy", async () => {
    const vae = tinyVae([1, 8, 8], 7);
    vae.eval();
    const classifier = mlp(8);
    const model = new DefendedModel(new VaeDefense(vae), classifier);
    assert.equal(model.randomized, true);
    manualSeed(9);
    const x = rand([3, 1, 8, 8]);
    const y = tensor([0, 1, 2], [3], { dtype: "int64" });
    const repeats = 60;
    const k = 4;
    const estimates = async (eotBatchValues: number | undefined): Promise<Tensor[]> => {
      const out: Tensor[] = [];
      for (let r = 0; r < repeats; r++) {
        const { gradient, loss } = await lossAndGradient(model, x, y, { eotSamples: k, eotBatchValues });
        loss.dispose();
        out.push(gradient);
      }
      return out;
    };
    manualSeed(10);
    const batched = await estimates(undefined);
    assert.equal(eotNoisePerRow(model), true, "the VAE defense draws its noise per row");
    manualSeed(11);
    const sequential = await estimates(0);
    const a = moments(batched);
    const b = moments(sequential);
    const [meanZ, maxZ, varianceRatio, seqVariance] = noGrad(() =>
      tidy(() => {
        // z-score of the difference of the two means, per element (over elements with any variance).
        const se = a.variance.add(b.variance).div(repeats).sqrt();
        const live = se.gt(1e-12);
        const z = a.mean.sub(b.mean).abs().div(se.add(1e-30)).maskedFill(live.logicalNot(), 0);
        const count = live.sum().item();
        return [
          z.pow(2).sum().item() / count,
          z.max().item(),
          a.variance.sum().item() / b.variance.sum().item(),
          b.variance.sum().item(),
        ];
      }),
    );
    assert.ok(seqVariance > 0, "the VAE defense must give random gradients");
    // Mean of z^2 is about 1 when the means agree (a chi-square over many elements); max |z| stays moderate.
    assert.ok(meanZ > 0.6 && meanZ < 1.6, `mean squared z-score ${meanZ}`);
    assert.ok(maxZ < 5.5, `max z-score ${maxZ}`);
    // Shared noise across the copies would give about k times the variance of the average.
    assert.ok(varianceRatio > 0.6 && varianceRatio < 1.6, `variance ratio batched / sequential ${varianceRatio}`);
    for (const t of [...batched, ...sequential, a.mean, a.variance, b.mean, b.variance, x, y]) t.dispose();
    vae.dispose();
    classifier.dispose();
  });

  it("the patch VAE defense draws per row too", async () => {
    const vae = tinyVae([1, 4, 4], 12, 4);
    vae.eval();
    const classifier = mlp(13);
    const model = new DefendedModel(new PatchVaeDefense(vae, { patchSize: 4, stride: 4 }), classifier);
    manualSeed(14);
    const x = rand([2, 1, 8, 8]);
    const y = tensor([0, 1], [2], { dtype: "int64" });
    const r = await lossAndGradient(model, x, y, { eotSamples: 3 });
    assert.equal(eotNoisePerRow(model), true);
    for (const t of [r.gradient, r.loss, x, y]) t.dispose();
    vae.dispose();
    classifier.dispose();
  });

  it("notices noise shared across the batch and falls back to one pass per draw", async () => {
    const inner = new LinearModel(W3, [0, 0, 0]);
    inner.eval();
    manualSeed(15);
    const x = rand([2, 1, 1, 4]);
    const y = tensor([0, 2], [2], { dtype: "int64" });
    const shared = new SharedNoiseModel(inner, 1.0);
    const first = await lossAndGradient(shared, x, y, { eotSamples: 5 });
    // The batched first pass shows identical copies: it counts as one draw, four single passes follow.
    assert.deepEqual(shared.rows, [10, 2, 2, 2, 2]);
    assert.equal(eotNoisePerRow(shared), false);
    const second = await lossAndGradient(shared, x, y, { eotSamples: 5 });
    assert.deepEqual(shared.rows.slice(5), [2, 2, 2, 2, 2]);
    // Variance of the 5-draw average matches the one-pass-per-draw path (it would be ~5x with one shared draw).
    const repeats = 100;
    const estimates = async (opts: { eotBatchValues?: number }) => {
      const out: Tensor[] = [];
      for (let r = 0; r < repeats; r++) {
        const { gradient, loss } = await lossAndGradient(shared, x, y, { eotSamples: 5, ...opts });
        loss.dispose();
        out.push(gradient);
      }
      return out;
    };
    const batchedEstimates = await estimates({});
    const singleEstimates = await estimates({ eotBatchValues: 0 });
    const viaBatch = moments(batchedEstimates);
    const viaSingle = moments(singleEstimates);
    for (const t of [...batchedEstimates, ...singleEstimates]) t.dispose();
    const ratio = noGrad(() => tidy(() => viaBatch.variance.sum().item() / viaSingle.variance.sum().item()));
    assert.ok(ratio > 0.45 && ratio < 2.2, `variance ratio ${ratio}`);
    for (const t of [first.gradient, first.loss, second.gradient, second.loss, x, y]) t.dispose();
    for (const m of [viaBatch, viaSingle]) {
      m.mean.dispose();
      m.variance.dispose();
    }
    inner.dispose();
  });

  it("runs one pass per draw on a model in training mode (batch statistics would mix the copies)", async () => {
    const inner = mlp(16);
    inner.train(true);
    const rec = new Recorder(inner);
    const x = rand([2, 1, 8, 8]);
    const y = tensor([0, 1], [2], { dtype: "int64" });
    const r = await lossAndGradient(rec, x, y, { eotSamples: 3 });
    assert.equal(rec.calls, 3);
    for (const t of [r.gradient, r.loss, x, y]) t.dispose();
    inner.dispose();
  });

  it("(d) leaks no tensors: batched, split, shared-noise fallback, failing and async models", async () => {
    const inner = mlp(17);
    const vae = tinyVae([1, 8, 8], 18);
    vae.eval();
    const x = rand([3, 1, 8, 8]);
    const y = tensor([0, 1, 2], [3], { dtype: "int32" });
    const y64 = tensor([0, 1, 2], [3], { dtype: "int64" });
    const bad = tensor([0, 1, 9], [3], { dtype: "int64" });
    const defended = new DefendedModel(new VaeDefense(vae), inner);
    await leakFree(async () => {
      for (const eotBatchValues of [undefined, 2 * 3 * 64, 0]) {
        for (const model of [
          new RowNoiseModel(inner, 0.1),
          new SharedNoiseModel(inner, 0.1),
          new Recorder(inner, { async: true }),
          defended,
        ]) {
          const r = await lossAndGradient(model, x, y64, { eotSamples: 5, eotBatchValues });
          r.gradient.dispose();
          r.loss.dispose();
          const e = await evaluateObjective(model, x, y64, true, 5, "test", "margin", { eotBatchValues });
          e.loss.dispose();
          e.predicted.dispose();
        }
      }
      await assert.rejects(
        lossAndGradient(new Recorder(inner, { failAfter: 1 }), x, y64, { eotSamples: 4, eotBatchValues: 3 * 64 * 2 }),
        /model failure for the test/,
      );
      await assert.rejects(
        lossAndGradient(new Recorder(inner, { failAfter: 0, async: true }), x, y64, { eotSamples: 4 }),
        /model failure for the test/,
      );
      await assert.rejects(lossAndGradient(inner, x, bad, { eotSamples: 4 }), /labels between 0 and 3/);
      // Through an attack, with restarts (evaluateObjective) and int32 labels.
      const pgd = new PGD(defended, { eps: 0.1, steps: 2, restarts: 2, eotSamples: 3 });
      (await pgd.generate(x, y)).dispose();
    })();
    for (const p of inner.parameters()) assert.equal(p.grad, undefined);
    for (const t of [x, y, y64, bad]) t.dispose();
    inner.dispose();
    vae.dispose();
  });
});

describe("batched EOT in Square's queries", () => {
  /** Square on `model` from a fixed libtorch seed (the noise) and a fixed attack seed (the squares). */
  async function square(model: AttackableModel, x: Tensor, y: Tensor): Promise<Tensor> {
    manualSeed(21);
    return new SquareAttack(model, { eps: 0.3, queries: 30, eotSamples: 4, seed: 5 }).generate(x, y);
  }

  it("puts the copies of a per-row-noise model in one pass, with the same draws and result as one pass per draw", async () => {
    const inner = mlp(19);
    manualSeed(20);
    const x = rand([3, 1, 8, 8]);
    const y = tensor([0, 1, 2], [3], { dtype: "int64" });
    // A gradient pass has shown this model to draw per row; the other one is still unknown.
    const known = new RowNoiseModel(inner, 0.5);
    const g = await lossAndGradient(known, x, y, { eotSamples: 2 });
    assert.equal(eotNoisePerRow(known), true);
    known.rows = [];
    const unknown = new RowNoiseModel(inner, 0.5);
    const batched = await square(known, x, y);
    const single = await square(unknown, x, y);
    // The unknown model gets one pass per draw; the known one a quarter as many passes of four copies each.
    assert.ok(unknown.rows.length > 4);
    assert.equal(known.rows.length * 4, unknown.rows.length);
    assert.deepEqual(
      known.rows,
      unknown.rows.filter((_, i) => i % 4 === 0).map((n) => 4 * n),
    );
    // Rows draw their noise in order, so grouping them changes nothing: the same adversarial images.
    assert.equal(relDiff(batched, single), 0);
    for (const t of [batched, single, g.gradient, g.loss, x, y]) t.dispose();
    inner.dispose();
  });

  it("keeps one pass per draw on a model whose noise is shared across the batch", async () => {
    const inner = new LinearModel(W3, [0, 0, 0]);
    inner.eval();
    manualSeed(22);
    const x = rand([2, 1, 1, 4]);
    const y = tensor([0, 2], [2], { dtype: "int64" });
    const shared = new SharedNoiseModel(inner, 1.0);
    const g = await lossAndGradient(shared, x, y, { eotSamples: 3 });
    assert.equal(eotNoisePerRow(shared), false);
    shared.rows = [];
    const out = await square(shared, x, y);
    assert.ok(shared.rows.length > 0);
    assert.ok(
      shared.rows.every((n) => n <= 2),
      `batch sizes ${shared.rows.join(",")}`,
    );
    for (const t of [out, g.gradient, g.loss, x, y]) t.dispose();
  });
});
