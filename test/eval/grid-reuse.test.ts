/**
 * Reuse across the epsilon grid (eval/grid-memo.ts): the sign of the loss
 * gradient at x (FGSM's step, I-FGSM's first) is computed once per batch for
 * every epsilon and both attacks, and the cells that share it give
 * the numbers of the plain per-cell path, bit for bit, in any order and
 * across an interruption (the results files are byte-identical); the
 * comparison would see a wrong direction; a randomized attack target shares
 * nothing; every kept tensor is freed.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dispose, getNumThreads, isGradEnabled, manualSeed, setNumThreads } from "../../src/core/engine.js";
import { zeros, type Tensor } from "../../src/core/tensor.js";
import { createAttack } from "../../src/attacks/index.js";
import type { AttackableModel } from "../../src/attacks/types.js";
import { FGSM } from "../../src/attacks/fgsm.js";
import { IFGSM } from "../../src/attacks/ifgsm.js";
import { signedGradientKind } from "../../src/attacks/gradient.js";
import { createDefense, type Defense } from "../../src/defenses/index.js";
import type { ImageDataset } from "../../src/data/index.js";
import { randomMnistLike } from "../helpers/random-data.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import type { ConvVae } from "../../src/models/vae.js";
import { planSweep, uniqueTasks, type CellResult, type CellTask } from "../../src/eval/cells.js";
import { runCell, type SweepContext } from "../../src/eval/run-cell.js";
import { GridMemo, directionKey } from "../../src/eval/grid-memo.js";
import { localRunner, sweep, type CellRunner, type SweepOptions } from "../../src/eval/sweep.js";
import { VaeguardError } from "../../src/core/errors.js";
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
  data = randomMnistLike(10);
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
  const ifgsm = (m: AttackableModel, eps: number) =>
    createAttack("ifgsm", m, { eps, steps: 2, ...(m.randomized === true ? { eotSamples: 2 } : {}) });
  const attacks = [
    { name: "FGSM", make },
    { name: "I-FGSM(2)", make: ifgsm },
  ];
  return { classifier: clf, data, attacks, defenses, batchSize: 3, passes: 2 };
}

function tasksOf(mode: AttackMode): CellTask[] {
  const plan = planSweep({
    attacks: [{ name: "FGSM" }, { name: "I-FGSM(2)" }],
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
  "FGSM and I-FGSM: generate is fromDirection(direction) bit for bit; the direction depends on neither eps nor the attack, the images do",
  leakFree(async () => {
    const x = data.images.narrow(0, 0, 4);
    const y = data.labels.narrow(0, 0, 4);
    const [small, large] = [0.1, 0.2].map((eps) => new FGSM(clf, { eps }));
    const iterative = new IFGSM(clf, { eps: 0.1, steps: 3 });
    const made: Tensor[] = [x, y];
    const keep = <T extends Tensor>(t: T): T => (made.push(t), t);
    try {
      const d1 = keep(await small.direction(x, y));
      const d2 = keep(await large.direction(x, y));
      const d3 = keep(await iterative.direction(x, y));
      assert.ok(small.directionIsShareable && iterative.directionIsShareable);
      assert.equal(iterative.directionKind, small.directionKind);
      assert.deepEqual(d1.toArray(), d2.toArray());
      assert.deepEqual(d3.toArray(), d1.toArray());
      const generated = keep(await small.generate(x, y));
      assert.deepEqual(keep(await small.fromDirection(x, y, d2)).toArray(), generated.toArray());
      assert.notDeepEqual(keep(await large.fromDirection(x, y, d1)).toArray(), generated.toArray());
      const iterated = keep(await iterative.generate(x, y));
      assert.deepEqual(keep(await iterative.fromDirection(x, y, d1)).toArray(), iterated.toArray());
      // A wrong first direction shows in I-FGSM's images: the first step is taken from the one given.
      const flipped = keep(d1.neg());
      assert.notDeepEqual(keep(await iterative.fromDirection(x, y, flipped)).toArray(), iterated.toArray());
    } finally {
      dispose(made);
    }
  }),
);

for (const mode of ["gray-box", "adaptive"] as const) {
  test(
    `${mode}: cells sharing FGSM directions give the plain per-cell numbers, and the grid's numbers differ by eps`,
    leakFree(async () => {
      const tasks = tasksOf(mode);
      const expected = await plain(tasks);
      assert.deepEqual(await reusing(tasks), expected);
      // A queue worker gets cells in any order: whichever cell computes a direction, the numbers stay.
      assert.deepEqual(await reusing([...tasks].reverse()), expected);
      // The comparison is not vacuous: each epsilon gives other rel-L2 sums.
      const sums = EPSILONS.map((e) =>
        tasks.filter((t) => t.cell.epsilon === e).map((t) => expected.get(t.id)!.relL2Sum),
      );
      for (let i = 1; i < sums.length; i++) assert.notDeepEqual(sums[i], sums[i - 1]);
    }),
  );
}

test(
  "the gradient at x is taken once per batch for the whole grid and both attacks (gray-box), per deterministic defense (adaptive)",
  leakFree(async () => {
    // Shards of 4, 4 and 2 images in batches of 3: 5 batches; 3 attacked epsilons; FGSM 1 step, I-FGSM 2.
    clf.gradientForwards = 0;
    await plain(tasksOf("gray-box"));
    assert.equal(clf.gradientForwards, 5 * 3 * (1 + 2));
    clf.gradientForwards = 0;
    await reusing(tasksOf("gray-box"));
    // Once at x for all; I-FGSM's second steps start from other images at each eps.
    assert.equal(clf.gradientForwards, 5 + 5 * 3);

    // Adaptive: none and JPEG (BPDA) share; the randomized VAE (2 EOT draws, seeded per cell) does not.
    const memo = new GridMemo();
    try {
      for (const t of tasksOf("adaptive")) await runCell(context(), t, undefined, memo);
      assert.equal(memo.computed, 2 * 5);
      assert.equal(memo.reused, 2 * 5 * (3 * 2 - 1));
    } finally {
      memo.dispose();
    }
  }),
);

test(
  "a memo holding a wrong direction changes the cell's numbers (the memo is what the cell uses)",
  leakFree(async () => {
    const task = tasksOf("gray-box").find(
      (t) => t.cell.attack === "FGSM" && t.cell.epsilon === 0.1 && t.cell.shard === 0,
    )!;
    const [expected] = (await plain([task])).values();
    const memo = new GridMemo();
    try {
      // A zero direction for the first batch: those images are left unattacked.
      const wrong = zeros([3, 1, 28, 28]);
      const d = await memo.direction(
        directionKey(task.cell, signedGradientKind(1), 0, 3),
        async () => wrong,
        "float32",
      );
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
    assert.equal(memo.computed, 5 * 3 * 2);
  } finally {
    memo.dispose();
  }
});

test("results files: the reusing runner, interrupted and resumed, writes the plain path's file byte for byte", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-grid-reuse-"));
  try {
    for (const mode of ["gray-box", "adaptive"] as const) {
      const opts = (file: string, runner?: CellRunner): SweepOptions => ({
        ...context(),
        epsilons: EPSILONS,
        mode,
        seed: 11,
        shardSize: 4,
        gridImages: 2,
        gridEpsilon: 0.2,
        resultsFile: join(dir, `${mode}-${file}.json`),
        runner,
        quiet: true,
        log: () => undefined,
      });
      const plainRunner: CellRunner = {
        where: "one by one, without a memo",
        async run(tasks, events) {
          for (const t of tasks) events.done(t, await runCell(context(), t));
        },
      };
      const expected = await sweep(opts("plain", plainRunner));
      // The reusing runner stops after 7 cells: a resumed run computes again the directions those cells had.
      const stopping: CellRunner = {
        where: "here",
        async run(tasks, events) {
          await localRunner(context()).run(tasks.slice(0, 7), events);
          throw new VaeguardError("stopped on purpose");
        },
      };
      await assert.rejects(sweep(opts("reusing", stopping)), /stopped on purpose \(7 of \d+ cells are stored/);
      const resumed = await sweep(opts("reusing"));
      assert.deepEqual(resumed.rows, expected.rows);
      const read = (f: string) => readFileSync(join(dir, `${mode}-${f}.json`), "utf8");
      assert.equal(read("reusing"), read("plain"));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
