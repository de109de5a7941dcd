/**
 * The sweep cut into cells: the plan (shared clean cells, one cell per
 * defense in adaptive mode, the grid cell), seeds that depend on the cell
 * only, merging, and a sweep whose table does not depend on the order its
 * cells ran in nor on an interruption; runCell frees every tensor, also when
 * a defense fails.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dispose, getNumThreads, manualSeed, setNumThreads } from "../../src/core/engine.js";
import { VaeguardError } from "../../src/core/errors.js";
import { type Tensor } from "../../src/core/tensor.js";
import { createAttack } from "../../src/attacks/index.js";
import { createDefense, type Defense } from "../../src/defenses/index.js";
import type { ImageDataset } from "../../src/data/index.js";
import { randomMnistLike } from "../helpers/random-data.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import type { ConvVae } from "../../src/models/vae.js";
import {
  CLEAN_ATTACK,
  cellSeed,
  mergeRow,
  planSweep,
  uniqueTasks,
  type CellResult,
  type CellTask,
} from "../../src/eval/cells.js";
import { runCell } from "../../src/eval/run-cell.js";
import { localRunner, sweep, type CellRunner, type SweepOptions } from "../../src/eval/sweep.js";
import { leakFree } from "../helpers/assert.js";
import { tinyVae } from "../defenses/helpers.js";

const threads = getNumThreads();
let dir = "";
let clf: MnistCnn;
let vae: ConvVae;
let data: ImageDataset;
let defenses: Defense[];

before(() => {
  setNumThreads(1);
  dir = mkdtempSync(join(tmpdir(), "vaeguard-sweep-"));
  manualSeed(3);
  clf = new MnistCnn();
  vae = tinyVae([1, 28, 28], 1);
  data = randomMnistLike(10);
  defenses = [createDefense("none"), createDefense("vae", { vae })];
});

after(() => {
  clf.dispose();
  vae.dispose();
  dispose([data.images, data.labels]);
  setNumThreads(threads);
  rmSync(dir, { recursive: true, force: true });
});

function options(mode: "gray-box" | "adaptive", extra: Partial<SweepOptions> = {}): SweepOptions {
  return {
    classifier: clf,
    data,
    attacks: [
      { name: "FGSM", make: (m, eps) => createAttack("fgsm", m, { eps }) },
      // A random start: its numbers depend on the generator's state.
      { name: "PGD(2)", make: (m, eps) => createAttack("pgd", m, { eps, steps: 2, eotSamples: 2 }) },
    ],
    epsilons: [0, 0.1],
    defenses,
    mode,
    batchSize: 3,
    passes: 2,
    seed: 7,
    shardSize: 4,
    quiet: true,
    log: () => undefined,
    ...extra,
  };
}

test("plan: epsilon-0 rows share their clean cells, adaptive cells are per defense, one grid cell", () => {
  const common = { attacks: [{ name: "A" }, { name: "B" }], epsilons: [0, 0.1], images: 10, shardSize: 4, seed: 1 };
  const gray = planSweep({ ...common, mode: "gray-box", defenses: ["none", "VAE"], gridImages: 3, gridEpsilon: 0.1 });
  assert.deepEqual(
    gray.map((r) => `${r.attack}@${r.epsilon}:${r.tasks.length}`),
    ["A@0:3", "A@0.1:3", "B@0:3", "B@0.1:3"],
  );
  assert.deepEqual(
    gray[0].tasks.map((t) => t.id),
    gray[2].tasks.map((t) => t.id),
  );
  assert.equal(gray[0].tasks[0].cell.attack, CLEAN_ATTACK);
  assert.deepEqual(
    gray[1].tasks.map((t) => [t.start, t.count]),
    [
      [0, 4],
      [4, 4],
      [8, 2],
    ],
  );
  assert.equal(uniqueTasks(gray).length, 9);
  const withGrid = uniqueTasks(gray).filter((t) => t.gridImages !== undefined);
  assert.deepEqual(
    withGrid.map((t) => [t.cell.attack, t.cell.epsilon, t.cell.shard, t.gridImages]),
    [["A", 0.1, 0, 3]],
  );

  const adaptive = planSweep({
    ...common,
    mode: "adaptive",
    defenses: ["none", "VAE"],
    gridImages: 3,
    gridEpsilon: 0.1,
  });
  assert.equal(adaptive[1].tasks.length, 6);
  assert.deepEqual([...new Set(adaptive[1].tasks.map((t) => t.cell.defense))], ["none", "VAE"]);
  assert.ok(
    uniqueTasks(adaptive).every((t) => t.gridImages === undefined),
    "no grid in adaptive mode",
  );
});

test("a cell's seed depends on the sweep's seed and the cell only", () => {
  const cell = { attack: "A", mode: "gray-box" as const, epsilon: 0.1, shard: 1 };
  const inPlan = (attacks: { name: string }[]) =>
    uniqueTasks(
      planSweep({ attacks, epsilons: [0, 0.1], mode: "gray-box", defenses: ["d"], images: 8, shardSize: 4, seed: 5 }),
    ).find((t) => t.cell.attack === "A" && t.cell.epsilon === 0.1 && t.cell.shard === 1)!.seed;
  assert.equal(inPlan([{ name: "A" }]), cellSeed(5, cell));
  assert.equal(inPlan([{ name: "Z" }, { name: "A" }]), cellSeed(5, cell), "other cells before it change nothing");
  const seeds = new Set([
    cellSeed(5, cell),
    cellSeed(6, cell),
    cellSeed(5, { ...cell, shard: 0 }),
    cellSeed(5, { ...cell, epsilon: 0.2 }),
    cellSeed(5, { ...cell, mode: "adaptive", defense: "d" }),
  ]);
  assert.equal(seeds.size, 5);
});

test("merge: accuracies are means over passes of the summed counts; rel-L2 per image (per defense when adaptive)", () => {
  const plan = planSweep({
    attacks: [{ name: "A" }],
    epsilons: [0.1],
    mode: "adaptive",
    defenses: ["none", "VAE"],
    images: 6,
    shardSize: 4,
    seed: 0,
  });
  const row = plan[0];
  const results = new Map<string, CellResult>();
  for (const t of row.tasks) {
    const isVae = t.cell.defense === "VAE";
    results.set(t.id, {
      images: t.count,
      correct: { [t.cell.defense!]: isVae ? [t.count, t.count - 1] : [t.count - 1] },
      relL2Sum: isVae ? 0.6 : 0.3,
    });
  }
  const merged = mergeRow(row, results, ["none", "VAE"]);
  assert.equal(merged.accuracy.none, 4 / 6);
  assert.equal(merged.accuracy.VAE, (6 / 6 + 4 / 6) / 2);
  assert.ok(Math.abs(merged.std!.VAE - Math.SQRT2 * (1 / 6)) < 1e-12);
  assert.equal(merged.std!.none, undefined);
  assert.deepEqual(merged.relL2ByDefense, { none: 0.6 / 6, VAE: 1.2 / 6 });
  assert.equal(merged.relL2, (0.6 / 6 + 1.2 / 6) / 2);
});

/** Runs the cells in reverse order, or only the first `limit` of them and then fails. */
function reorderedRunner(opts: SweepOptions, limit?: number): CellRunner {
  const inner = localRunner(opts);
  return {
    where: "in reverse",
    async run(tasks: CellTask[], events) {
      const order = [...tasks].reverse();
      await inner.run(limit === undefined ? order : order.slice(0, limit), events);
      if (limit !== undefined) throw new VaeguardError("stopped on purpose");
    },
  };
}

for (const mode of ["gray-box", "adaptive"] as const) {
  test(`${mode}: the table does not depend on the order of the cells nor on an interruption`, async () => {
    const straight = join(dir, `straight-${mode}.json`);
    const reference = await sweep({ ...options(mode), resultsFile: straight, gridImages: 2, gridEpsilon: 0.1 });
    assert.equal(reference.rows.length, 4);
    assert.ok(reference.rows.some((r) => r.relL2 > 0));
    if (mode === "gray-box") assert.equal(reference.grid?.original.length, 2);

    // Reverse order, in two runs: the first stops after 3 cells.
    const reversed = join(dir, `reversed-${mode}.json`);
    const opts = { ...options(mode), resultsFile: reversed, gridImages: 2, gridEpsilon: 0.1 };
    await assert.rejects(
      sweep({ ...opts, runner: reorderedRunner(opts, 3) }),
      (e: Error) =>
        e instanceof VaeguardError &&
        /^stopped on purpose \(3 of \d+ cells are stored in .*; the same command resumes\)$/.test(e.message),
    );
    const lines: string[] = [];
    const resumed = await sweep({ ...opts, runner: reorderedRunner(opts), log: (l) => lines.push(l) });
    assert.match(lines[0], /resuming .* \(\d rows, 3 of \d+ cells already done\)/);
    assert.deepEqual(resumed.rows, reference.rows);
    assert.equal(readFileSync(reversed, "utf8"), readFileSync(straight, "utf8"));
  });
}

test("a runner that leaves cells unfinished gives no table", async () => {
  const silent: CellRunner = { where: "nowhere", run: async () => undefined };
  await assert.rejects(
    sweep({ ...options("gray-box"), runner: silent }),
    /the cells ran nowhere but 9 never finished \(0 of 9 cells are stored; the same command resumes\)/,
  );
});

test("a results file of the per-row seeding is refused with a pointer to --restart", async () => {
  const file = join(dir, "old.json");
  writeFileSync(file, JSON.stringify({ format: "vaeguard-sweep/1", fingerprint: {}, rows: [] }));
  await assert.rejects(
    sweep({ ...options("gray-box"), resultsFile: file }),
    /old\.json: was made by an earlier vaeguard that seeded by row, not by cell; delete it or pass --restart/,
  );
});

test(
  "runCell frees every tensor, on success and when a defense fails mid-cell",
  leakFree(async () => {
    const opts = options("gray-box");
    const task = uniqueTasks(
      planSweep({
        attacks: opts.attacks,
        epsilons: [0.1],
        mode: "gray-box",
        defenses: defenses.map((d) => d.name),
        images: 10,
        shardSize: 4,
        seed: 0,
        gridImages: 2,
        gridEpsilon: 0.1,
      }),
    ).find((t) => t.gridImages !== undefined)!;
    const ok = await runCell(opts, task);
    assert.equal(ok.images, 4);
    assert.equal(ok.grid?.adversarial.length, 2);

    let calls = 0;
    const failing: Defense = {
      ...defenses[1],
      name: "VAE",
      randomized: true,
      gradient: defenses[1].gradient,
      attackView: (x: Tensor) => defenses[1].attackView(x),
      describe: () => defenses[1].describe(),
      apply: async (x: Tensor) => {
        if (++calls === 3) throw new VaeguardError("defense failed on purpose");
        return defenses[1].apply(x);
      },
    };
    await assert.rejects(runCell({ ...opts, defenses: [defenses[0], failing] }, task), /defense failed on purpose/);
    assert.equal(calls, 3);
  }),
);

test("shares of the cells in separate files merge into the whole table; a partial sweep covers the first whole shards", async () => {
  const opts = { ...options("gray-box"), keepPredictions: true };
  const reference = await sweep(opts);
  assert.equal(reference.images, 10);
  // Kept predictions: image i of each row, first pass; the deterministic column's count is its accuracy.
  const labels = data.labels.toArray() as number[];
  for (const [i, row] of reference.rows.entries()) {
    const preds = reference.predictions![i]["No defense"];
    assert.equal(preds.length, 10);
    assert.equal(preds.filter((p, j) => p === labels[j]).length / 10, row.accuracy["No defense"]);
  }

  // Shards 0 and 2 in one process, 1 in another; a third takes both files and runs nothing.
  const shares = [0, 1].map((k) => join(dir, `share-${k}.json`));
  for (const [k, file] of shares.entries()) {
    await sweep({ ...opts, resultsFile: file, only: (t) => t.cell.shard % 2 === k, partial: true });
  }
  const nothing: CellRunner = { where: "nowhere", run: async () => undefined };
  const merged = await sweep({ ...opts, resultsFile: join(dir, "merged.json"), mergeFrom: shares, runner: nothing });
  assert.deepEqual(merged, reference);

  // Shards 0 and 2 done, 1 missing: the rows cover shard 0 only, as a sweep of its 4 images would.
  const partial = await sweep({ ...opts, resultsFile: shares[0], runner: nothing, partial: true });
  assert.equal(partial.images, 4);
  const first4 = { ...data, images: data.images.narrow(0, 0, 4), labels: data.labels.narrow(0, 0, 4) };
  try {
    assert.deepEqual(partial.rows, (await sweep({ ...opts, data: first4 })).rows);
  } finally {
    dispose([first4.images, first4.labels]);
  }
  // A time cap of 0 starts no cell: no rows, no images, no error.
  assert.deepEqual(await sweep({ ...opts, maxSeconds: 0, partial: true }), { rows: [], images: 0 });
});
