/**
 * The sweep's cells on threads of this process (eval/thread-runner.ts): the
 * results file is byte for byte the one-thread run's, gray-box and adaptive,
 * with randomized defenses scored over several passes and EOT draws (every
 * cell draws from its own thread's generator, seeded from the cell); a thread
 * that cannot load the run's model stops the sweep with one clear line; the
 * schedule keeps direction groups together and takes expensive cells first.
 * On the small random fixtures of the grid-reuse tests.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dispose, getNumThreads, manualSeed, setNumThreads } from "../../src/core/engine.js";
import { sharedTensorCount } from "../../src/core/concurrency.js";
import type { ImageDataset } from "../../src/data/index.js";
import { MnistCnn } from "../../src/models/classifiers.js";
import { saveCheckpoint } from "../../src/models/checkpoint.js";
import { planSweep, uniqueTasks, type CellTask } from "../../src/eval/cells.js";
import { CellScheduler, cellCost, directionGroup } from "../../src/eval/cell-schedule.js";
import {
  EvaluationCache,
  datasetSha256,
  fileSha256,
  type EvaluationSetup,
  type SetupAttack,
} from "../../src/eval/evaluation.js";
import { localRunner, sweep, type CellRunner } from "../../src/eval/sweep.js";
import { threadRunner } from "../../src/eval/thread-runner.js";
import type { AttackMode } from "../../src/eval/results.js";
import { memory } from "../../src/core/engine.js";
import { randomMnistLike } from "../helpers/random-data.js";
import { tinyVae } from "../defenses/helpers.js";

const threads = getNumThreads();
const EPSILONS = [0, 0.05, 0.1, 0.2];
const ATTACKS: SetupAttack[] = [
  { name: "FGSM", kind: "fgsm", params: {} },
  { name: "I-FGSM(2)", kind: "ifgsm", params: { steps: 2 } },
];
let dir = "";
let data: ImageDataset;
let setup: EvaluationSetup;

before(() => {
  setNumThreads(1);
  dir = mkdtempSync(join(tmpdir(), "vaeguard-thread-runner-"));
  manualSeed(5);
  const clf = new MnistCnn();
  const vae = tinyVae([1, 28, 28], 2);
  const files = { classifier: join(dir, "clf.safetensors"), vae: join(dir, "vae.safetensors") };
  saveCheckpoint(files.classifier, clf);
  saveCheckpoint(files.vae, vae);
  clf.dispose();
  vae.dispose();
  data = randomMnistLike(10);
  setup = {
    dataset: "mnist",
    samples: 10,
    dataSha256: datasetSha256(data),
    classifier: { path: files.classifier, sha256: fileSha256(files.classifier) },
    vae: { path: files.vae, sha256: fileSha256(files.vae) },
    // A deterministic pair and a randomized VAE scored over 2 passes: its numbers see the generator's state.
    defenses: ["none", "jpeg:23", "vae"],
    attacks: ATTACKS,
    eot: 2,
    passes: 2,
    batchSize: 3,
    seed: 11,
    shardSize: 4,
  };
});

after(() => {
  dispose([data.images, data.labels]);
  rmSync(dir, { recursive: true, force: true });
  setNumThreads(threads);
});

/** One mode's sweep of the setup into `file`, its cells run by `runner` (default: this thread). */
async function sweepInto(
  file: string,
  mode: AttackMode,
  runner: ((cache: EvaluationCache, s: EvaluationSetup) => CellRunner) | undefined,
  s = setup,
) {
  const cache = new EvaluationCache();
  // The pipeline's own copy of the data: the cache frees it, so it gets a clone.
  cache.adoptTestData(s, { ...data, images: data.images.clone(), labels: data.labels.clone() });
  try {
    const ctx = cache.sweepContext(s);
    return await sweep({
      ...ctx,
      epsilons: EPSILONS,
      mode,
      seed: s.seed,
      shardSize: s.shardSize,
      resultsFile: file,
      gridImages: 2,
      gridEpsilon: 0.2,
      runner: runner?.(cache, s),
      quiet: true,
      log: () => undefined,
    });
  } finally {
    cache.dispose();
  }
}

const onThreads = (jobs: number) => (cache: EvaluationCache, s: EvaluationSetup) =>
  threadRunner({
    setup: s,
    test: cache.testData(s),
    jobs,
    threadsPerJob: 1,
    single: () => localRunner(cache.sweepContext(s)),
  });

for (const mode of ["gray-box", "adaptive"] as const) {
  test(`${mode}: cells on 2 and 3 threads write the one-thread run's results file, byte for byte`, async () => {
    const before = memory().numTensors;
    const file = (name: string) => join(dir, `${mode}-${name}.json`);
    const one = await sweepInto(file("one"), mode, undefined);
    for (const jobs of [2, 3]) {
      const many = await sweepInto(file(`jobs${jobs}`), mode, onThreads(jobs));
      assert.deepEqual(many.rows, one.rows);
      assert.equal(readFileSync(file(`jobs${jobs}`), "utf8"), readFileSync(file("one"), "utf8"));
    }
    // Not vacuous: the attacked rows differ from the clean ones, and the randomized VAE's passes differ.
    assert.ok(one.rows.some((r) => r.epsilon > 0 && r.relL2 > 0));
    assert.ok(one.rows.some((r) => (r.std?.VAE ?? 0) > 0));
    assert.equal(sharedTensorCount(), 0);
    assert.equal(memory().numTensors, before);
  });
}

test("a thread that finds another checkpoint than the run names stops the sweep with one clear line", async () => {
  const other = join(dir, "other.safetensors");
  writeFileSync(other, readFileSync(setup.classifier.path));
  // The run names the file's content, then the file changes under it.
  const s = { ...setup, classifier: { path: other, sha256: fileSha256(other) } };
  const changed = (cache: EvaluationCache, x: EvaluationSetup) => {
    const runner = onThreads(2)(cache, x);
    return {
      where: runner.where,
      run: (tasks: CellTask[], events: Parameters<CellRunner["run"]>[1]) => {
        writeFileSync(other, readFileSync(setup.vae!.path));
        return runner.run(tasks, events);
      },
    };
  };
  await assert.rejects(
    sweepInto(join(dir, "changed.json"), "gray-box", changed, s),
    /other\.safetensors: has sha256 \w+ but the run names \w+.*\(0 of \d+ cells are stored in .*changed\.json; the same command resumes\)/,
  );
  assert.equal(sharedTensorCount(), 0);
});

test("the schedule: expensive cells first, a thread keeps to its direction groups, then helps with the others'", () => {
  const plan = planSweep({
    attacks: [{ name: "FGSM" }, { name: "I-FGSM(2)" }],
    epsilons: EPSILONS,
    mode: "gray-box",
    defenses: ["none"],
    images: 10,
    shardSize: 4,
    seed: 11,
  });
  const tasks = uniqueTasks(plan);
  const cost = (t: CellTask) => cellCost(t, ATTACKS);
  assert.equal(cost(tasks.find((t) => t.cell.attack === "I-FGSM(2)" && t.cell.shard === 0)!), 4 * 3);
  assert.equal(cost(tasks.find((t) => t.cell.attack === "FGSM" && t.cell.shard === 2)!), 2 * 2);
  assert.equal(cost(tasks.find((t) => t.cell.epsilon === 0 && t.cell.shard === 0)!), 4);
  const schedule = new CellScheduler(tasks, cost);
  const first = [schedule.next(0)!, schedule.next(1)!];
  // The most expensive cells, of two different shards (groups).
  assert.deepEqual(
    first.map((t) => [t.cell.attack, t.cell.shard]),
    [
      ["I-FGSM(2)", 0],
      ["I-FGSM(2)", 1],
    ],
  );
  const taken = new Map<number, CellTask[]>([
    [0, [first[0]]],
    [1, [first[1]]],
  ]);
  for (let k = 0; schedule.remaining > 0; k++) taken.get(k % 2)!.push(schedule.next(k % 2)!);
  // Thread 0 ran all of shard 0 before anything else; each thread's own cells came most expensive first.
  const zero = taken.get(0)!;
  const shard0 = tasks.filter((t) => directionGroup(t) === directionGroup(first[0])).length;
  assert.ok(zero.slice(0, shard0).every((t) => t.cell.shard === 0));
  const costs = zero.slice(0, shard0).map(cost);
  assert.deepEqual(
    costs,
    [...costs].sort((a, b) => b - a),
  );
  assert.equal(taken.get(0)!.length + taken.get(1)!.length, tasks.length);
  assert.equal(new Set([...taken.values()].flat().map((t) => t.id)).size, tasks.length);
});
