import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { assertUsageError } from "../helpers/cli-assert.js";
import { writeTinyCheckpoints, type TinyCheckpoints } from "../helpers/tiny-checkpoints.js";

const bin = join(process.cwd(), "bin", "vaeguard.js");
let dir: string;
let files: TinyCheckpoints["files"];

before(() => {
  ({ dir, files } = writeTinyCheckpoints("vaeguard-worst-case-"));
});

after(() => rmSync(dir, { recursive: true, force: true }));

const run = (...args: string[]) => spawnSync(process.execPath, [bin, "worst-case", ...args], { encoding: "utf8" });

test("worst-case: bad input is one line and exit code 2", () => {
  assertUsageError(
    run("--classifier", files.mlp, "--eps", "0.1,1.5"),
    /Expected number between 0 and 1 for eps but received 1.5/,
  );
  assertUsageError(run("--classifier", files.mlp, "--eps", "-0.1"), /Expected number between 0 and 1 for eps/);
  assertUsageError(
    run("--classifier", files.cifar, "--eps", "0.1"),
    /holds a 'cifar10-cnn' classifier of images \[3, 32, 32\] but MNIST images are \[1, 28, 28\]/,
  );
  assertUsageError(run("--classifier", files.vae), /holds a 'conv-vae' model, not a classifier/);
  assertUsageError(run("--classifier", files.mlp, "--attacks", "pgd-ce,cw"), /Unsupported attack "cw" for --attacks/);
  assertUsageError(run("--classifier", files.mlp, "--defenses", "purifier"), /needs a trained purifier/);
  assertUsageError(run("--eps", "0.1"), /--classifier is required/);
  assertUsageError(
    run("--classifier", files.mlp, "--subset-restarts", "0"),
    /Expected integer between 1 and \d+ for subset-restarts but received 0/,
  );
});

test("worst-case: a tiny run writes its table and checks, and a rerun takes its cells from the results file", () => {
  const out = join(dir, "out");
  const args = [
    "--classifier",
    files.mlp,
    "--vae",
    files.vae,
    "--samples",
    "6",
    "--eps",
    "0.1",
    "--steps",
    "2",
    "--restarts",
    "1",
    "--eot",
    "2",
    "--square-queries",
    "5",
    "--passes",
    "2",
    "--check-samples",
    "3",
    "--batch-size",
    "6",
    "--out",
    out,
  ];
  const r = run(...args);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /PGD \(CE\) x5, first 6\s+worst case\s+95% interval/);
  assert.match(r.stdout, /^No defense\s+0\.1\s+6\s/m);
  assert.match(r.stdout, /^VAE\s+0\.1\s+6\s/m);
  const report = readFileSync(join(out, "report.md"), "utf8");
  assert.match(report, /## Gradient-masking checks/);
  assert.match(report, /\*\*VAE, eps 0.1\*\*/);
  assert.ok(existsSync(join(out, "results.json")));
  const again = run(...args);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /taken from/);
  assert.doesNotMatch(again.stderr, /masking check/);
  // --recheck keeps the cells and runs their checks again.
  const rechecked = run(...args, "--recheck");
  assert.equal(rechecked.status, 0, rechecked.stderr);
  assert.match(rechecked.stderr, /taken from/);
  assert.match(rechecked.stderr, /VAE: masking check, PGD\(4\)x2/);
  assert.match(
    readFileSync(join(out, "report.md"), "utf8"),
    /the worst case on the first 3 images is [\d.]+ over the cell's attacks/,
  );
  const other = run(...args.map((a) => (a === "2" ? "3" : a)));
  assert.equal(other.status, 2);
  assert.match(other.stderr, /holds results of other settings/);
});

test("worst-case: a run stopped inside a cell resumes from the batches saved in its results file", () => {
  const out = join(dir, "resume");
  const args = ["--classifier", files.mlp, "--samples", "6", "--eps", "0.1", "--steps", "2", "--restarts", "1"];
  const rest = ["--square-queries", "5", "--check-samples", "3", "--batch-size", "3", "--out", out];
  const first = run(...args, ...rest);
  assert.equal(first.status, 0, first.stderr);
  const file = join(out, "results.json");
  const whole = JSON.parse(readFileSync(file, "utf8"));
  assert.deepEqual(whole.partial, {}, "a finished cell leaves no batches behind");

  // What a run stopped during the cell's PGD would have left: the cell unfinished and its first batch saved,
  // here marked all-wrong so that taking it, rather than attacking it again, shows in the result.
  const key = "No defense|0.1";
  const stopped = {
    ...whole,
    cells: [],
    masking: {},
    partial: {
      [key]: {
        models: whole.models[key],
        batches: { "pgd-ce/2/1 eps 0.1 images 0+3": { perImage: [0, 0, 0], seconds: 1, trace: [0.5, 0.6] } },
      },
    },
  };
  writeFileSync(file, JSON.stringify(stopped));
  const resumed = run(...args, ...rest);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /No defense, eps 0.1: resuming with 1 finished batches/);
  const after = JSON.parse(readFileSync(file, "utf8"));
  const pgd = after.cells[0].attacks.find((a: { attack: string }) => a.attack === "pgd-ce");
  const before = whole.cells[0].attacks.find((a: { attack: string }) => a.attack === "pgd-ce");
  assert.deepEqual(pgd.perImage, [0, 0, 0, ...before.perImage.slice(3)]);
  assert.deepEqual(after.cells[0].pgdTrace, [0.5, 0.6]);
  assert.deepEqual(after.partial, {});
});

test("worst-case: --subset-samples 0 drops the extra PGD and keeps results files of earlier versions openable", () => {
  const out = join(dir, "no-subset");
  const r = run(
    ...["--classifier", files.mlp, "--samples", "4", "--eps", "0.1", "--steps", "2", "--restarts", "1"],
    ...["--square-queries", "5", "--no-checks", "--batch-size", "4", "--subset-samples", "0", "--out", out],
  );
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /first \d+/);
  const saved = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
  // Files written before the subset PGD existed have settings without its fields: they must still match.
  assert.equal("subsetSamples" in saved.fingerprint.settings, false);
  assert.equal("subsetRestarts" in saved.fingerprint.settings, false);
  assert.equal(saved.cells[0].subset, undefined);
});

test("worst-case: a larger --samples grows the saved cells, reusing their whole batches, to the numbers of a fresh run", () => {
  const out = join(dir, "grow");
  const args = ["--classifier", files.mlp, "--eps", "0.1", "--steps", "2", "--restarts", "1", "--square-queries", "5"];
  const rest = ["--check-samples", "3", "--batch-size", "2", "--subset-restarts", "2"];
  const small = run(...args, ...rest, "--samples", "5", "--out", out);
  assert.equal(small.status, 0, small.stderr);
  const file = join(out, "results.json");
  const saved = JSON.parse(readFileSync(file, "utf8"));
  assert.equal(saved.cells[0].n, 5);

  // Marked all-wrong on the first batch, so that taking the saved batch, not attacking it again, shows.
  const pgd = (cell: { attacks: { attack: string; perImage: number[] }[] }) =>
    cell.attacks.find((a) => a.attack === "pgd-ce")!;
  pgd(saved.cells[0]).perImage.splice(0, 2, 0, 0);
  writeFileSync(file, JSON.stringify(saved));
  const grown = run(...args, ...rest, "--samples", "6", "--out", out);
  assert.equal(grown.status, 0, grown.stderr);
  assert.match(grown.stderr, /No defense, eps 0.1: growing from 5 to 6 images/);
  const after = JSON.parse(readFileSync(file, "utf8"));
  assert.equal(after.cells[0].n, 6);
  assert.equal(after.fingerprint.samples, 6);
  assert.deepEqual(after.partial, {});
  assert.ok(after.masking["No defense|0.1"], "the grown cell's masking checks ran again");

  const fresh = run(...args, ...rest, "--samples", "6", "--out", join(dir, "grow-fresh"));
  assert.equal(fresh.status, 0, fresh.stderr);
  const expected = JSON.parse(readFileSync(join(dir, "grow-fresh", "results.json"), "utf8")).cells[0];
  // Every attack as a fresh run of 6 images has it, the last, shorter batch of the 5 attacked again ...
  for (const a of expected.attacks) {
    const got = after.cells[0].attacks.find((b: { attack: string }) => b.attack === a.attack);
    assert.deepEqual(got.perImage, a.attack === "pgd-ce" ? [0, 0, ...a.perImage.slice(2)] : a.perImage, a.attack);
  }
  assert.deepEqual(after.cells[0].subset.perImage, expected.subset.perImage);
  // ... and fewer images than the folder holds is refused rather than mixed in.
  const fewer = run(...args, ...rest, "--samples", "4", "--out", out);
  assert.equal(fewer.status, 2);
  assert.match(fewer.stderr, /holds results of other settings .*more images than --samples/);
});
