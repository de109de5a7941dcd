import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { noGrad, noGradAsync, tidy } from "../../src/core/engine.js";
import { CheckpointError } from "../../src/core/errors.js";
import { tensor, type Tensor } from "../../src/core/tensor.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { FGSM } from "../../src/attacks/fgsm.js";
import { Mlp } from "../../src/models/mlp.js";
import { ConvVae } from "../../src/models/vae.js";
import { trainPurifier, type TrainPurifierOptions } from "../../src/train/purifier.js";
import {
  disposeReplaySet,
  joinReplaySets,
  loadReplaySet,
  makeReplaySet,
  replayRows,
  saveReplaySet,
  type ReplaySet,
} from "../../src/train/replay.js";
import type { ImageDataset } from "../../src/data/index.js";
import { synthetic, trainedMlp } from "../attacks/helpers.js";

function dataset(x: Tensor, y: Tensor): ImageDataset {
  return { images: x, labels: y, classNames: ["a", "b", "c", "d"], name: "synthetic", source: "test" };
}

const maxAbs = (a: Tensor, b: Tensor) => noGrad(() => tidy(() => a.sub(b).abs().max().item()));

test("a replay set holds each image's clean and attacked version, counts the fooled ones, and survives a save and load", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-replay-"));
  const data = synthetic(30, 11);
  const clf = trainedMlp(data, 60);
  let set: ReplaySet | undefined;
  let loaded: ReplaySet | undefined;
  try {
    const seen: [number, number][] = [];
    const isFooled = async (x: Tensor, y: Tensor) => noGradAsync(() => tidy(() => clf.forward(x).argmax(1).ne(y)));
    set = await makeReplaySet(dataset(data.x, data.y), new FGSM(clf, { eps: 0.2 }), {
      batchSize: 12,
      about: { attack: "fgsm" },
      isFooled,
      onBatch: (done, fooled) => seen.push([done, fooled]),
    });
    assert.deepEqual(
      seen.map(([d]) => d),
      [12, 24, 30],
    );
    assert.deepEqual(set.clean.dims, [30, 1, 8, 8]);
    assert.equal(maxAbs(set.clean, data.x), 0, "the clean images are the data set's, in order");
    assert.deepEqual(set.labels.toArray(), data.y.toArray());
    const moved = maxAbs(set.adversarial, set.clean);
    assert.ok(moved > 0.19 && moved <= 0.2 + 1e-6, `FGSM moves pixels by eps (${moved})`);
    const fooled = noGrad(() => tidy(() => clf.forward(set!.adversarial).argmax(1).ne(data.y).sum().item()));
    assert.equal(Number(set.about.fooled), fooled);
    assert.equal(seen.at(-1)![1], fooled);
    assert.ok(fooled > 0, "eps 0.2 fools some of the synthetic images");
    assert.equal(set.about.attack, "fgsm");
    assert.equal(set.about.images, "30");

    const file = join(dir, "set.safetensors");
    saveReplaySet(file, set);
    loaded = loadReplaySet(file, [1, 8, 8], 4);
    for (const k of ["clean", "adversarial", "labels"] as const) assert.equal(maxAbs(loaded[k], set[k]), 0);
    assert.equal(loaded.about.fooled, set.about.fooled);
  } finally {
    if (set) disposeReplaySet(set);
    if (loaded) disposeReplaySet(loaded);
    rmSync(dir, { recursive: true, force: true });
    data.dispose();
    clf.dispose();
  }
});

test("replay rows depend only on their seed, without repeats while the set is large enough", () => {
  const n = 10;
  const set: ReplaySet = {
    clean: tensor(
      Float32Array.from({ length: n * 4 }, (_, i) => Math.floor(i / 4) / n),
      [n, 1, 2, 2],
    ),
    adversarial: tensor(
      Float32Array.from({ length: n * 4 }, (_, i) => Math.floor(i / 4) / n),
      [n, 1, 2, 2],
    ),
    labels: tensor(
      BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
      [n],
    ),
    about: {},
  };
  const pick = (count: number, seed: number[]) => {
    const r = replayRows(set, count, seed);
    const labels = r.labels.toArray() as number[];
    // Each row's images belong to its label: the rows are drawn together.
    assert.deepEqual(
      noGrad(() => tidy(() => r.clean.mean([1, 2, 3]).mul(n).round().toArray())),
      labels,
    );
    for (const t of [r.clean, r.adversarial, r.labels]) t.dispose();
    return labels;
  };
  const a = pick(6, [1, 2, 3]);
  assert.deepEqual(pick(6, [1, 2, 3]), a);
  assert.equal(new Set(a).size, 6, "no repeats");
  assert.notDeepEqual(pick(6, [1, 2, 4]), a);
  assert.equal(new Set(pick(10, [5])).size, 10, "the whole set when count equals its size");
  assert.equal(pick(25, [5]).length, 25, "with repeats when the set is smaller");
  disposeReplaySet(set);
});

test("replay sets join in order, keeping shared metadata once and every differing value", () => {
  const part = (first: number, about: Record<string, string>): ReplaySet => ({
    clean: tensor(Float32Array.from([first, first + 1].map((v) => v / 10)), [2, 1, 1, 1]),
    adversarial: tensor(Float32Array.from([first, first + 1].map((v) => v / 20)), [2, 1, 1, 1]),
    labels: tensor(BigInt64Array.from([BigInt(first), BigInt(first + 1)]), [2]),
    about,
  });
  const joined = joinReplaySets([
    part(0, { attack: "square", rows: "0..1" }),
    part(2, { attack: "square", rows: "2..3", fooled: "1" }),
  ]);
  assert.deepEqual(joined.labels.toArray(), [0, 1, 2, 3]);
  assert.deepEqual(
    (joined.clean.toArray() as number[]).map((v) => Math.round(v * 10)),
    [0, 1, 2, 3],
  );
  assert.deepEqual(joined.about, { attack: "square", rows: "0..1; 2..3", fooled: "-; 1" });
  disposeReplaySet(joined);
});

test("a file that is not a replay set for these images is refused, naming the file and the problem", () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-replay-bad-"));
  const good = () => ({
    clean: tensor(new Float32Array(2 * 64).fill(0.5), [2, 1, 8, 8]),
    adversarial: tensor(new Float32Array(2 * 64).fill(0.6), [2, 1, 8, 8]),
    labels: tensor(BigInt64Array.from([0n, 3n]), [2]),
  });
  const cases: [string, (t: ReturnType<typeof good>) => Record<string, Tensor>, RegExp][] = [
    ["missing", ({ clean, labels }) => ({ clean, labels }), /is not a replay set: it has no 'adversarial' tensor/],
    [
      "shape",
      (t) => ({ ...t, clean: tensor(new Float32Array(2 * 3 * 64), [2, 3, 8, 8]) }),
      /holds 'clean' images float32 \[2, 3, 8, 8\] but the data set's are float32 \[N, 1, 8, 8\]/,
    ],
    [
      "range",
      (t) => ({ ...t, adversarial: tensor(new Float32Array(2 * 64).fill(1.5), [2, 1, 8, 8]) }),
      /holds 'adversarial' values outside \[0, 1\]/,
    ],
    ["labels", (t) => ({ ...t, labels: tensor(BigInt64Array.from([0n, 4n]), [2]) }), /holds labels outside 0\.\.3/],
    ["count", (t) => ({ ...t, labels: tensor(BigInt64Array.from([0n]), [1]) }), /holds 2 clean images but/],
  ];
  try {
    for (const [name, make, message] of cases) {
      const file = join(dir, `${name}.safetensors`);
      const tensors = make(good());
      saveSafetensors(file, tensors);
      for (const t of Object.values(tensors)) t.dispose();
      assert.throws(
        () => loadReplaySet(file, [1, 8, 8], 4),
        (e: unknown) => e instanceof CheckpointError && e.message.startsWith(file) && message.test(e.message),
        name,
      );
    }
    const text = join(dir, "not-safetensors.safetensors");
    writeFileSync(text, "not a safetensors file");
    assert.throws(() => loadReplaySet(text, [1, 8, 8], 4), CheckpointError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("purifier training mixes replay rows into every batch, and a replay run does not resume without its set", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vaeguard-replay-train-"));
  const data = synthetic(32, 7);
  const clf = trainedMlp(data, 60);
  const classifier = Object.assign(clf, { inputShape: [1, 8, 8] as const, numClasses: 4 }) as unknown as Mlp;
  const replay = await makeReplaySet(dataset(data.x, data.y), new FGSM(clf, { eps: 0.3 }), {
    about: { attack: "fgsm" },
  });
  const smallVae = () => new ConvVae({ inputShape: [1, 8, 8], encoder: [{ channels: 4, pool: true }], latentDim: 8 });
  const base = (checkpoint: string): TrainPurifierOptions => ({
    classifier,
    makeModel: smallVae,
    train: dataset(data.x, data.y),
    epochs: 1,
    batchSize: 16,
    lr: 1e-3,
    seed: 3,
    checkpoint,
    quiet: true,
    attack: { kind: "fgsm-rs", alpha: 1.25 },
    eps: 0.1,
    rampEpochs: 0,
    validationAttackSamples: 0,
  });
  try {
    const plain = await trainPurifier(base(join(dir, "plain.safetensors")));
    const mixedFile = join(dir, "mixed.safetensors");
    const mixed = await trainPurifier({ ...base(mixedFile), replay, replayBatch: 8 });
    const replayAcc = mixed.history[0].train!.replayAcc;
    assert.ok(replayAcc >= 0 && replayAcc <= 1, `replay accuracy is reported (${replayAcc})`);
    assert.equal(plain.history[0].train!.replayAcc, undefined);
    const differs = [...plain.model.stateDict()].some(([k, t]) => maxAbs(t, mixed.model.stateDict().get(k)!) > 0);
    assert.ok(differs, "the replay rows change what the purifier learns");
    await assert.rejects(
      trainPurifier({ ...base(mixedFile), epochs: 2 }),
      (e: unknown) =>
        e instanceof CheckpointError && /was trained with replay = \{.*"attack":"fgsm".*\}, not/.test(e.message),
    );
    await assert.rejects(
      trainPurifier({ ...base(mixedFile), replay: {} as ReplaySet }),
      /Expected a replay set for replay/,
    );
    plain.model.dispose();
    mixed.model.dispose();
  } finally {
    disposeReplaySet(replay);
    rmSync(dir, { recursive: true, force: true });
    data.dispose();
    clf.dispose();
  }
});
