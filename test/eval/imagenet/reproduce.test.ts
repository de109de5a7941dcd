/**
 * `vaeguard reproduce imagenet --quick` end to end on a tiny set in the NIPS
 * 2017 layout (six generated 299x299 PNGs, dev_dataset.csv with 1001-class
 * labels) and a tiny TF.js classifier with 1001 outputs built here: the split,
 * VAE training on the training half only, every output file, the columns,
 * the shared sweep's results file (cells with per-image predictions), reuse
 * and resume on a second run (from the stored cells, not recomputed), shares
 * of the cells merged, the time cap, the old results format refused, the old
 * command name, and one-line errors for bad input.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeNipsFixture, writePng } from "../../helpers/nips2017.js";

const bin = join(process.cwd(), "bin", "vaeguard.js");
let dir: string;
let images: string;
let model: string;

function run(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: "utf8",
    env: { ...process.env, VAEGUARD_THREADS: "1" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "vaeguard-nips-repro-"));
  ({ images, model } = await writeNipsFixture(dir));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const common = (out: string) => [
  "--quick",
  "--images",
  images,
  "--model",
  model,
  "--patch-sizes",
  "16,32",
  "--max-epochs",
  "2",
  "--checkpoints",
  join(dir, "ck"),
  "--out",
  out,
  "--eval-batch-size",
  "1",
  "--json",
  "--quiet",
];
let firstRows: Output["rows"] | undefined;

interface SweepFile {
  format: string;
  cells: Record<string, { images: number; correct: Record<string, number[]>; predictions: Record<string, number[]> }>;
}

interface Output {
  rows: { attack: string; epsilon: number; relL2: number; accuracy: Record<string, number> }[];
  images: number;
  split: { rule: string; evaluation: number; training: number };
  vaes: { patchSize: number; reused: boolean; history: unknown[]; stopReason: string }[];
  claims: { id: string; outcome: string }[];
  acceptance: { checks: { column: string }[] };
}

test("reproduce imagenet --quick: split, training half only, every output file, resume, and the old name", () => {
  const out = join(dir, "out");
  const r = run(["reproduce", "imagenet", ...common(out)]);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout) as Output;
  assert.deepEqual(res.split, { rule: "sorted-id-parity", evaluation: 3, training: 3 });
  assert.equal(res.images, 3);
  assert.deepEqual(
    res.rows.map((x) => `${x.attack}@${x.epsilon}`),
    ["FGSM@0", "FGSM@0.03", "I-FGSM@0", "I-FGSM@0.03"],
  );
  for (const row of res.rows) {
    assert.deepEqual(Object.keys(row.accuracy), [
      "No defense",
      "JPEG 10",
      "JPEG 23",
      "VAE 16x16 s16",
      "VAE 32x32 s32",
      "Ensemble",
    ]);
    for (const a of Object.values(row.accuracy)) assert.ok(a >= 0 && a <= 1);
    assert.equal(row.relL2 > 0, row.epsilon > 0);
  }
  assert.deepEqual(
    res.vaes.map((v) => [v.patchSize, v.reused, v.history.length]),
    [
      [16, false, 2],
      [32, false, 2],
    ],
  );
  assert.deepEqual(
    res.claims.map((c) => c.id),
    ["a", "b", "c"],
  );
  assert.equal(res.acceptance.checks.length, 2);
  for (const f of [
    "report.md",
    "results.json",
    "results.csv",
    "sweep-gray-box.json",
    "grid.png",
    "loss-curves.png",
    "plot-fgsm-gray-box.png",
    "plot-i-fgsm-gray-box.png",
  ]) {
    assert.ok(existsSync(join(out, f)), `${f} written`);
  }
  const report = readFileSync(join(out, "report.md"), "utf8");
  assert.match(report, /sorted-id-parity/);
  assert.match(report, /## The paper's claims/);
  assert.match(report, /## Acceptance: clean accuracy kept by each patch VAE/);
  assert.match(report, /Luo & Pfister 2018, Table 6/);
  // The shared sweep's file: a cell per (clean | FGSM | I-FGSM, shard of one image), each with
  // every column's prediction of its image; epsilon-0 rows of both attacks share the clean cells.
  const file = join(out, "sweep-gray-box.json");
  const sweep = JSON.parse(readFileSync(file, "utf8")) as SweepFile;
  assert.equal(sweep.format, "vaeguard-sweep/2");
  const cells = Object.entries(sweep.cells);
  assert.equal(cells.length, 9);
  for (const [, c] of cells) {
    assert.equal(c.images, 1);
    assert.deepEqual(Object.keys(c.predictions), Object.keys(res.rows[0].accuracy));
  }

  // Second run under the old name: VAEs reused, every cell taken from the file, same numbers.
  const again = run(["reproduce-imagenet", ...common(out)]);
  assert.equal(again.code, 0, again.stderr);
  const res2 = JSON.parse(again.stdout) as Output;
  assert.deepEqual(
    res2.vaes.map((v) => v.reused),
    [true, true],
  );
  assert.deepEqual(res2.rows, res.rows);
  firstRows = res.rows;

  // Resumed, not recomputed: a stored cell's count changed by hand shows in the table, and a
  // removed cell is run again (the rows come back as they were).
  const clean = cells.find(([id]) => id.includes('"(clean)"') && id.endsWith(",0]"))!;
  const edited = structuredClone(sweep);
  edited.cells[clean[0]].correct["JPEG 23"] = [1 - clean[1].correct["JPEG 23"][0]];
  const other = cells.find(([id]) => id.includes('"FGSM"'))![0];
  delete edited.cells[other];
  writeFileSync(file, JSON.stringify(edited));
  const rerun = run(["reproduce", "imagenet", ...common(out)]);
  assert.equal(rerun.code, 0, rerun.stderr);
  const resumed = JSON.parse(rerun.stdout) as Output;
  const flipped = (1 - clean[1].correct["JPEG 23"][0]) / 3 - clean[1].correct["JPEG 23"][0] / 3;
  assert.ok(Math.abs(resumed.rows[0].accuracy["JPEG 23"] - res.rows[0].accuracy["JPEG 23"] - flipped) < 1e-12);
  assert.deepEqual(resumed.rows[1], res.rows[1]);
  const after = JSON.parse(readFileSync(file, "utf8")) as SweepFile;
  assert.deepEqual(after.cells[other], sweep.cells[other]);
  writeFileSync(file, JSON.stringify(sweep));
});

test("shards: two processes share the images, a third merges them and gets the unsharded numbers", () => {
  assert.ok(firstRows, "runs after the first test");
  const out = join(dir, "sharded");
  for (const k of ["1/2", "2/2"]) {
    const r = run(["reproduce", "imagenet", ...common(out), "--shard", k]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as Partial<Output>).rows, undefined, "a shard writes no report");
  }
  const shares = [1, 2].map((k) => JSON.parse(readFileSync(join(out, `sweep-gray-box.shard${k}-of-2.json`), "utf8")));
  // Shards of images 0 and 2 in the first share, 1 in the second: three points each.
  assert.deepEqual(
    shares.map((f) => Object.keys((f as SweepFile).cells).length),
    [6, 3],
  );
  assert.equal(existsSync(join(out, "report.md")), false);
  const merged = run(["reproduce", "imagenet", ...common(out)]);
  assert.equal(merged.code, 0, merged.stderr);
  assert.deepEqual((JSON.parse(merged.stdout) as Output).rows, firstRows);
  const bad = run(["reproduce", "imagenet", ...common(out), "--shard", "3/2"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Expected k\/n with 1 <= k <= n \(for example 1\/2\) for --shard but received 3\/2/);
});

test("bad input: one line, exit code 2", async () => {
  const noModel = run(["reproduce", "imagenet", "--images", images, "--quick", "--quiet"]);
  assert.equal(noModel.code, 2);
  assert.match(noModel.stderr.trim(), /^vaeguard: error: --model is required/);
  assert.equal(noModel.stderr.trim().split("\n").length, 1);

  const bad = join(dir, "bad");
  mkdirSync(join(bad, "images"), { recursive: true });
  for (const id of ["aa", "bb"]) await writePng(join(bad, "images", `${id}.png`), 7, id === "bb" ? 224 : 299);
  writeFileSync(join(bad, "dev_dataset.csv"), "ImageId,TrueLabel\naa,3\nbb,4\n");
  const size = run([
    "reproduce",
    "imagenet",
    "--images",
    bad,
    "--train-only",
    "--quick",
    "--quiet",
    "--checkpoints",
    join(dir, "ck2"),
  ]);
  assert.equal(size.code, 2);
  assert.match(size.stderr.trim(), /^vaeguard: error: .*bb\.png: is 224x224 pixels; expected 299x299$/);

  writeFileSync(join(bad, "dev_dataset.csv"), "ImageId,Label\naa,3\nbb,4\n");
  const cols = run(["reproduce", "imagenet", "--images", bad, "--train-only", "--quick", "--quiet"]);
  assert.equal(cols.code, 2);
  assert.match(cols.stderr.trim(), /dev_dataset\.csv: has no column 'TrueLabel'/);
  assert.equal(cols.stderr.trim().split("\n").length, 1);
});

test("the time cap, and results of the earlier per-image format: one line each", () => {
  const capped = run(["reproduce", "imagenet", ...common(join(dir, "capped")), "--eval-minutes", "0"]);
  assert.equal(capped.code, 2);
  assert.match(capped.stderr.trim(), /^vaeguard: error: No image was evaluated \(the time cap came first\)$/);

  const old = join(dir, "old");
  mkdirSync(old, { recursive: true });
  writeFileSync(join(old, "evaluation.json"), JSON.stringify({ format: "vaeguard-imagenet/1", points: {} }));
  const refused = run(["reproduce", "imagenet", ...common(old)]);
  assert.equal(refused.code, 2);
  assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
  assert.match(
    refused.stderr,
    /evaluation\.json: per-image results of an earlier vaeguard \(format vaeguard-imagenet\/1\).*--restart/,
  );
  assert.equal(existsSync(join(old, "sweep-gray-box.json")), false, "nothing evaluated");
});
