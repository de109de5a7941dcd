/**
 * Reuse across the epsilon grid (eval/grid-memo.ts): FGSM's direction is
 * computed once per batch for every epsilon, and the cells that share it give
 * the numbers of the plain per-cell path, bit for bit; the comparison would
 * see a wrong direction; a randomized attack target shares nothing; every
 * kept tensor is freed.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { dispose, getNumThreads, isGradEnabled, manualSeed, setNumThreads, tidy } from "../../src/core/engine.js";
import { rand, randint, zeros, type Tensor } from "../../src/core/tensor.js";
import { createAttack } from "../../src/attacks/index.js";
import type { AttackableModel } from "../../src/attacks/types.js";
import { FGSM } from "../../src/attacks/fgsm.js";
import { createDefense, type Defense } from "../../src/defenses/index.js";
import type { ImageDataset } from "../../src/data/index.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import type { ConvVae } from "../../src/models/vae.js";
import { planSweep, uniqueTasks, type CellResult, type CellTask } from "../../src/eval/cells.js";
import { runCell, type SweepContext } from "../../src/eval/run-cell.js";
import { GridMemo, directionKey } from "../../src/eval/grid-memo.js";
import { localRunner } from "../../src/eval/sweep.js";
import type { AttackMode } from "../../src/eval/results.js";
import { leakFree } from "../helpers/assert.js";
import { tinyVae } from "../defenses/helpers.js";

/** Counts forward passes taken with gradients on: the attack's gradients (scoring runs without). */
class CountingCnn extends MnistCnn {
  gradientForwards = 0;
  override forward(x: Tensor): Tensor {
    if (isGradEnabled()) this.gradientForwards++;
    return super.forward(x);
  }
}

const threads = getNumThreads();
const EPSILONS = [0, 0.05, 0.1, 0.2];
let clf: CountingCnn;
let vae: ConvVae;
let data: ImageDataset;
let defenses: Defense[];

before(() => {
  setNumThreads(1);
  manualSeed(5);
  clf = new CountingCnn();
  vae = tinyVae([1, 28, 28], 2);
  data = tidy(() => ({
    images: rand([10, 1, 28, 28]),
    labels: randint(0, 10, [10]),
    classNames: Array.from({ length: 10 }, (_, i) => String(i)),
    name: "random",
    source: "random test images",
  }));
  // A deterministic pair and a randomized VAE scored over 2 passes: its numbers see the generator's state.
  defenses = [createDefense("none"), createDefense("jpeg:23"), createDefense("vae", { vae })];
});

after(() => {
  clf.dispose();
  vae.dispose();
  dispose([data.images, data.labels]);
  setNumThreads(threads);
});

function context(): SweepContext {
  // As the pipeline makes attacks: EOT draws only on a randomized target.
  const make = (m: AttackableModel, eps: number) =>
    createAttack("fgsm", m, { eps, ...(m.randomized === true ? { eotSamples: 2 } : {}) });
  const fgsm = { name: "FGSM", make };
  return { classifier: clf, data, attacks: [fgsm], defenses, batchSize: 3, passes: 2 };
}

function tasksOf(mode: AttackMode): CellTask[] {
  const plan = planSweep({
    attacks: [{ name: "FGSM" }],
    epsilons: EPSILONS,
    mode,
    defenses: defenses.map((d) => d.name),
    images: 10,
    shardSize: 4,
    seed: 11,
  });
  return uniqueTasks(plan);
}

/** The plain path: every cell on its own, no memo. */
async function plain(tasks: CellTask[]): Promise<Map<string, CellResult>> {
  const out = new Map<string, CellResult>();
  for (const t of tasks) out.set(t.id, await runCell(context(), t));
  return out;
}

/** The reusing path: the local runner, one memo for all its cells. */
async function reusing(tasks: CellTask[]): Promise<Map<string, CellResult>> {
  const out = new Map<string, CellResult>();
  await localRunner(context()).run(tasks, {
    started: () => undefined,
    images: () => undefined,
    retried: () => undefined,
    done: (t, r) => out.set(t.id, r),
  });
  return out;
}

test(
  "FGSM: generate is fromDirection(direction) bit for bit; the direction does not depend on eps, the images do",
  leakFree(async () => {
    const x = data.images.narrow(0, 0, 4);
    const y = data.labels.narrow(0, 0, 4);
    const [small, large] = [0.1, 0.2].map((eps) => new FGSM(clf, { eps }));
    const d1 = await small.direction(x, y);
    const d2 = await large.direction(x, y);
    const generated = await small.generate(x, y);
    const derived = small.fromDirection(x, d2);
    const other = large.fromDirection(x, d1);
    try {
      assert.ok(small.directionIsShareable);
      assert.deepEqual(d1.toArray(), d2.toArray());
      assert.deepEqual(derived.toArray(), generated.toArray());
      assert.notDeepEqual(other.toArray(), generated.toArray());
    } finally {
      dispose([x, y, d1, d2, generated, derived, other]);
    }
  }),
);

for (const mode of ["gray-box", "adaptive"] as const) {
  test(
    `${mode}: cells sharing FGSM directions give the plain per-cell numbers, and the grid's numbers differ by eps`,
    leakFree(async () => {
      const tasks = tasksOf(mode);
      const expected = await plain(tasks);
      const actual = await reusing(tasks);
      assert.deepEqual(actual, expected);
      // The comparison is not vacuous: each epsilon gives other rel-L2 sums.
      const sums = EPSILONS.map((e) => tasks.filter((t) => t.cell.epsilon === e).map((t) => expected.get(t.id)!.relL2Sum));
      for (let i = 1; i < sums.length; i++) assert.notDeepEqual(sums[i], sums[i - 1]);
    }),
  );
}

test(
  "the FGSM gradient is taken once per batch for the whole grid (gray-box), per defense in adaptive mode only where deterministic",
  leakFree(async () => {
    // Shards of 4, 4 and 2 images in batches of 3: 5 batches; 3 attacked epsilons.
    clf.gradientForwards = 0;
    await plain(tasksOf("gray-box"));
    assert.equal(clf.gradientForwards, 15);
    clf.gradientForwards = 0;
    await reusing(tasksOf("gray-box"));
    assert.equal(clf.gradientForwards, 5);

    // Adaptive: none and JPEG (BPDA) share; the randomized VAE (2 EOT draws, seeded per cell) does not.
    const memo = new GridMemo();
    try {
      for (const t of tasksOf("adaptive")) await runCell(context(), t, undefined, memo);
      assert.equal(memo.computed, 5 * 2);
      assert.equal(memo.reused, 5 * 2 * 2);
    } finally {
      memo.dispose();
    }
  }),
);

test(
  "a memo holding a wrong direction changes the cell's numbers (the memo is what the cell uses)",
  leakFree(async () => {
    const task = tasksOf("gray-box").find((t) => t.cell.epsilon === 0.1 && t.cell.shard === 0)!;
    const [expected] = (await plain([task])).values();
    const memo = new GridMemo();
    try {
      // A zero direction for the first batch: those images are left unattacked.
      const wrong = zeros([3, 1, 28, 28]);
      const d = await memo.direction(directionKey(task.cell, 0, 3), async () => wrong, "float32");
      dispose([d]);
      const actual = await runCell(context(), task, undefined, memo);
      assert.equal(memo.reused, 1);
      assert.notEqual(actual.relL2Sum, expected.relL2Sum);
    } finally {
      memo.dispose();
    }
  }),
);

test("the memo keeps nothing past its cap: the cells compute their own directions", async () => {
  const memo = new GridMemo(100);
  try {
    for (const t of tasksOf("gray-box")) await runCell(context(), t, undefined, memo);
    assert.equal(memo.reused, 0);
    assert.equal(memo.computed, 15);
  } finally {
    memo.dispose();
  }
});
