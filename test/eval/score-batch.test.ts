/**
 * Scoring a batch under a cell's defenses: an ensemble whose members are
 * columns of the cell averages those columns' outputs of the same pass (the
 * paper's Ensembled column) instead of applying its members again; any other
 * ensemble applies them itself. Nothing is left allocated.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { dispose, manualSeed, noGrad, tidy } from "../../src/core/engine.js";
import { rand, type Tensor } from "../../src/core/tensor.js";
import { EnsembleDefense, NoDefense, type Defense } from "../../src/defenses/index.js";
import { titled } from "../../src/defenses/titled.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import { reusedEnsembles, scoreBatch } from "../../src/eval/score-batch.js";
import { leakFree } from "../helpers/assert.js";

/** A "random" defense whose k-th output is the input scaled by 1 - k/8: which pass made an output is visible. */
class Scaling implements Defense {
  readonly randomized = true;
  readonly gradient = "exact";
  calls = 0;
  constructor(readonly name: string) {}
  async apply(x: Tensor): Promise<Tensor> {
    const f = 1 - ++this.calls / 8;
    return tidy(() => x.mul(f));
  }
  attackView(x: Tensor): Promise<Tensor> {
    return this.apply(x);
  }
  describe() {
    return { defense: this.name };
  }
}

let clf: MnistCnn;
let x: Tensor;
let y: Tensor;

before(() => {
  manualSeed(5);
  clf = new MnistCnn();
  clf.eval();
  x = rand([6, 1, 28, 28]);
  // The labels the classifier gives half-scaled images: counts then depend on which outputs were averaged.
  y = tidy(() => noGrad(() => clf.forward(x.mul(0.5)).argmax(1)));
});
after(() => {
  clf.dispose();
  dispose([x, y]);
});

test("which ensembles reuse their members' columns", () => {
  const a = new Scaling("A");
  const b = new Scaling("B");
  const both = titled(new EnsembleDefense([a, b]), "Ensemble");
  const withOther = new EnsembleDefense([a, new NoDefense()]);
  assert.deepEqual([...reusedEnsembles([a, b, both, withOther])], [["Ensemble", ["A", "B"]]]);
  // Members listed after the ensemble: not reused (their outputs do not exist yet).
  assert.deepEqual([...reusedEnsembles([a, both, b])], []);
});

test(
  "an ensemble of columns is scored on the average of their outputs of the same pass, applying no member again",
  leakFree(async () => {
    const passes = 3;
    const a = new Scaling("A");
    const b = new Scaling("B");
    const ens = titled(new EnsembleDefense([a, b]), "Ensemble");
    const firstPass = () => undefined;
    const counts = await scoreBatch({ classifier: clf, adv: x, y, passes, firstPass }, [a, b, ens]);
    assert.equal(a.calls, passes);
    assert.equal(b.calls, passes);
    // Pass p of each member scaled x by 1 - (p + 1)/8: their average is the same scaling.
    const expected = Array.from({ length: passes }, (_, p) =>
      tidy(() =>
        noGrad(() =>
          clf
            .forward(x.mul(1 - (p + 1) / 8))
            .argmax(1)
            .eq(y)
            .sum()
            .item(),
        ),
      ),
    );
    assert.deepEqual(counts.Ensemble, expected);
    assert.deepEqual(counts.A, expected);
    assert.ok(new Set(expected).size > 1, "the passes differ, so a wrong pairing would show");

    // Without its members among the columns, the ensemble applies them itself.
    const alone = await scoreBatch({ classifier: clf, adv: x, y, passes, firstPass }, [ens]);
    assert.equal(a.calls, 2 * passes);
    assert.equal(alone.Ensemble.length, passes);
  }),
);
