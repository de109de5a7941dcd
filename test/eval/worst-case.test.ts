import { test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed } from "../../src/core/engine.js";
import { NoDefense } from "../../src/defenses/none.js";
import { VaeDefense } from "../../src/defenses/vae.js";
import { ConvVae } from "../../src/models/vae.js";
import {
  maskingChecks,
  resolveWorstCaseSettings,
  worstCaseCell,
  type BatchStore,
  type FinishedBatch,
} from "../../src/eval/worst-case.js";
import { renderWorstCaseMarkdown, renderWorstCaseReport, renderWorstCaseText } from "../../src/report/worst-case.js";
import { synthetic, trainedMlp } from "../attacks/helpers.js";
import { leakFree } from "../helpers/assert.js";

/** Runs `fn` once and fails if a tensor outlived it. */
const assertNoLeak = (fn: () => Promise<void> | void): Promise<void> => leakFree(fn)();

const small = { steps: 5, restarts: 1, eot: 2, squareQueries: 30, passes: 2, batchSize: 8 };

test("the worst case is the per-image minimum over the clean image and every attack, with a Wilson interval", async () => {
  const data = synthetic(16, 11);
  const model = trainedMlp(data);
  await assertNoLeak(async () => {
    const cell = await worstCaseCell(model, new NoDefense(), data.x, data.y, { eps: 0.05, ...small });
    assert.equal(cell.n, 16);
    assert.deepEqual(
      cell.attacks.map((a) => a.attack),
      ["pgd-ce", "pgd-margin", "square", "transfer"],
    );
    assert.equal(cell.randomized, false);
    // PGD-CE with 5 restarts (the default) on the first 500 images: here all 16.
    assert.equal(cell.subset?.name, "PGD(5)x5 on the first 16");
    assert.equal(cell.subset?.perImage.length, 16);
    for (let i = 0; i < cell.n; i++) {
      const candidates: number[] = [
        cell.clean.perImage[i],
        ...cell.attacks.map((a) => a.perImage[i]),
        cell.subset!.perImage[i],
      ];
      assert.equal(cell.perImage[i], Math.min(...candidates));
      assert.ok(
        candidates.every((v) => v === 0 || v === 1),
        "a deterministic defense scores 0 or 1 per image",
      );
    }
    for (const a of cell.attacks) assert.ok(cell.worstCase <= a.accuracy + 1e-12);
    assert.ok(cell.worstCase <= cell.clean.accuracy);
    assert.ok(cell.interval[0] <= cell.worstCase && cell.worstCase <= cell.interval[1]);
    assert.equal(cell.pgdTrace.length, small.steps);
    assert.match(cell.attacks[0].name, /^PGD\(5\)$/);
    assert.match(cell.attacks[1].name, /^PGD-margin\(5\)$/);
    assert.match(renderWorstCaseText([cell]), /PGD \(CE\) x5, first 16\s+worst case\s+95% interval/);
    assert.match(renderWorstCaseMarkdown([cell]), /\| No defense \| 0.05 \| 16 \|/);
  });
  data.dispose();
  model.dispose();
});

test("a cell's numbers depend only on the seed, and eps 0 leaves the clean accuracy", async () => {
  const data = synthetic(12, 12);
  const model = trainedMlp(data);
  const run = async (seed: number) => {
    manualSeed(999 + seed); // what ran before must not matter
    return worstCaseCell(model, new NoDefense(), data.x, data.y, { eps: 0.05, ...small, seed });
  };
  const a = await run(1);
  const b = await run(1);
  assert.deepEqual(
    a.attacks.map((x) => x.perImage),
    b.attacks.map((x) => x.perImage),
  );
  const zero = await worstCaseCell(model, new NoDefense(), data.x, data.y, { eps: 0, ...small });
  assert.equal(zero.worstCase, zero.clean.accuracy);
  data.dispose();
  model.dispose();
});

test("a randomized defense is scored as the fraction of passes per image, with EOT in the attack names", async () => {
  const data = synthetic(8, 13);
  const model = trainedMlp(data, 60);
  manualSeed(5);
  const vae = new ConvVae({ inputShape: [1, 8, 8], encoder: [{ channels: 4, pool: true }], latentDim: 8 });
  const cell = await worstCaseCell(model, new VaeDefense(vae), data.x, data.y, {
    eps: 0.05,
    ...small,
    attacks: ["pgd-ce", "square"],
  });
  assert.equal(cell.randomized, true);
  assert.match(cell.attacks[0].name, /EOT 2$/);
  assert.ok(
    cell.perImage.every((v) => [0, 0.5, 1].includes(v)),
    "two passes: 0, 1/2 or 1 per image",
  );
  const masking = await maskingChecks(model, new VaeDefense(vae), data.x, data.y, cell, { samples: 4 });
  const checks = masking.findings.map((f) => f.check).sort();
  assert.deepEqual(checks, ["black-box", "convergence", "convergence", "decay", "monotone"]);
  assert.equal(masking.samples, 4);
  assert.equal(masking.largeEps.epsilon, 0.5);
  assert.match(
    renderWorstCaseReport({ title: "t", about: ["a"], cells: [cell], masking: { [`${cell.defense}|0.05`]: masking } }),
    /## Gradient-masking checks/,
  );
  vae.dispose();
  data.dispose();
  model.dispose();
});

/** A batch store in memory that fails like a killed process once it has taken `limit` new batches. */
function memoryStore(limit = Infinity): BatchStore & { batches: Map<string, FinishedBatch>; puts: number } {
  const store = {
    batches: new Map<string, FinishedBatch>(),
    puts: 0,
    get: (key: string) => store.batches.get(key),
    put: (key: string, batch: FinishedBatch) => {
      if (store.puts >= limit) throw new Error("stopped");
      store.puts++;
      store.batches.set(key, batch);
    },
  };
  return store;
}

test("a cell stopped in the middle resumes from its finished batches with the numbers of an unstopped run", async () => {
  const data = synthetic(24, 14);
  const model = trainedMlp(data);
  // The 5-restart PGD-CE on the first 12 images: all of batch 0 and half of batch 1.
  const settings = { eps: 0.05, ...small, seed: 3, subsetSamples: 12 };
  const whole = await worstCaseCell(model, new NoDefense(), data.x, data.y, settings);
  const checksWhole = await maskingChecks(model, new NoDefense(), data.x, data.y, whole, { samples: 12 });

  // 3 batches of 8 images x 4 attacks, and 2 of the subset's; the run stops after 5 of its 14 batches.
  const store = memoryStore(5);
  await assert.rejects(worstCaseCell(model, new NoDefense(), data.x, data.y, settings, { batches: store }), /stopped/);
  assert.equal(store.batches.size, 5);
  const stored = new Map(store.batches);
  const resumedStore = memoryStore();
  for (const [k, b] of stored) resumedStore.batches.set(k, b);
  const lines: string[] = [];
  const resumed = await worstCaseCell(model, new NoDefense(), data.x, data.y, settings, {
    batches: resumedStore,
    log: (l) => lines.push(l),
  });
  // Batch by batch, every attack first: the log gives the worst case of the images finished so far.
  const soFar = (k: number) => whole.perImage.slice(0, k).reduce((a, v) => a + v, 0) / k;
  assert.ok(
    lines.includes(`No defense, eps 0.05: 8 of 24 images: worst case so far ${soFar(8).toFixed(4)}`),
    lines.join("\n"),
  );
  assert.ok(lines.includes(`No defense, eps 0.05: 16 of 24 images: worst case so far ${soFar(16).toFixed(4)}`));
  assert.equal(resumedStore.puts, 14 - 5, "only the batches not yet finished are attacked");
  assert.equal(whole.subset?.perImage.length, 12);
  assert.deepEqual(resumed.subset?.perImage, whole.subset?.perImage);
  assert.ok(resumedStore.batches.has("pgd-ce/5/5 eps 0.05 images 8+4"), [...resumedStore.batches.keys()].join("\n"));
  assert.deepEqual(
    resumed.attacks.map((a) => a.perImage),
    whole.attacks.map((a) => a.perImage),
  );
  assert.deepEqual(resumed.perImage, whole.perImage);
  assert.deepEqual(resumed.pgdTrace, whole.pgdTrace);

  // A stored batch is taken as it is, not attacked again: a batch marked all-wrong shows in the scores.
  const forged = memoryStore();
  const firstPgd = [...stored.keys()][0];
  assert.match(firstPgd, /^pgd-ce\/5\/1 eps 0.05 images 0\+8$/);
  forged.batches.set(firstPgd, { perImage: new Array(8).fill(0), seconds: 0, trace: [] });
  const taken = await worstCaseCell(model, new NoDefense(), data.x, data.y, settings, { batches: forged });
  assert.deepEqual(taken.attacks[0].perImage.slice(0, 8), new Array(8).fill(0));
  assert.deepEqual(taken.attacks[0].perImage.slice(8), whole.attacks[0].perImage.slice(8));

  // The masking checks' extra attacks resume the same way.
  const checkStore = memoryStore(1);
  await assert.rejects(
    maskingChecks(model, new NoDefense(), data.x, data.y, whole, { samples: 12, batches: checkStore }),
    /stopped/,
  );
  const checkResumed = memoryStore();
  for (const [k, b] of checkStore.batches) checkResumed.batches.set(k, b);
  const checks = await maskingChecks(model, new NoDefense(), data.x, data.y, whole, {
    samples: 12,
    batches: checkResumed,
  });
  assert.ok(checkResumed.puts > 0 && checkResumed.batches.size > checkStore.batches.size);
  assert.deepEqual(checks, checksWhole);
  data.dispose();
  model.dispose();
});

test("the doubled-PGD check reports the worst case with its attack added, and warns when that lowers it", async () => {
  const data = synthetic(16, 15);
  const model = trainedMlp(data);
  const settings = { eps: 0.05, ...small, seed: 4, subsetSamples: 0 };
  const cell = await worstCaseCell(model, new NoDefense(), data.x, data.y, settings);
  const worstOf = (r: Awaited<ReturnType<typeof maskingChecks>>) =>
    r.findings.find((f) => /images is .* over the cell's attacks/.test(f.message));

  const store = memoryStore();
  const honest = await maskingChecks(model, new NoDefense(), data.x, data.y, cell, { samples: 12, batches: store });
  const twiceKeys = [...store.batches.keys()].filter((k) => k.startsWith("pgd-ce/10/2 "));
  assert.deepEqual(twiceKeys, ["pgd-ce/10/2 eps 0.05 images 0+8", "pgd-ce/10/2 eps 0.05 images 8+4"]);
  const twicePerImage = twiceKeys.flatMap((k) => store.batches.get(k)!.perImage);
  const expected = cell.perImage.slice(0, 12).map((v, i) => Math.min(v, twicePerImage[i]));
  assert.deepEqual(honest.doubled?.worstCase, {
    cell: cell.perImage.slice(0, 12).reduce((a, v) => a + v, 0) / 12,
    withDoubled: expected.reduce((a, v) => a + v, 0) / 12,
  });
  assert.ok(worstOf(honest), honest.findings.map((f) => f.message).join("\n"));

  // A doubled PGD that breaks every image (its stored batches say so) must lower the worst case and warn.
  const forged = memoryStore();
  for (const k of twiceKeys)
    forged.batches.set(k, { ...store.batches.get(k)!, perImage: store.batches.get(k)!.perImage.map(() => 0) });
  const broken = await maskingChecks(model, new NoDefense(), data.x, data.y, cell, { samples: 12, batches: forged });
  assert.equal(broken.doubled?.worstCase?.withDoubled, 0);
  assert.ok(
    cell.perImage.slice(0, 12).some((v) => v > 0),
    "the cell itself leaves some images standing",
  );
  const finding = worstOf(broken);
  assert.equal(finding?.level, "warning");
  assert.match(finding!.message, /with PGD\(10\)x2 added: the stronger PGD breaks images every other attack missed/);
  data.dispose();
  model.dispose();
});

test("worst-case settings are checked with one message each", () => {
  assert.throws(
    () => resolveWorstCaseSettings({ eps: 1.5 }),
    /Expected number between 0 and 1 for eps but received 1.5/,
  );
  assert.throws(() => resolveWorstCaseSettings({ eps: 0.1, steps: 0 }), /Expected integer of at least 1 for steps/);
  assert.throws(
    () => resolveWorstCaseSettings({ eps: 0.1, attacks: ["cw" as "square"] }),
    /Expected one of "pgd-ce", "pgd-margin", "square", "transfer" for attack but received "cw"/,
  );
  const s = resolveWorstCaseSettings({ eps: 0.1 });
  assert.deepEqual([s.steps, s.restarts, s.eot, s.squareQueries, s.squareEot], [100, 2, 10, 5000, 10]);
});
